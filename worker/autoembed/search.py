"""Similarity search over a watched table: embed the query with the table's own embedder."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from autoembed.embedders import EmbedderCache
from autoembed.errors import ConfigError
from autoembed.queries import QUERIES
from autoembed.settings import Settings


@dataclass(frozen=True)
class Hit:
    """One search result: the row's key, its content and its distance to the query."""

    pk: str
    content: str | None
    distance: float


def search(conn: psycopg.Connection, table: str, query: str, k: int = 5, *, settings: Settings,
           embedders: EmbedderCache | None = None) -> list[Hit]:
    """The `k` rows of `table` nearest to `query`, by the table's distance (cosine by default).

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
