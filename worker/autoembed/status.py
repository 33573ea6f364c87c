"""What operators and `autoembed status` see: per-source progress, queue metrics, capabilities."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from autoembed.queries import QUERIES


@dataclass(frozen=True)
class Status:
    """A snapshot of autoembed in one database."""

    sources: list[dict]
    queue: dict
    capabilities: list[dict]


def fetch_status(conn: psycopg.Connection) -> Status:
    """Read autoembed.status, autoembed.queue_status and autoembed.capabilities()."""
    with conn.cursor(row_factory=dict_row) as cur:
        sources = cur.execute(QUERIES["status"]).fetchall()
        queue = cur.execute(QUERIES["queue_status"]).fetchone() or {}
        capabilities = cur.execute(QUERIES["capabilities"]).fetchall()
    return Status(sources, queue, capabilities)


def fetch_failures(conn: psycopg.Connection, table: str | None = None, limit: int = 50) -> list[dict]:
    """The most recent failure records (of one table, or all)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(QUERIES["failures"], (table, table, limit)).fetchall()
