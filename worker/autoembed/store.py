"""Every query of the worker pipeline, on the pool's connections: the job queue (read, requeue,
finish, release, archive), row claims, registered sources, current content, the guarded write-back,
failure records and what the worker found wrong with a source. The named queries are those of
sql/queries.sql; pgmq's own operations go through pgmq-py. The stages (fetch, embed, commit) and the worker loop run no SQL themselves."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID

import numpy as np
import psycopg
from pgmq import PGMQueue
from psycopg_pool import ConnectionPool

from autoembed.jobs import Job, decode_message, job_defect, parse_job
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
    #: rows are split into chunks (autoembed.chunks_<id>), at most `chunk_tokens` (None: the model's
    #: window) overlapping by `chunk_overlap` (None: the default; autoembed.passages)
    chunked: bool = False
    chunk_tokens: int | None = None
    chunk_overlap: int | None = None
    #: put before search queries, and before row content or chunks, when they are embedded
    query_prompt: str = ""
    passage_prompt: str = ""


@dataclass(frozen=True)
class Content:
    """A row's current content as autoembed.load_content sees it. `up_to_date`: its stored vector
    already embeds this content; `error`: why the content could not be computed, and `error_kind`
    of which kind: 'key' (the key cannot be one of the table's: a poison job), 'row' (the content
    function raised for this row) or 'source' (the content cannot be evaluated at all)."""

    pk: str
    content: str | None
    content_hash: UUID | None
    up_to_date: bool
    error: str | None
    error_kind: str | None


@dataclass(frozen=True)
class StoredChunk:
    """One chunk of a row as its source's chunk table holds it: the md5 of its text and which of
    equal texts in the row it is (`occurrence`), its place, its text and its vector."""

    chunk_hash: UUID
    occurrence: int
    position: int
    start: int
    end: int
    text: str
    vector: np.ndarray


@dataclass(frozen=True)
class Failure:
    """Why one row could not be embedded (a row of autoembed.failures)."""

    pk: str
    content_hash: UUID | None
    error_class: str
    message: str
    attempts: int


def served_sources(conn: psycopg.Connection, watches: Sequence[str] = ()) -> list[Source]:
    """The registrations a worker limited to `watches` ('table' or 'table.name' each; empty: every
    watch) serves, in id order."""
    served = conn.execute(QUERIES["watch_ids"], (list(watches), False)).fetchone()[0] if watches else None
    return [Source(*row) for row in conn.execute(QUERIES["sources"]).fetchall() if served is None or row[0] in served]


class Store:
    """The pipeline's database access, on connections of `pool` (autocommit). A worker limited to
    some watches (Settings.watches: 'table' or 'table.name' each) reads and counts only their jobs."""

    def __init__(self, pool: ConnectionPool, watches: Sequence[str] = ()):
        self.pool = pool
        self._pgmq = PGMQueue(pool=pool, init_extension=False)  # the migrations own the schema
        self.watches: tuple[str, ...] = tuple(watches)

    def _watches(self) -> list[str] | None:
        """The watches as autoembed.watch_ids takes them (NULL: all)."""
        return list(self.watches) or None

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
        """The registrations this store serves (all, unless limited to some watches), by id."""
        return {source.id: source for source in served_sources(conn, self.watches)}

    def read_jobs(self, conn: psycopg.Connection, max_rows: int,
                  visibility_timeout: int) -> tuple[list[Job], list[tuple[int, str]]]:
        """Read visible jobs naming up to `max_rows` rows, hiding them for `visibility_timeout` seconds.

        Returns the jobs, and the malformed messages (not jobs autoembed could have written) with
        why. Messages come as text and are decoded here, never by the driver: one nested too
        deeply must not fail the read.
        """
        jobs, malformed = [], []
        for msg_id, read_ct, text in conn.execute(QUERIES["read_jobs"], (max_rows, visibility_timeout, self._watches())):
            body = decode_message(text)
            job = parse_job(msg_id, read_ct, body)
            if job is None:
                malformed.append((msg_id, job_defect(body)))
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

    def load_chunk_vectors(self, conn: psycopg.Connection, source_id: int,
                           pks: list[str]) -> dict[str, dict[UUID, np.ndarray]]:
        """The vectors the rows' chunks have now: row -> chunk text hash -> vector."""
        found: dict[str, dict[UUID, np.ndarray]] = {}
        for pk, chunk_hash, vector in conn.execute(QUERIES["load_chunk_vectors"], (source_id, pks), binary=True):
            found.setdefault(pk, {})[chunk_hash] = vector.to_numpy()
        return found

    def queue_depth(self, conn: psycopg.Connection, excluding: Collection[int] = ()) -> tuple[int, int]:
        """Rows named by the queue's messages, visible or not: all of them, and those of the
        watches this store serves (all, unless limited) but not of the sources `excluding`."""
        return conn.execute(QUERIES["queue_depth"], {"excluding": list(excluding), "watches": self._watches()}).fetchone()

    def table_exists(self, conn: psycopg.Connection, source_id: int) -> bool:
        """Whether the table of a source is still there (not dropped)."""
        return conn.execute(QUERIES["source_table_exists"], (source_id,)).fetchone()[0]

    def worker_role(self, conn: psycopg.Connection) -> tuple[str, bool | None]:
        """The role connected, and whether it is a member of autoembed_worker (None: no such role)."""
        return conn.execute(QUERIES["worker_role"]).fetchone()

    def missing_grants(self, conn: psycopg.Connection) -> list[str]:
        """The GRANT statements autoembed's roles still need (autoembed.missing_grants), each with the
        role that may run it; empty where that check is not installed."""
        if not conn.execute(QUERIES["missing_grants_installed"]).fetchone()[0]:
            return []
        return [f"{statement};  -- as {run_as}" for statement, run_as in conn.execute(QUERIES["missing_grants"])]

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

    def write_chunks(self, conn: psycopg.Connection, source: Source, pks: list[str], hashes: list[UUID | None],
                     vectors: list[np.ndarray | None], chunk_sets: list[tuple[StoredChunk, ...]]) -> set[str]:
        """Like write_embeddings (each row's own vector is the mean of its chunks'), and in the same
        transaction each written row's chunks replaced by `chunk_sets` (aligned with `pks`)."""
        if not pks:
            return set()
        chunks = [(pk, chunk) for pk, chunk_set in zip(pks, chunk_sets, strict=True) for chunk in chunk_set]
        columns = ([pk for pk, _ in chunks], [c.chunk_hash for _, c in chunks], [c.occurrence for _, c in chunks],
                   [c.position for _, c in chunks], [c.start for _, c in chunks], [c.end for _, c in chunks],
                   [c.text for _, c in chunks], [c.vector for _, c in chunks])
        rows = conn.execute(QUERIES["write_chunks"],
                            (source.id, source.embedder, source.model, pks, hashes, vectors, *columns),
                            binary=True).fetchall()
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

    def release_jobs(self, conn: psycopg.Connection, msg_ids: list[int]) -> None:
        """Make read jobs visible again at once."""
        if msg_ids:
            conn.execute(QUERIES["release_jobs"], (list(msg_ids),))

    def report_problem(self, conn: psycopg.Connection, source_id: int, problem: str | None) -> None:
        """Record what is wrong with a source (None: nothing), for autoembed.status."""
        conn.execute(QUERIES["report_problem"], (source_id, problem))
