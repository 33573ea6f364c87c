"""Brings a database to the current schema, in one transaction: the pending one-time migrations
(db/migrations, frozen once released), then the current definition of every function and view
(db/idempotent, `create or replace`, re-applied every time). The SQL ships inside the package.

A migration that says `-- replaces: NAME` (a baseline) stands in for the migrations it names on a
database that has applied none of them; one that has applied some goes on with the originals.
Supabase projects that applied the SQL through `supabase db push` are adopted, not redone."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import psycopg
from pgmq.install import install_pgmq_from_sql

from autoembed.errors import MigrationError
from autoembed.queries import QUERIES

log = logging.getLogger(__name__)

SQL_ROOT: Traversable = files("autoembed") / "db"
MIGRATION_NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.sql$")
REPLACES = re.compile(r"^-- replaces: (\S+)$", re.M)


@dataclass(frozen=True)
class Migration:
    """One one-time migration file."""

    name: str
    text: str

    @property
    def checksum(self) -> str:
        """sha256 of the file's bytes, as recorded in autoembed.schema_migrations."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def replaces(self) -> tuple[str, ...]:
        """The migrations this one stands in for on a fresh database (a baseline), else ()."""
        return tuple(REPLACES.findall(self.text))


def _sql_files(folder: Traversable) -> list[Traversable]:
    if not folder.is_dir():
        raise MigrationError(f"SQL folder {folder} does not exist")
    return sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)


def migration_files(folder: Traversable = SQL_ROOT / "migrations") -> list[Migration]:
    """The migrations of `folder` in apply order; a misnamed file is an error."""
    migrations = []
    for path in _sql_files(folder):
        if not MIGRATION_NAME.match(path.name):
            raise MigrationError(
                f"{path.name}: migration files are named <14-digit timestamp>_<lowercase_name>.sql"
            )
        migrations.append(Migration(path.name, path.read_text(encoding="utf-8")))
    return migrations


def current_definitions(folder: Traversable = SQL_ROOT / "idempotent") -> list[tuple[str, str]]:
    """(file name, SQL) of every current-definition file, in apply order."""
    return [(path.name, path.read_text(encoding="utf-8")) for path in _sql_files(folder)]


def ensure_pgmq(conn: psycopg.Connection) -> str:
    """Make pgmq usable: the extension where the server has it, else the SQL-only install."""
    installed, available = conn.execute(QUERIES["pgmq_state"]).fetchone()
    if installed:
        return "present"
    if available:
        return "extension available"  # the baseline creates it
    version = install_pgmq_from_sql(conn=conn)
    log.info("installed SQL-only pgmq %s", version, extra={"pgmq_version": version})
    return f"installed SQL-only pgmq {version}"


def plan(migrations: list[Migration], applied: dict[str, str]) -> tuple[list[Migration], list[Migration]]:
    """(to run, to record without running) for a database that applied `applied` (name -> checksum).

    A baseline runs only where none of the migrations it replaces ran, and they are recorded with
    it. Where some ran, the originals go on and the baseline is recorded beside them."""
    stood_in = {name for m in migrations if m.replaces and m.name not in applied
                and not any(name in applied for name in m.replaces) for name in m.replaces}
    run: list[Migration] = []
    record: list[Migration] = []
    for migration in migrations:
        if migration.name in applied:
            continue
        if migration.name in stood_in or (migration.replaces and migration.replaces[0] not in stood_in):
            record.append(migration)
        else:
            run.append(migration)
    return run, record


def adopted(conn: psycopg.Connection, migrations: list[Migration]) -> dict[str, str]:
    """Migrations that `supabase db push` applied as plain files (autoembed 0.1's supabase/ folder),
    recorded in Supabase's ledger but not in autoembed's: name -> checksum, to record as applied."""
    if not conn.execute(QUERIES["supabase_ledger_exists"]).fetchone()[0]:
        return {}
    versions = {row[0] for row in conn.execute(QUERIES["supabase_versions"])}
    return {m.name: m.checksum for m in migrations if m.name[:14] in versions}


def check_unedited(migrations: list[Migration], applied: dict[str, str]) -> None:
    """Refuse to go on when a migration this database applied was edited since."""
    for migration in migrations:
        recorded = applied.get(migration.name)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"{migration.name} was edited after it was applied (checksum {recorded[:12]} in the "
                f"database, {migration.checksum[:12]} on disk): migrations are append-only, add a new file"
            )


def apply_migrations(conn: psycopg.Connection, folder: Traversable | None = None,
                     definitions: Traversable | None = None) -> list[str]:
    """Apply the pending migrations and re-apply the current definitions, in one transaction.

    Returns the migrations recorded by this run (none: the schema was current). `conn` must not be
    in autocommit mode. Refuses to run when an applied migration was edited; a failure rolls back
    everything this run did."""
    migrations = migration_files(folder or SQL_ROOT / "migrations")
    scripts = current_definitions(definitions or SQL_ROOT / "idempotent")
    conn.execute(QUERIES["migrate_lock"])
    try:
        ensure_pgmq(conn)
        conn.commit()
        with conn.transaction():
            conn.execute(QUERIES["migration_ledger"])
            applied = dict(conn.execute(QUERIES["applied_migrations"]).fetchall())
            check_unedited(migrations, applied)
            pushed = {name: checksum for name, checksum in adopted(conn, migrations).items() if name not in applied}
            run, record = plan(migrations, applied | pushed)
            record += [m for m in migrations if m.name in pushed]
            for migration in run:
                _execute(conn, migration.name, migration.text)
                log.info("applied migration %s", migration.name, extra={"migration": migration.name})
            for migration in sorted(run + record, key=lambda m: m.name):
                conn.execute(QUERIES["record_migration"], (migration.name, migration.checksum))
            for name, text in scripts:
                _execute(conn, name, text)
        return sorted(m.name for m in run + record)
    finally:
        conn.rollback()
        conn.execute(QUERIES["migrate_unlock"])
        conn.commit()


def _execute(conn: psycopg.Connection, name: str, text: str) -> None:
    try:
        with conn.transaction():  # a savepoint: the error names its file
            conn.execute(text)
    except psycopg.Error as exc:
        raise MigrationError(f"{name} failed: {exc}".strip()) from exc
