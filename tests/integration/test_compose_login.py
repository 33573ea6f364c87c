"""The compose stack's worker login (deploy/compose/worker_login.sql, run by psql as its
`worker-login` step): on a migrated database it makes a login that is a member of autoembed_worker
and of nothing else, holds no power, and a second run only sets the password again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg

from autoembed.devdb import find_pg_bin

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "compose" / "worker_login.sql"
LOGIN = "autoembed_embedder"


def run_script(dsn: str, password: str) -> None:
    subprocess.run([find_pg_bin() / "psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-v", f"password={password}",
                    "-f", SCRIPT, dsn], check=True, capture_output=True, timeout=60)


def test_the_worker_login_holds_autoembed_worker_and_nothing_else(conn, dsn):
    try:
        run_script(dsn, "first")
        run_script(dsn, "second's")  # again: only the password changes (quoted as a literal)
        role = conn.execute("select rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
                            "from pg_roles where rolname = %s", (LOGIN,)).fetchone()
        assert role == (True, False, False, False, False, False)
        member_of = conn.execute("select m.roleid::regrole::text from pg_auth_members m "
                                 "where m.member = %s::regrole", (LOGIN,)).fetchall()
        assert member_of == [("autoembed_worker",)]
        with psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user=LOGIN)) as worker:
            assert worker.execute("select current_user").fetchone() == (LOGIN,)
    finally:
        conn.execute(f"drop role if exists {LOGIN}")
