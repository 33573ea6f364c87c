"""Registered sources (autoembed.sources), as the worker needs them."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from autoembed.queries import QUERIES


@dataclass(frozen=True)
class Source:
    """A watched table: how to embed its rows and how often to try."""

    id: int
    table_name: str
    embedder: str
    model: str
    dimensions: int
    max_attempts: int


def load_sources(conn: psycopg.Connection) -> dict[int, Source]:
    """All registrations, by id."""
    return {row[0]: Source(*row) for row in conn.execute(QUERIES["sources"]).fetchall()}
