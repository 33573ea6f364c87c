"""What the CLI and library users call: watch and unwatch tables, enqueue and re-drive rows, read
status and failures, search. Each function takes an open connection and plain arguments and
returns plain data; it runs as the connection's user. The worker itself is autoembed.worker.

A table may have several watches, each named (by default after its embedding column). Every
function that takes a table also takes `watch`, the watch's name: needed only where the table has
more than one (the error lists them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from autoembed.embedders import EmbedderCache, build_embedder, default_model
from autoembed.embedders.inputs import embed_query
from autoembed.errors import ConfigError
from autoembed.indexes import build_index
from autoembed.queries import QUERIES
from autoembed.settings import Settings

#: how a source's vectors are compared (autoembed.watch's `distance`)
DISTANCES = ("cosine", "l2", "inner_product")


#: the vector index of a chunked watch's chunk table (autoembed.watch's `chunk_index`)
CHUNK_INDEXES = ("hnsw", "none")

#: the vector index a watch wants on its embedding column, built after the backfill (autoembed.watch's `index`)
INDEXES = ("hnsw", "ivfflat", "none")


@dataclass(frozen=True)
class IndexBuild:
    """What `build_indexes` did for one watch: its table and name, and the state of its index
    afterwards (autoembed.index_status: 'ready: ...', 'none wanted', ...), `built` when it built it."""

    source: str
    watch: str
    state: str
    built: bool


@dataclass(frozen=True)
class Hit:
    """One search result: the row's key, its content and its distance to the query; for a chunked
    watch also the row's nearest chunk and its position among the row's chunks (from 0)."""

    pk: str
    content: str | None
    distance: float
    chunk: str | None = None
    chunk_position: int | None = None


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
          embedding_column: str = "embedding", embedder: str = "local", model: str | None = None,
          distance: str = "cosine", max_attempts: int = 5, clear_on_change: bool = True, backfill: bool = True,
          chunks: bool = False, chunk_tokens: int | None = None, chunk_overlap: int | None = None,
          chunk_index: str = "hnsw", query_prompt: str | None = None, passage_prompt: str | None = None,
          name: str | None = None, index: str = "none", check_model: bool = True) -> int:
    """Watch `table` (autoembed.watch) and return its source id. `name` is the watch's (None: the
    embedding column's): watching again under a name changes that watch, under another adds one,
    which must fill another column. With `chunks`, rows are split into
    chunks of at most `chunk_tokens` tokens (None: the model's window, at most 512) overlapping by
    `chunk_overlap`, kept in a chunk table with a `chunk_index` (hnsw or none). `query_prompt` and
    `passage_prompt` go before queries and passages (None: the model family's). `index` (hnsw,
    ivfflat or none) is the vector index the worker builds on the column once the backfill is done
    (build_indexes builds it at once). `model` None is the
    embedder's default (registry.default_model). With `check_model`,
    the embedder is built now (with `settings`) and a model whose dimension differs from the
    column's is refused with ConfigError, changing nothing: both happen in one transaction."""
    model = model or default_model(embedder)
    with conn.transaction():
        source_id = conn.execute(QUERIES["watch"], {
            "table": table, "content": content, "embedding_column": embedding_column, "embedder": embedder,
            "model": model, "distance": distance, "max_attempts": max_attempts,
            "clear_on_change": clear_on_change, "backfill": backfill, "chunks": chunks,
            "chunk_tokens": chunk_tokens, "chunk_overlap": chunk_overlap, "chunk_index": chunk_index,
            "query_prompt": query_prompt, "passage_prompt": passage_prompt, "name": name, "index": index,
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


def unwatch(conn: psycopg.Connection, table: str, *, watch: str | None = None) -> str:
    """Stop watching `table` (its watch `watch`): its triggers and pending jobs go, stored vectors
    stay. Returns what was dropped, in a sentence (autoembed.unwatch's)."""
    return conn.execute(QUERIES["unwatch"], (table, watch)).fetchone()[0]


def backfill(conn: psycopg.Connection, table: str, *, only_missing: bool = True, watch: str | None = None) -> int:
    """Enqueue existing rows of `table` (only those without an embedding, by default) for its
    watch `watch`; returns how many."""
    return conn.execute(QUERIES["backfill"], (table, only_missing, watch)).fetchone()[0]


def progress(conn: psycopg.Connection, table: str, *, watch: str | None = None) -> Progress:
    """Rows, embedded, pending and failed of one watch of a table."""
    return Progress(*conn.execute(QUERIES["source_progress"], (table, watch)).fetchone())


def retry_failures(conn: psycopg.Connection, table: str | None = None, *, watch: str | None = None) -> int:
    """Re-enqueue failed rows (of `table`'s watch, or of every watch) and clear their records;
    returns how many."""
    return conn.execute(QUERIES["retry_failures"], (table, watch)).fetchone()[0]


def check_watches(conn: psycopg.Connection, watches: Sequence[str]) -> list[int]:
    """The source ids of `watches` ('table' or 'table.name' each, as Settings.watches holds them);
    ConfigError naming the first that names no watch."""
    try:
        with conn.transaction():
            return conn.execute(QUERIES["watch_ids"], (list(watches), True)).fetchone()[0]
    except psycopg.errors.RaiseException as exc:
        raise ConfigError(f"AUTOEMBED_WATCHES (--watches): {exc.diag.message_primary.removeprefix('autoembed: ')}") from exc


def build_indexes(conn: psycopg.Connection, table: str | None = None, *, watch: str | None = None,
                  settings: Settings) -> list[IndexBuild]:
    """Build now (CREATE INDEX CONCURRENTLY, backfill done or not) the missing vector indexes that
    the watches of `table` (its watch `watch`; None: every watched table) want, with the settings'
    maintenance_work_mem and parallel workers. `conn` must be in autocommit mode and its role own
    the tables. Returns per watch the state of its index afterwards."""
    if watch is not None and table is None:
        raise ConfigError("a watch is named with its table: autoembed index TABLE --watch NAME")
    sources = conn.execute(QUERIES["index_sources"], {"table": table, "watch": watch}).fetchall()
    if table is not None and not sources:
        raise ConfigError(f"table {table} is not watched")
    done = []
    for source_id, source, name, kind in sources:
        before = conn.execute(QUERIES["index_state"], (source_id,)).fetchone()[0]
        state = build_index(conn, source_id, settings) if kind != "none" else before
        if state is None:
            state = "building: another session is building it now"
        done.append(IndexBuild(source, name, state, built=state != before and state.startswith("ready")))
    return done


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


def failures(conn: psycopg.Connection, table: str | None = None, limit: int = 50, *,
             watch: str | None = None) -> list[dict]:
    """The most recent failure records (of one table's watch, or all)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(QUERIES["failures"], {"table": table, "watch": watch, "limit": limit}).fetchall()


def search(conn: psycopg.Connection, table: str, query: str, k: int = 5, *, settings: Settings,
           embedders: EmbedderCache | None = None, chunks_per_row: int = 1, watch: str | None = None) -> list[Hit]:
    """The `k` rows of `table` (by its watch `watch`) nearest to `query`, embedded with the table's own embedder after its
    query prompt, by the table's distance (cosine by default); for a chunked watch each row comes
    with its nearest chunk, or up to `chunks_per_row` of its chunks (then hits are the `k` nearest
    chunks, several of a row allowed).

    Runs as the connection's user, so row-level security applies; uses the vector index if any.
    """
    if not query or not query.strip():
        raise ConfigError("search query must not be empty")
    if k < 1 or chunks_per_row < 1:
        raise ConfigError(f"k and chunks_per_row must be at least 1, got {k} and {chunks_per_row}")
    kind, model, dimensions, query_prompt = conn.execute(QUERIES["search_settings"], (table, watch)).fetchone()
    embedders = embedders or EmbedderCache(settings)
    vector = embed_query(embedders.get(kind, model, dimensions), query, query_prompt)
    rows = conn.execute(QUERIES["search"], (table, vector, k, chunks_per_row, watch), binary=True).fetchall()
    return [Hit(*row) for row in rows]
