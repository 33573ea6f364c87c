"""What the CLI and library users call: watch and unwatch tables, enqueue and re-drive rows, read
status and failures, search. Each function takes an open connection and plain arguments and
returns plain data; it runs as the connection's user. The worker itself is autoembed.worker."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from autoembed.embedders import DEFAULT_MODEL, EmbedderCache, build_embedder
from autoembed.errors import ConfigError
from autoembed.queries import QUERIES
from autoembed.settings import Settings

#: how a source's vectors are compared (autoembed.watch's `distance`)
DISTANCES = ("cosine", "l2", "inner_product")


@dataclass(frozen=True)
class Hit:
    """One search result: the row's key, its content and its distance to the query."""

    pk: str
    content: str | None
    distance: float


@dataclass(frozen=True)
class Status:
    """A snapshot of autoembed in one database."""

    sources: list[dict]
    queue: dict
    capabilities: list[dict]


@dataclass(frozen=True)
class Progress:
    """How far one watched table is (a row of autoembed.status)."""

    rows: int | None
    embedded: int | None
    pending: int
    failed: int


def watch(conn: psycopg.Connection, table: str, content: str, *, settings: Settings,
          embedding_column: str = "embedding", embedder: str = "local", model: str = DEFAULT_MODEL,
          distance: str = "cosine", max_attempts: int = 5, clear_on_change: bool = True, backfill: bool = True,
          check_model: bool = True) -> int:
    """Watch `table` (autoembed.watch) and return its source id. With `check_model`, the embedder is
    built now (with `settings`) and a model whose dimension differs from the column's is refused
    with ConfigError, changing nothing: both happen in one transaction."""
    with conn.transaction():
        source_id = conn.execute(QUERIES["watch"], {
            "table": table, "content": content, "embedding_column": embedding_column, "embedder": embedder,
            "model": model, "distance": distance, "max_attempts": max_attempts,
            "clear_on_change": clear_on_change, "backfill": backfill,
        }).fetchone()[0]
        dimensions = conn.execute(QUERIES["source_dimensions"], (source_id,)).fetchone()[0]
        if check_model:
            built = build_embedder(embedder, model, dimensions, settings)
            try:
                if built.dimensions != dimensions:
                    raise ConfigError(
                        f"model {model} makes {built.dimensions}-dimensional vectors, but {table}.{embedding_column} "
                        f"holds {dimensions}: nothing was changed"
                    )
            finally:
                built.close()
    return source_id


def unwatch(conn: psycopg.Connection, table: str) -> None:
    """Stop watching `table`: its triggers and pending jobs go, stored vectors stay."""
    conn.execute(QUERIES["unwatch"], (table,))


def backfill(conn: psycopg.Connection, table: str, *, only_missing: bool = True) -> int:
    """Enqueue existing rows of `table` (only those without an embedding, by default); returns how many."""
    return conn.execute(QUERIES["backfill"], (table, only_missing)).fetchone()[0]


def progress(conn: psycopg.Connection, table: str) -> Progress:
    """Rows, embedded, pending and failed of one watched table."""
    return Progress(*conn.execute(QUERIES["source_progress"], (table,)).fetchone())


def retry_failures(conn: psycopg.Connection, table: str | None = None) -> int:
    """Re-enqueue failed rows (of `table`, or of every table) and clear their records; returns how many."""
    return conn.execute(QUERIES["retry_failures"], (table,)).fetchone()[0]


def sweep(conn: psycopg.Connection) -> int:
    """Re-enqueue rows missing an embedding with no job and no failure; returns how many."""
    return conn.execute(QUERIES["sweep"]).fetchone()[0]


def status(conn: psycopg.Connection) -> Status:
    """Read autoembed.status, autoembed.queue_status and autoembed.capabilities()."""
    with conn.cursor(row_factory=dict_row) as cur:
        sources = cur.execute(QUERIES["status"]).fetchall()
        queue = cur.execute(QUERIES["queue_status"]).fetchone() or {}
    return Status(sources, queue, capabilities(conn))


def capabilities(conn: psycopg.Connection) -> list[dict]:
    """Which optional extensions (pg_cron, pg_net, ...) the database has, and what their absence costs."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(QUERIES["capabilities"]).fetchall()


def failures(conn: psycopg.Connection, table: str | None = None, limit: int = 50) -> list[dict]:
    """The most recent failure records (of one table, or all)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(QUERIES["failures"], (table, table, limit)).fetchall()


def search(conn: psycopg.Connection, table: str, query: str, k: int = 5, *, settings: Settings,
           embedders: EmbedderCache | None = None) -> list[Hit]:
    """The `k` rows of `table` nearest to `query`, embedded with the table's own embedder, by the
    table's distance (cosine by default).

    Runs as the connection's user, so row-level security applies; uses the vector index if any.
    """
    if not query or not query.strip():
        raise ConfigError("search query must not be empty")
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    row = conn.execute(QUERIES["source_for_table"], (table,)).fetchone()
    if row is None:
        raise ConfigError(f"table {table} is not watched by autoembed")
    kind, model, dimensions = row
    embedders = embedders or EmbedderCache(settings)
    vector = embedders.get(kind, model, dimensions).embed([query])[0]
    rows = conn.execute(QUERIES["search"], (table, vector, k), binary=True).fetchall()
    return [Hit(pk, content, distance) for pk, content, distance in rows]
