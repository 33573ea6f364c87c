"""Fresh = upgraded = Supabase folder: every way to install autoembed leaves the same schema, and
db/schema.sql (for readers) is that schema."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from support.catalog import schema_dump, snapshot
from support.legacy import apply_release_0_1

from autoembed import connections as db
from autoembed.migrate import SQL_ROOT, apply_migrations, ensure_pgmq, migration_files
from autoembed.supabase_migrations import render_folder

REPO = Path(__file__).resolve().parents[2]
SCHEMA_SNAPSHOT = Path(str(SQL_ROOT / "schema.sql"))
#: what `supabase db push` keeps: one row per applied file (supabase/migrations in this repo)
SUPABASE_LEDGER = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (version text primary key, statements text[], name text);
"""


def push_supabase_folder(dsn: str, files: dict[str, str]) -> list[str]:
    """Apply migration files as `supabase db push` does: each file not yet in its ledger, in version
    order, in a transaction of its own that also records it. Returns the versions applied."""
    pushed = []
    with psycopg.connect(dsn) as conn:
        ensure_pgmq(conn)  # the server's pgmq: the extension on Supabase, the SQL-only install here
        conn.execute(SUPABASE_LEDGER)
        conn.commit()
        done = {row[0] for row in conn.execute("select version from supabase_migrations.schema_migrations")}
        for name in sorted(files):
            version, _, rest = name.partition("_")
            if version in done:
                continue
            with conn.transaction():
                conn.execute(files[name])
                conn.execute("insert into supabase_migrations.schema_migrations (version, name) values (%s, %s)",
                             (version, rest.removesuffix(".sql")))
            pushed.append(version)
    return pushed


def migrate(dsn: str) -> list[str]:
    with db.connect(dsn) as conn:
        return apply_migrations(conn)


@pytest.fixture
def databases(server):
    names = []

    def new() -> str:
        names.append(server.new_name("catalog"))
        return server.create_database(names[-1])

    yield new
    for name in names:
        server.drop_database(name)


def test_fresh_upgraded_and_pushed_databases_have_one_catalog(databases):
    fresh = databases()
    migrate(fresh)

    upgraded = databases()
    with db.connect(upgraded) as conn:
        before = apply_release_0_1(conn)
    assert migrate(upgraded) == [m.name for m in migration_files() if m.name not in before]

    pushed = databases()
    assert len(push_supabase_folder(pushed, render_folder())) == len(render_folder())

    reference = snapshot(fresh)
    assert "create function autoembed.write_embeddings" in reference["autoembed schema"].lower()
    for other in (upgraded, pushed):
        theirs = snapshot(other)
        assert theirs.keys() == reference.keys()
        for key in reference:
            assert theirs[key] == reference[key], key


def test_push_and_migrate_agree_in_either_order(databases):
    pushed_first = databases()
    push_supabase_folder(pushed_first, render_folder())
    assert migrate(pushed_first) == []  # the push recorded every migration in autoembed's ledger too

    migrated_first = databases()
    migrate(migrated_first)
    assert push_supabase_folder(migrated_first, render_folder())  # every file runs (and skips its body)
    assert migrate(migrated_first) == []
    assert snapshot(pushed_first) == snapshot(migrated_first)


def test_a_0_1_supabase_project_is_adopted_by_migrate(databases):
    """0.1's supabase/ folder held the seven migrations as plain files: a project that pushed them
    has them in Supabase's ledger only. `autoembed migrate` adopts them instead of failing on
    `relation "sources" already exists`, and pushing 0.2's folder then adds only what is new."""
    from support.legacy import RELEASE_0_1

    dsn = databases()
    push_supabase_folder(dsn, {m.name: m.text for m in RELEASE_0_1})
    with psycopg.connect(dsn) as conn:  # 0.1's push kept no autoembed ledger
        assert conn.execute("select to_regclass('autoembed.schema_migrations')").fetchone()[0] is None
    assert migrate(dsn) == [m.name for m in migration_files()]  # 0.1's adopted, the rest applied
    new_files = [name[:14] for name in sorted(render_folder()) if name[:14] > "20261123000007"]
    assert push_supabase_folder(dsn, render_folder()) == new_files  # their bodies skip: applied


def test_schema_snapshot_is_current(databases):
    fresh = databases()
    migrate(fresh)
    dump = schema_dump(fresh)
    if os.environ.get("AUTOEMBED_WRITE_SNAPSHOT"):
        SCHEMA_SNAPSHOT.write_text(dump, encoding="utf-8")
    assert SCHEMA_SNAPSHOT.read_text(encoding="utf-8") == dump, (
        "db/schema.sql is stale: AUTOEMBED_WRITE_SNAPSHOT=1 .venv/bin/python -m pytest tests/migrations/test_catalog.py")
