"""The real Supabase CLI (npm `supabase`, pinned by scripts/setup-supabase-profile.sh) against the
Supabase profile: this repository's supabase/ folder pushed with `supabase db push --db-url`,
listed as applied by `supabase migration list`, agreeing with `autoembed migrate` in either
order, and clean in `supabase db advisors` and `supabase db lint`; and a user's own project
(`supabase init`) given autoembed by `autoembed supabase add-migration`, first and after an upgrade."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from reliability.harness import AUTOEMBED
from support import DIMS
from support.catalog import snapshot
from support.supabase import SupabaseDatabase, supabase_cli

from autoembed import connections as db
from autoembed import supabase_migrations
from autoembed.migrate import Migration, apply_migrations, migration_files
from autoembed.supabase_migrations import render_folder

REPO = Path(__file__).resolve().parents[2]
#: a migration of a release after this one, for the upgrade test
UPGRADE = Migration("29991231000000_upgrade_probe.sql", "create table autoembed.upgrade_probe (id int);\n")

pytestmark = pytest.mark.usefixtures("cli")


def repo_project(tmp_path: Path) -> Path:
    """A copy of this repository's Supabase project (config.toml and migrations) to run the CLI in."""
    shutil.copytree(REPO / "supabase", tmp_path / "supabase", ignore=shutil.ignore_patterns(".temp"))
    return tmp_path


def push(database: SupabaseDatabase, workdir: Path) -> subprocess.CompletedProcess:
    """`supabase db push` of workdir's supabase/migrations to `database`, as `postgres`."""
    return supabase_cli("db", "push", "--db-url", database.url(), "--workdir", str(workdir), "--yes", cwd=workdir)


def migration_list(database: SupabaseDatabase, workdir: Path) -> list[dict]:
    """`supabase migration list` as JSON: one {local, remote, time} per version."""
    result = supabase_cli("migration", "list", "--db-url", database.url(), "--workdir", str(workdir),
                          "--output-format", "json", cwd=workdir)
    return json.loads(result.stdout)["migrations"]


def migrate(database: SupabaseDatabase) -> list[str]:
    """`autoembed migrate`'s work, as `postgres`."""
    with db.connect(database.postgres_dsn) as conn:
        return apply_migrations(conn)


def local_versions(workdir: Path) -> list[str]:
    return sorted(p.name[:14] for p in (workdir / "supabase" / "migrations").glob("*.sql"))


def reference_catalog(supabase_db: SupabaseDatabase) -> dict:
    """The catalog `autoembed migrate` leaves on a new project's database."""
    from support.supabase import create_project_database, drop_project_database

    reference = create_project_database(supabase_db, "project_reference_catalog")
    try:
        migrate(reference)
        return snapshot(reference.postgres_dsn)
    finally:
        drop_project_database(reference)


def test_db_push_applies_the_folder_that_migration_list_then_shows_and_migrate_finds_current(
        supabase_db, project, tmp_path):
    workdir = repo_project(tmp_path)
    push(project, workdir)
    listed = migration_list(project, workdir)
    assert [m["local"] for m in listed] == local_versions(workdir) == sorted(n[:14] for n in render_folder())
    assert all(m["remote"] == m["local"] for m in listed), listed
    assert migrate(project) == []  # the push recorded every migration in autoembed's ledger too
    assert snapshot(project.postgres_dsn) == reference_catalog(supabase_db)


def test_a_project_that_pushed_an_earlier_release_pushes_this_one_without_include_all(supabase_db, project, tmp_path):
    """The folder of each release keeps the versions of the ones before and adds only later ones, so
    that `supabase db push` never finds a local file to insert before the last applied one."""
    from autoembed.supabase_migrations import DEFINITIONS_VERSION

    earlier = tmp_path / "earlier"
    repo_project(earlier)
    released = sorted(p.name for p in (REPO / "worker" / "autoembed" / "db" / "released").glob("*.sql"))
    last_release = released[-1][:14]  # the previous release's definitions file closes its folder
    for path in (earlier / "supabase" / "migrations").glob("*.sql"):
        if path.name[:14] > last_release:
            path.unlink()
    push(project, earlier)
    assert migration_list(project, earlier)[-1]["remote"] == last_release
    current = tmp_path / "current"
    repo_project(current)
    push(project, current)  # no --include-all: every new version sorts after the last applied
    listed = migration_list(project, current)
    assert all(m["remote"] == m["local"] for m in listed) and listed[-1]["local"] == DEFINITIONS_VERSION, listed
    assert migrate(project) == []
    assert snapshot(project.postgres_dsn) == reference_catalog(supabase_db)


def test_migrate_first_then_db_push_agree(supabase_db, project, tmp_path):
    workdir = repo_project(tmp_path)
    assert migrate(project) == [m.name for m in migration_files()]
    push(project, workdir)  # every file runs, and skips what migrate applied
    assert all(m["remote"] == m["local"] for m in migration_list(project, workdir))
    assert migrate(project) == []
    assert snapshot(project.postgres_dsn) == reference_catalog(supabase_db)


