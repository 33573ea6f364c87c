"""Applies db/migrations in order, each in its own transaction, recording name and checksum."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pgmq.install import install_pgmq_from_sql

from autoembed.errors import MigrationError
from autoembed.queries import QUERIES

log = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    name: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def migration_files(directory: Path) -> list[Migration]:
    """The .sql files of `directory` in apply order; a misnamed file is an error."""
    if not directory.is_dir():
        raise MigrationError(f"migrations folder {directory} does not exist")
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        if not MIGRATION_NAME.match(path.name):
            raise MigrationError(
                f"{path.name}: migration files are named <14-digit timestamp>_<lowercase_name>.sql"
            )
        migrations.append(Migration(path.name, path))
    return migrations


def ensure_pgmq(conn: psycopg.Connection) -> str:
    """Make pgmq usable: the extension where the server has it, else the SQL-only install."""
    state = conn.execute(QUERIES["pgmq_state"]).fetchone()
    installed, available = state
    if installed:
        return "present"
    if available:
        return "extension available"  # the core migration creates it
    version = install_pgmq_from_sql(conn=conn)
    log.info("installed SQL-only pgmq", extra={"pgmq_version": version})
    return f"installed SQL-only pgmq {version}"


def applied_migrations(conn: psycopg.Connection) -> dict[str, str]:
    """name -> checksum of the migrations this database has applied."""
    with conn.transaction():
        conn.execute(QUERIES["create_migrations_table"])
    return dict(conn.execute(QUERIES["applied_migrations"]).fetchall())


def apply_migrations(conn: psycopg.Connection, directory: Path) -> list[str]:
    """Apply pending migrations from `directory`; returns the names applied (none: a no-op).

    `conn` must not be in autocommit mode. Refuses to run when an applied file was edited.
    """
    files = migration_files(directory)
    conn.execute(QUERIES["migrate_lock"])
    try:
        applied = applied_migrations(conn)
        for migration in files:
            recorded = applied.get(migration.name)
            if recorded is not None and recorded != migration.checksum:
                raise MigrationError(
                    f"{migration.name} was edited after it was applied (checksum {recorded[:12]} in the "
                    f"database, {migration.checksum[:12]} on disk): migrations are append-only, add a new file"
                )
        pending = [m for m in files if m.name not in applied]
        if pending:
            ensure_pgmq(conn)
            conn.commit()
        for migration in pending:
            try:
                with conn.transaction():
                    conn.execute(migration.path.read_text(encoding="utf-8"))
                    conn.execute(QUERIES["record_migration"], (migration.name, migration.checksum))
            except psycopg.Error as exc:
                raise MigrationError(f"{migration.name} failed: {exc}".strip()) from exc
            log.info("applied migration", extra={"migration": migration.name})
        return [m.name for m in pending]
    finally:
        conn.rollback()
        conn.execute(QUERIES["migrate_unlock"])
        conn.commit()
