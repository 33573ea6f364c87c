"""Least privilege on Supabase: with pgvector in `extensions` and pgmq as an extension, a login
granted only autoembed_worker embeds rows it cannot read, and `authenticated` granted
autoembed_search searches under RLS as PostgREST's sessions do. A GRANT the migrating role cannot
give (it would only warn) makes the migration fail, naming the statement to run and who may."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from reliability.harness import AUTOEMBED
from support import DIMS, expected
from support.supabase import SupabaseDatabase

from autoembed import api
from autoembed import connections as db
from autoembed.errors import MigrationError
from autoembed.migrate import apply_migrations
from autoembed.settings import Settings

ALICE, BOB = "00000000-0000-0000-0000-00000000a11c", "00000000-0000-0000-0000-000000000b0b"
_suffix = itertools.count()


@pytest.fixture
def migrated(project: SupabaseDatabase) -> SupabaseDatabase:
    """A new project's database with autoembed migrated by `postgres`, and a table of notes with
    RLS as a Supabase app has it: each user (auth.uid()) sees only their rows."""
    with db.connect(project.postgres_dsn) as conn:
        apply_migrations(conn)
    with db.connect(project.postgres_dsn, autocommit=True) as conn:
        conn.execute(f"create table notes (id bigint generated always as identity primary key, "
                     f"owner_id uuid not null, body text, embedding vector({DIMS}))")
        conn.execute("alter table notes enable row level security")
        conn.execute("alter table notes force row level security")
        conn.execute("create policy own_notes on notes to authenticated using (owner_id = auth.uid())")
        conn.execute("select autoembed.watch('notes', 'body', embedder => 'hashing', model => 'reliability')")
        conn.execute("insert into notes (owner_id, body) values (%s, 'red apples'), (%s, 'apple pie'), "
                     "(%s, 'apple juice')", (ALICE, ALICE, BOB))
    return project


@pytest.fixture
def worker_login(migrated: SupabaseDatabase) -> Iterator[str]:
    """A login role granted autoembed_worker and nothing else (roles are cluster-wide: dropped after)."""
    name = f"embedder_{os.getpid()}_{next(_suffix)}"
    with psycopg.connect(migrated.postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} login in role autoembed_worker").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(migrated.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def test_a_login_granted_only_autoembed_worker_embeds_rows_it_cannot_read(migrated, worker_login, tmp_path):
    dsn = migrated.dsn(worker_login)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("show search_path").fetchone()[0] == '"$user", public'  # no `extensions`
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from notes")
    worker = subprocess.run([AUTOEMBED, "worker", "--drain"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DATABASE_URL": dsn, "AUTOEMBED_HOME": str(tmp_path)})
    assert worker.returncode == 0, worker.stderr
    with psycopg.connect(migrated.postgres_dsn) as conn:
        assert conn.execute("select rows, embedded, pending, failed from autoembed.status").fetchone() == (3, 3, 0, 0)


def authenticated(project: SupabaseDatabase, user: str) -> psycopg.Connection:
    """A session as PostgREST opens one for a signed-in user: `authenticator` logs in, becomes
    `authenticated` and carries the user's id in request.jwt.claim.sub (read by auth.uid())."""
    conn = db.connect(project.dsn("authenticator"), autocommit=True, vectors=False)
    conn.execute("set role authenticated")
    conn.execute("select set_config('request.jwt.claim.sub', %s, false)", (user,))
    db.register_vectors(conn)  # as `authenticated`: authenticator itself may not use schema extensions
    return conn


def test_authenticated_granted_autoembed_search_searches_its_own_rows(migrated, tmp_path):
    subprocess.run([AUTOEMBED, "worker", "--drain"], check=True, capture_output=True, timeout=120,
                   env={**os.environ, "DATABASE_URL": migrated.postgres_dsn, "AUTOEMBED_HOME": str(tmp_path)})
    with psycopg.connect(migrated.postgres_dsn, autocommit=True) as conn:
        conn.execute("grant autoembed_search to authenticated")
    try:
        for user, bodies in ((ALICE, ["red apples", "apple pie"]), (BOB, ["apple juice"])):
            with authenticated(migrated, user) as conn:
                rows = conn.execute("select content from autoembed.search('notes', %s, 10)",
                                    (expected("apples"),), binary=True).fetchall()
                assert sorted(r[0] for r in rows) == sorted(bodies), user
                hits = api.search(conn, "notes", "apples", 10, settings=Settings(home=tmp_path))
                assert sorted(h.content for h in hits) == sorted(bodies), user
    finally:
        with psycopg.connect(migrated.postgres_dsn, autocommit=True) as conn:
            conn.execute("revoke autoembed_search from authenticated")


def test_a_grant_the_migrating_role_cannot_give_fails_the_migration_with_what_to_run(project):
    """Where another role owns schema pgmq and gave `postgres` only USAGE and CREATE on it,
    `grant usage on schema pgmq to autoembed_worker` run by postgres grants nothing."""
    with psycopg.connect(project.admin_dsn, autocommit=True) as conn:
        conn.execute("alter schema pgmq owner to supabase_admin")
        conn.execute("grant usage, create on schema pgmq to postgres")
    with db.connect(project.postgres_dsn) as conn:
        with pytest.raises(MigrationError) as failure:
            apply_migrations(conn)
    message = str(failure.value)
    assert "140_privileges.sql failed: autoembed: postgres may not grant what autoembed's roles need" in message
    assert "grant usage on schema pgmq to autoembed_worker;  -- as supabase_admin" in message
    with psycopg.connect(project.postgres_dsn) as conn:  # one transaction: nothing was left behind
        assert conn.execute("select to_regclass('autoembed.sources')").fetchone() == (None,)

    with psycopg.connect(project.admin_dsn, autocommit=True) as conn:
        conn.execute("grant usage on schema pgmq to autoembed_worker")  # what the message said
    with db.connect(project.postgres_dsn) as conn:
        assert apply_migrations(conn)
        caps = dict(conn.execute("select feature, available from autoembed.capabilities()").fetchall())
    assert caps["privileges"] is True
