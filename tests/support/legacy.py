"""Databases as autoembed 0.1 left them: its seven migrations applied the way its runner applied
them (SQL-only pgmq first, each file in its own transaction, recorded with its checksum), with
no baseline and no current-definition files. Upgrade tests start from here."""

from __future__ import annotations

import psycopg

from autoembed.migrate import ensure_pgmq, migration_files
from autoembed.queries import QUERIES

#: the migrations autoembed 0.1 shipped, in order: those the baseline stands in for
BASELINE = next(m for m in migration_files() if m.replaces)
RELEASE_0_1 = [m for m in migration_files() if m.name in BASELINE.replaces]


def apply_release_0_1(conn: psycopg.Connection, before: str | None = None) -> list[str]:
    """Apply 0.1's migrations (those named before `before`, or all) as 0.1 did; returns their names."""
    ensure_pgmq(conn)
    conn.commit()
    with conn.transaction():
        conn.execute(QUERIES["migration_ledger"])
    names = []
    for migration in RELEASE_0_1:
        if before is not None and migration.name >= before:
            break
        with conn.transaction():
            conn.execute(migration.text)
            conn.execute(QUERIES["record_migration"], (migration.name, migration.checksum))
        names.append(migration.name)
    return names
