"""Guarded write-back: vectors land only on rows whose content still has the embedded hash."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import numpy as np
import psycopg

from autoembed.queries import QUERIES
from autoembed.sources import Source


@dataclass(frozen=True)
class Failure:
    """Why one row could not be embedded."""

    pk: str
    content_hash: UUID | None
    error_class: str
    message: str
    attempts: int


def write_vectors(
    conn: psycopg.Connection, source: Source, pks: list[str], hashes: list[UUID | None],
    vectors: list[np.ndarray | None],
) -> set[str]:
    """One statement for the whole batch, guarded by content hash and by the source's embedder and
    model; returns the rows whose vector now embeds their content. A None vector clears the column."""
    if not pks:
        return set()
    rows = conn.execute(QUERIES["write_embeddings"], (source.id, source.embedder, source.model, pks, hashes, vectors),
                        binary=True).fetchall()
    return {row[0] for row in rows}


def record_failures(conn: psycopg.Connection, source_id: int, failures: list[Failure]) -> set[str]:
    """Upsert failure records (skipped for rows whose content changed since); returns rows recorded."""
    if not failures:
        return set()
    rows = conn.execute(
        QUERIES["record_failures"],
        (
            source_id,
            [f.pk for f in failures],
            [f.content_hash for f in failures],
            [f.error_class for f in failures],
            [f.message for f in failures],
            [f.attempts for f in failures],
        ),
    ).fetchall()
    return {row[0] for row in rows}
