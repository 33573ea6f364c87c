"""The migration files and the runner: naming, order, idempotence, edits refused, pgmq, pg_cron."""

from __future__ import annotations

import shutil

import pytest
from conftest import MIGRATIONS

from autoembed import connections as db
from autoembed.errors import MigrationError
from autoembed.migrate import MIGRATION_NAME, apply_migrations, migration_files


def test_files_are_named_and_ordered_for_the_supabase_cli():
    names = [p.name for p in sorted(MIGRATIONS.glob("*"))]
    assert names, "no migrations"
    assert all(MIGRATION_NAME.match(n) for n in names), names
    stamps = [n[:14] for n in names]
    assert stamps == sorted(set(stamps)), "timestamps must be unique and increasing"


def test_migrate_applies_everything_once_and_records_checksums(empty_dsn):
    with db.connect(empty_dsn) as conn:
        applied = apply_migrations(conn, MIGRATIONS)
        assert applied == [m.name for m in migration_files(MIGRATIONS)]
        assert apply_migrations(conn, MIGRATIONS) == []
        recorded = dict(conn.execute("select name, checksum from autoembed.schema_migrations").fetchall())
        assert recorded == {m.name: m.checksum for m in migration_files(MIGRATIONS)}
        conn.rollback()


def test_sql_only_pgmq_is_installed_where_the_extension_is_missing(empty_dsn):
    with db.connect(empty_dsn) as conn:
        has_extension = conn.execute("select count(*) from pg_available_extensions where name = 'pgmq'").fetchone()[0]
        apply_migrations(conn, MIGRATIONS)
        detail = conn.execute("select detail from autoembed.capabilities() where feature = 'pgmq'").fetchone()[0]
        conn.rollback()
    if has_extension:
        assert detail.startswith("pgmq extension")
    else:
        assert detail == "pgmq SQL-only install (no extension)"


def test_an_edited_applied_migration_is_refused(empty_dsn, tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    with db.connect(empty_dsn) as conn:
        apply_migrations(conn, folder)
        first = sorted(folder.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match=f"{first.name} was edited after it was applied"):
            apply_migrations(conn, folder)


def test_a_failing_migration_rolls_back_the_whole_run(empty_dsn, tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    (folder / "29991231000000_broken.sql").write_text("create table half_done (id int);\nselect 1/0;\n")
    with db.connect(empty_dsn) as conn:
        with pytest.raises(MigrationError, match="29991231000000_broken.sql failed: division by zero"):
            apply_migrations(conn, folder)
        # one transaction: nothing of the run is left, not even the earlier migrations or the ledger
        leftovers = conn.execute("select to_regclass('half_done'), to_regclass('autoembed.sources'), "
                                 "to_regclass('autoembed.schema_migrations')").fetchone()
        assert leftovers == (None, None, None)
        assert apply_migrations(conn) == [m.name for m in migration_files(MIGRATIONS)]
        names = [r[0] for r in conn.execute("select name from autoembed.schema_migrations")]
        assert "29991231000000_broken.sql" not in names and len(names) == len(list(MIGRATIONS.glob("*.sql")))
        conn.rollback()


def test_a_misnamed_file_is_refused(tmp_path):
    (tmp_path / "add_stuff.sql").write_text("select 1;")
    with pytest.raises(MigrationError, match="add_stuff.sql: migration files are named"):
        migration_files(tmp_path)


def test_pg_cron_schedules_the_sweep_in_the_cron_database(cron_dsn):
    with db.connect(cron_dsn, autocommit=True) as conn:
        job = conn.execute("select schedule, command from cron.job where jobname = 'autoembed-sweep'").fetchone()
        available, detail = conn.execute(
            "select available, detail from autoembed.capabilities() where feature = 'pg_cron'").fetchone()
    assert job == ("* * * * *", "select autoembed.sweep()")
    assert available and "sweep job scheduled" in detail
