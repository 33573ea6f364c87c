"""The Supabase profile is what it claims: Supabase's roles with `postgres` demoted, pgvector in
`extensions`, pgmq 1.4.4 as an extension, pg_cron and pg_net working for `postgres`, and the real
Supabase CLI pushing migrations to it."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from autoembed.devdb import free_port
from support.supabase import PGMQ_SUPABASE_VERSION, SUPABASE_CLI, SupabaseDatabase


def wait_for(conn: psycopg.Connection, sql: str, params: tuple = (), timeout: float = 20.0):
    """The first row of `sql` once it has one, polling until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute(sql, params).fetchone()
        if row is not None or time.monotonic() > deadline:
            return row
        time.sleep(0.2)


@pytest.fixture
def conn(supabase_db: SupabaseDatabase) -> Iterator[psycopg.Connection]:
    """An autocommit connection as `postgres`, the role Supabase users and migrations run as."""
    with psycopg.connect(supabase_db.postgres_dsn, autocommit=True) as connection:
        yield connection


def test_postgres_owns_the_database_but_is_no_superuser(conn):
    row = conn.execute("""select r.rolsuper, r.rolcreaterole, r.rolbypassrls, pg_get_userbyid(d.datdba)
                          from pg_roles r, pg_database d
                          where r.rolname = current_user and d.datname = current_database()""").fetchone()
    assert row == (False, True, True, "postgres")
    admin = conn.execute("select rolsuper from pg_roles where rolname = 'supabase_admin'").fetchone()
    assert admin == (True,)
    granted = {r[0] for r in conn.execute("select b.rolname from pg_auth_members m join pg_roles b on b.oid = m.roleid "
                                          "where m.member = 'postgres'::regrole")}
    assert {"anon", "authenticated", "service_role", "pg_monitor", "pg_read_all_data"} <= granted
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("create extension file_fdw")  # only superusers (on Supabase: supautils) may


def test_api_roles_inherit_as_on_supabase(conn):
    rows = dict(conn.execute("select rolname, rolinherit from pg_roles "
                             "where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')"))
    assert rows == {"anon": True, "authenticated": True, "service_role": True, "authenticator": False}


def test_vector_lives_in_schema_extensions_and_postgres_can_use_it(conn):
    schema = conn.execute("select extnamespace::regnamespace::text from pg_extension where extname = 'vector'").fetchone()
    assert schema == ("extensions",)
    conn.execute("create temp table v (e vector(3))")  # unqualified: `extensions` is on postgres's search_path
    conn.execute("insert into v values ('[1,2,3]')")
    assert conn.execute("select e <-> '[1,2,4]' from v").fetchone() == (1.0,)


def test_pgmq_is_the_1_4_4_extension_and_postgres_runs_queues(conn):
    owner = conn.execute("select extversion, extowner::regrole::text from pg_extension where extname = 'pgmq'").fetchone()
    assert owner == (PGMQ_SUPABASE_VERSION, "postgres")
    conn.execute("select pgmq.create('profile_probe')")
    conn.execute("""select pgmq.send('profile_probe', '{"n": 1}')""")
    metrics = conn.execute("select * from pgmq.metrics('profile_probe')")
    columns = [c.name for c in metrics.description]
    assert metrics.fetchone()[columns.index("queue_length")] == 1
    assert "queue_visible_length" not in columns  # arrived in pgmq 1.5
    assert conn.execute("select pgmq.drop_queue('profile_probe')").fetchone() == (True,)


def test_pg_cron_runs_a_job_of_postgres_every_ten_seconds(conn):
    version = conn.execute("select extversion from pg_extension where extname = 'pg_cron'").fetchone()[0]
    if tuple(int(p) for p in version.split("-")[0].split(".")) < (1, 5):
        pytest.skip(f"pg_cron here is {version}; '10 seconds' schedules need 1.5+ "
                    "(scripts/setup-supabase-profile.sh could not build 1.6.5)")
    assert conn.execute("select current_setting('cron.database_name') = current_database()").fetchone() == (True,)
    job = conn.execute("select cron.schedule('profile_probe', '10 seconds', 'select 1')").fetchone()[0]
    try:
        done = wait_for(conn, "select status from cron.job_run_details where jobid = %s and status = 'succeeded'",
                        (job,), timeout=25)
        assert done == ("succeeded",)
    finally:
        conn.execute("select cron.unschedule(%s)", (job,))


def test_postgres_may_schedule_but_not_write_cron_job_directly(conn):
    job = conn.execute("select cron.schedule('profile_minutely', '* * * * *', 'select 1')").fetchone()[0]
    try:
        assert conn.execute("select username from cron.job where jobid = %s", (job,)).fetchone() == ("postgres",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("update cron.job set command = 'select 2' where jobid = %s", (job,))
    finally:
        conn.execute("select cron.unschedule(%s)", (job,))


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, list]]:
    """An HTTP server on 127.0.0.1 that answers POSTs with 200 and records (path, JSON body)."""
    handler = type("Recorder", (_Recorder,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", handler.received
    finally:
        server.shutdown()
        server.server_close()


def test_pg_net_posts_for_postgres_and_records_the_response(conn, http_server):
    base, received = http_server
    request = conn.execute("select net.http_post(%s, '{\"hello\": \"supabase\"}'::jsonb)",
                           (f"{base}/drain",)).fetchone()[0]
    response = wait_for(conn, "select status_code, content from net._http_response where id = %s", (request,))
    assert response == (200, '{"ok": true}')
    assert received == [("/drain", {"hello": "supabase"})]


def test_the_supabase_cli_pushes_a_migration_as_postgres_in_one_transaction_with_its_record(supabase_db, tmp_path):
    if not SUPABASE_CLI.exists():
        pytest.skip(f"the Supabase CLI is not at {SUPABASE_CLI} (run scripts/setup-supabase-profile.sh)")
    migrations = tmp_path / "supabase" / "migrations"
    migrations.mkdir(parents=True)
    (tmp_path / "supabase" / "config.toml").write_text('project_id = "profile-probe"\n')
    (migrations / "20200101000000_probe.sql").write_text(
        "create table cli_probe as select current_user::text as role_name, txid_current() as xid;\n"
        "insert into cli_probe select current_user, txid_current();\n")
    # As supabase_admin: the CLI itself switches to `postgres` (SET SESSION ROLE) before migrating.
    subprocess.run([str(SUPABASE_CLI), "db", "push", "--workdir", str(tmp_path), "--db-url",
                    supabase_db.url("supabase_admin"), "--yes"],
                   cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)}, check=True, capture_output=True,
                   timeout=120)
    with psycopg.connect(supabase_db.postgres_dsn, autocommit=True) as conn:
        rows = conn.execute("select distinct role_name, xid from cli_probe").fetchall()
        assert [r[0] for r in rows] == ["postgres"] and len(rows) == 1  # both statements: one transaction
        record = conn.execute("select name, statements, xmin::text::bigint from supabase_migrations.schema_migrations "
                              "where version = '20200101000000'").fetchone()
        assert record[:2] == ("probe", ["create table cli_probe as select current_user::text as role_name, "
                                        "txid_current() as xid", "insert into cli_probe select current_user, txid_current()"])
        assert record[2] == rows[0][1]  # recorded by the same transaction
