"""Every query of the worker pipeline, on the pool's connections: the job queue (read, requeue,
finish, delay, archive), row claims, registered sources, current content, the guarded write-back
and failure records. The named queries are those of sql/queries.sql; pgmq's own operations go
through pgmq-py. The stages (fetch, embed, commit) and the worker loop run no SQL themselves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID

import numpy as np
import psycopg
from pgmq import PGMQueue
from psycopg_pool import ConnectionPool

from autoembed.jobs import Job, parse_job
from autoembed.queries import QUERIES

QUEUE_NAME = "autoembed_jobs"


@dataclass(frozen=True)
class Source:
    """A watched table (a row of autoembed.sources): how to embed its rows and how often to try."""

    id: int
    table_name: str
    embedder: str
    model: str
    dimensions: int
    max_attempts: int


@dataclass(frozen=True)
class Content:
    """A row's current content as autoembed.load_content sees it. `up_to_date`: its stored vector
    already embeds this content; `error`: why the content could not be computed."""

    pk: str
    content: str | None
    content_hash: UUID | None
    up_to_date: bool
    error: str | None


@dataclass(frozen=True)
class Failure:
    """Why one row could not be embedded (a row of autoembed.failures)."""

    pk: str
    content_hash: UUID | None
    error_class: str
    message: str
    attempts: int


class Store:
    """The pipeline's database access, on connections of `pool` (autocommit)."""

    def __init__(self, pool: ConnectionPool):
        self.pool = pool
        self._pgmq = PGMQueue(pool=pool, init_extension=False)  # the migrations own the schema

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection of the pool; each statement commits on its own."""
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A connection of the pool inside one transaction, committed when the block ends."""
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    # -- reads ------------------------------------------------------------------------------------
    def sources(self, conn: psycopg.Connection) -> dict[int, Source]:
        """All registrations, by id."""
        return {row[0]: Source(*row) for row in conn.execute(QUERIES["sources"]).fetchall()}

    def read_jobs(self, conn: psycopg.Connection, max_rows: int,
                  visibility_timeout: int) -> tuple[list[Job], list[int]]:
        """Read visible jobs naming up to `max_rows` rows, hiding them for `visibility_timeout` seconds.

        Returns the jobs and the ids of malformed messages (not written by autoembed).
        """
        jobs, malformed = [], []
        for msg_id, read_ct, body in conn.execute(QUERIES["read_jobs"], (max_rows, visibility_timeout)):
            job = parse_job(msg_id, read_ct, body)
            if job is None:
                malformed.append(msg_id)
            else:
                jobs.append(job)
        return jobs, malformed

    def claim_rows(self, conn: psycopg.Connection, source_id: int, pks: list[str],
                   visibility_timeout: int) -> set[str]:
        """Claim rows for `visibility_timeout` seconds; returns those no other batch holds."""
        return {row[0] for row in conn.execute(QUERIES["claim_rows"], (source_id, pks, visibility_timeout))}

    def load_content(self, conn: psycopg.Connection, source_id: int, pks: list[str]) -> list[Content]:
        """The current content of the rows that still exist (one query for the whole source)."""
        return [Content(*row) for row in conn.execute(QUERIES["load_content"], (source_id, pks)).fetchall()]

    def queue_depth(self, conn: psycopg.Connection) -> int:
        """Rows named by the queue's messages, visible or not."""
        return conn.execute(QUERIES["queue_depth"]).fetchone()[0]

    # -- writes (inside the caller's transaction) -------------------------------------------------
    def limit_lock_wait(self, conn: psycopg.Connection) -> None:
        """Give up a row lock after a short wait for the rest of this transaction (queries.sql:
        writeback_lock_timeout), well before PostgreSQL's deadlock check."""
        conn.execute(QUERIES["writeback_lock_timeout"])

    def write_embeddings(self, conn: psycopg.Connection, source: Source, pks: list[str],
                         hashes: list[UUID | None], vectors: list[np.ndarray | None]) -> set[str]:
        """One statement for the whole batch, guarded by content hash and by the source's embedder and
        model; returns the rows whose vector now embeds their content. A None vector clears the column."""
        if not pks:
            return set()
        rows = conn.execute(QUERIES["write_embeddings"],
                            (source.id, source.embedder, source.model, pks, hashes, vectors), binary=True).fetchall()
        return {row[0] for row in rows}

    def record_failures(self, conn: psycopg.Connection, source_id: int, failures: list[Failure]) -> set[str]:
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

    def release_claims(self, conn: psycopg.Connection, claimed: dict[int, list[str]]) -> None:
        """Free the rows a batch claimed (source_id -> keys)."""
        for source_id, pks in claimed.items():
            if pks:
                conn.execute(QUERIES["release_claims"], (source_id, pks))

    def requeue(self, conn: psycopg.Connection, source_id: int, pks: list[str], attempt: int, delay: int) -> None:
        """Queue rows again as a new job that has had `attempt` attempts, visible in `delay` seconds."""
        if pks:
            conn.execute(QUERIES["enqueue"], (source_id, pks, attempt, delay))

    def delete_messages(self, conn: psycopg.Connection, msg_ids: list[int]) -> None:
        """Remove finished jobs."""
        if msg_ids:
            self._pgmq.delete_batch(QUEUE_NAME, msg_ids, conn=conn)

    def archive_messages(self, conn: psycopg.Connection, msg_ids: list[int]) -> None:
        """Move jobs that will not be retried to the archive (kept 7 days by the sweep)."""
        if msg_ids:
            self._pgmq.archive_batch(QUEUE_NAME, msg_ids, conn=conn)

    def delay_messages(self, conn: psycopg.Connection, msg_ids: list[int], seconds: int) -> None:
        """Hide jobs for `seconds` more (0 makes them visible at once)."""
        if msg_ids:
            self._pgmq.set_vt(QUEUE_NAME, list(msg_ids), int(seconds), conn=conn)
