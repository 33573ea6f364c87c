"""Helpers shared by the integration and acceptance tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import psycopg

from autoembed.embedders import EmbedderCache
from autoembed.embedders.base import Embedder
from autoembed.embedders.hashing import HashingEmbedder
from autoembed.settings import Settings
from autoembed.worker import Worker

DIMS = 16


def create_docs(conn: psycopg.Connection, table: str = "docs", pk: str = "bigint generated always as identity",
                dims: int = DIMS, vector_type: str = "vector") -> None:
    """A table with id, title, body, views and an embedding column (names are test constants)."""
    conn.execute(f"create table {table} (id {pk} primary key, title text, body text, views int default 0, "
                 f"embedding {vector_type}({dims}))")


def watch(conn: psycopg.Connection, table: str = "docs", content: str = "body", **options) -> int:
    """autoembed.watch with the hashing embedder unless told otherwise."""
    args = {"embedder": "hashing", "model": "hashing-test", **options}
    named = ", ".join(f"{name} => %({name})s" for name in args)
    return conn.execute(f"select autoembed.watch(%(t)s::regclass, %(c)s, {named})",
                        {"t": table, "c": content, **args}).fetchone()[0]


def queue_depth(conn: psycopg.Connection) -> int:
    """Rows waiting in the job queue (a message may name many)."""
    return conn.execute("select count(*) from autoembed.jobs").fetchone()[0]


def expected(text: str, dims: int = DIMS) -> np.ndarray:
    """The hashing embedder's vector for `text`."""
    return HashingEmbedder("hashing-test", dims).embed([text])[0]


class RecordingEmbedder(Embedder):
    """Wraps a real embedder: records every text embedded, and can run a hook before embedding
    (tests use it to change rows while the model 'runs') or fail on chosen texts."""

    def __init__(self, inner: Embedder, before: Callable[[Sequence[str]], None] | None = None):
        self.inner = inner
        self.kind, self.model = inner.kind, inner.model
        self.before = before
        self.calls: list[list[str]] = []

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    def embed(self, texts):
        self.calls.append(list(texts))
        if self.before:
            self.before(texts)
        return self.inner.embed(texts)

    @property
    def texts(self) -> list[str]:
        return [t for call in self.calls for t in call]


class FixedEmbedders(EmbedderCache):
    """An embedder cache that hands out one given embedder for every source."""

    def __init__(self, settings: Settings, embedder: Embedder):
        super().__init__(settings)
        self.embedder = embedder

    def get(self, kind: str, model: str, dimensions: int) -> Embedder:
        return self.embedder

    def wanted_batch_rows(self) -> int | None:
        return self.embedder.wanted_batch_rows()


def drain(dsn: str, settings: Settings, embedders: EmbedderCache | None = None) -> Worker:
    """Run an in-process worker until the queue is empty; returns it (closed)."""
    worker = Worker(settings, dsn, embedders)
    try:
        worker.run(drain=True)
    finally:
        worker.close()
    return worker