def test_db_advisors_report_no_autoembed_finding_at_warn_or_above(project, tmp_path):
    migrate(project)  # the same catalog as a push (tests above)
    result = supabase_cli("db", "advisors", "--db-url", project.url(), "--level", "warn", cwd=tmp_path)
    findings = [f for f in json.loads(result.stdout or "[]") if (f.get("metadata") or {}).get("schema") == "autoembed"]
    assert [(f["name"], f["detail"]) for f in findings] == []


def test_db_lint_reports_no_error_in_autoembed(project, tmp_path):
    migrate(project)
    result = supabase_cli("db", "lint", "--db-url", project.url(), "--schema", "autoembed", "--level", "error",
                          cwd=tmp_path)
    issues = [(f["function"], i["message"]) for f in json.loads(result.stdout or "[]") for i in f["issues"]]
    assert issues == []


def user_project(tmp_path: Path) -> Path:
    """A user's Supabase project as `supabase init` makes it, with an empty migrations folder."""
    supabase_cli("init", cwd=tmp_path)
    (tmp_path / "supabase" / "migrations").mkdir()
    return tmp_path


def add_migration(workdir: Path) -> Path:
    """`autoembed supabase add-migration` into workdir's supabase/migrations; the file it wrote."""
    result = subprocess.run([AUTOEMBED, "supabase", "add-migration", "--dir", "supabase/migrations"], cwd=workdir,
                            capture_output=True, text=True, check=True, timeout=60)
    return Path(workdir, result.stdout.strip().removeprefix("wrote "))


def embed_one_row(database: SupabaseDatabase) -> str:
    """Watch a new table, insert a row, drain with `autoembed worker --drain`: the row's embedding state."""
    with db.connect(database.postgres_dsn, autocommit=True) as conn:
        conn.execute(f"create table notes (id bigint generated always as identity primary key, body text, "
                     f"embedding vector({DIMS}))")
        conn.execute("select autoembed.watch('notes', 'body', embedder => 'hashing', model => 'notes')")
        conn.execute("insert into notes (body) values ('pushed by the Supabase CLI')")
    worker = subprocess.run([AUTOEMBED, "worker", "--drain"], env={**os.environ, "DATABASE_URL": database.postgres_dsn},
                            capture_output=True, text=True, timeout=120)
    assert worker.returncode == 0, worker.stderr
    with psycopg.connect(database.postgres_dsn) as conn:
        return conn.execute("select state, rows, embedded, pending from autoembed.status").fetchone()


def test_add_migration_into_a_new_project_then_db_push_installs_autoembed(project, tmp_path):
    workdir = user_project(tmp_path)
    written = add_migration(workdir)
    assert written.parent == workdir / "supabase" / "migrations" and written.name.endswith(".sql")
    push(project, workdir)
    assert [(m["local"], m["remote"]) for m in migration_list(project, workdir)] == [(written.name[:14],) * 2]
    assert embed_one_row(project) == ("ok", 1, 1, 0)
    assert migrate(project) == []  # `autoembed migrate` sees everything applied


def test_add_migration_again_after_an_upgrade_applies_only_what_is_new(project, tmp_path, monkeypatch):
    """The next release is this one plus a migration (UPGRADE): add-migration's new file skips
    everything the first one applied and applies that migration. Run again, it changes nothing."""
    workdir = user_project(tmp_path)
    first = add_migration(workdir)
    push(project, workdir)
    with psycopg.connect(project.postgres_dsn) as conn:
        before = conn.execute("select name, applied_at from autoembed.schema_migrations order by name").fetchall()

    monkeypatch.setattr(supabase_migrations, "migration_files", lambda: [*migration_files(), UPGRADE])
    upgrade = supabase_migrations.add_migration(workdir / "supabase" / "migrations",
                                                now=datetime.now(timezone.utc) + timedelta(seconds=1))
    assert upgrade.name > first.name
    push(project, workdir)
    with psycopg.connect(project.postgres_dsn) as conn:
        after = conn.execute("select name, applied_at from autoembed.schema_migrations order by name").fetchall()
        assert conn.execute("select to_regclass('autoembed.upgrade_probe') is not null").fetchone()[0]
    assert [row for row in after if row[0] != UPGRADE.name] == before  # nothing else ran again
    assert UPGRADE.name in [name for name, _ in after]
    catalog = snapshot(project.postgres_dsn)

    monkeypatch.undo()
    while datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S") <= upgrade.name[:14]:
        time.sleep(0.1)  # the upgrade's file was dated a second ahead: the next one must sort after it
    again = add_migration(workdir)  # the same release again: nothing new
    assert again.name > upgrade.name
    push(project, workdir)
    assert all(m["remote"] == m["local"] for m in migration_list(project, workdir))
    assert snapshot(project.postgres_dsn) == catalog
    assert embed_one_row(project) == ("ok", 1, 1, 0)
