"""One batch of jobs in three stages: fetch (read jobs, load current content), embed (no database
transaction open), commit (one short transaction: guarded writes, failures, and the batch's
messages replaced by new ones for the rows that need another attempt). The worker loop runs the
stages of consecutive batches concurrently."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from uuid import UUID

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from autoembed import metrics
from autoembed.embedders import EmbedderCache
from autoembed.embedders.base import Embedder
from autoembed.errors import ConfigError, EmbeddingError
from autoembed.jobs import RowJobs, group_jobs
from autoembed.queries import QUERIES
from autoembed.queue import JobQueue
from autoembed.retry import retry_delay
from autoembed.settings import Settings
from autoembed.sources import Source, load_sources
from autoembed.writeback import Failure, record_failures, write_vectors

log = logging.getLogger(__name__)

CLAIM_WAIT = 2  # seconds a job waits when another batch is embedding its row right now
COMMIT_TRIES = 5  # a lock conflict (timeout, deadlock, serialization failure) is retried this many times
# The write-back gives up a row lock after 200 ms (queries.sql: writeback_lock_timeout), well before
# PostgreSQL's deadlock check (deadlock_timeout, 1 s): in a lock cycle with an application
# transaction the worker backs off and retries, instead of the application's statement failing.
ROLLED_BACK = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
               psycopg.errors.LockNotAvailable,
               psycopg.errors.TransactionRollback)  # psycopg does not derive the first three from the last
STRUCTURAL = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedFunction)

@dataclass
class Item:
    """One row to embed: its current content and the hash the write will be guarded by."""

    source: Source
    row: RowJobs
    content: str
    content_hash: UUID


@dataclass(frozen=True)
class Write:
    """A vector to write for a row (None clears it), guarded by the content hash it embeds."""

    row: RowJobs
    content_hash: UUID | None
    vector: np.ndarray | None


@dataclass
class Batch:
    """A batch in flight: rows still to embed, and everything decided so far.

    Its commit removes every message it read: deleted, or archived when it names a row that failed
    for good. Rows that need another attempt go back as new messages (`requeued`).
    """

    msg_ids: list[int] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    archived: set[int] = field(default_factory=set)
    requeued: dict[tuple[int, int, int], list[str]] = field(default_factory=lambda: defaultdict(list))
    writes: dict[int, list[Write]] = field(default_factory=lambda: defaultdict(list))
    sources: dict[int, Source] = field(default_factory=dict)
    claimed: dict[int, list[str]] = field(default_factory=dict)  # source_id -> rows this batch claimed
    failures: dict[int, list[Failure]] = field(default_factory=lambda: defaultdict(list))
    started: float = field(default_factory=time.perf_counter)

    @property
    def size(self) -> int:
        """How many queue messages the batch holds."""
        return len(self.msg_ids)

    def requeue(self, source_id: int, row: RowJobs, attempts: int, delay: int) -> None:
        """Queue `row` again, visible in `delay` seconds, as a job that has had `attempts` attempts."""
        self.requeued[(source_id, attempts, delay)].append(row.pk)

    def without_writes(self) -> Batch:
        """The rest of the batch once its writes are committed one by one."""
        return replace(self, items=[], writes=defaultdict(list), archived=set(self.archived),
                       requeued=defaultdict(list, {k: list(pks) for k, pks in self.requeued.items()}),
                       failures=defaultdict(list, {s: list(f) for s, f in self.failures.items()}))


def error_class(error: BaseException) -> str:
    """A short name for an error: the underlying cause's class where there is one."""
    cause = error.__cause__
    return type(cause).__name__ if cause is not None else type(error).__name__


class BatchProcessor:
    """The three stages of a batch, on connections from `pool`."""

    def __init__(self, settings: Settings, pool: ConnectionPool, embedders: EmbedderCache):
        self.settings = settings
        self.pool = pool
        self.queue = JobQueue(pool)
        self.embedders = embedders

    # -- stage 1: fetch ------------------------------------------------------------------------
    def fetch(self) -> Batch:
        """Read jobs naming up to batch_size rows and load the rows' current content (one query per source)."""
        batch = Batch()
        with self.pool.connection() as conn:
            jobs, malformed = self.queue.read(conn, self.settings.batch_size, self.settings.visibility_timeout)
            batch.msg_ids = [job.msg_id for job in jobs] + malformed
            batch.archived.update(malformed)
            if malformed:
                log.warning("archiving %d malformed messages", len(malformed))
            if jobs:  # read every batch: a re-watch (new model, new column) applies at once
                batch.sources = load_sources(conn)
            for source_id, rows in group_jobs(jobs).items():
                source = batch.sources.get(source_id)
                if source is None:  # unwatched since: nothing to do
                    continue
                rows = self._claim(conn, source_id, rows, batch)
                try:
                    loaded = conn.execute(QUERIES["load_content"], (source_id, list(rows))).fetchall()
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    self._broken_source(source, rows, exc, batch)
                    continue
                self._plan_rows(source, rows, loaded, batch)
        return batch

    def _claim(self, conn: psycopg.Connection, source_id: int, rows: dict[str, RowJobs],
               batch: Batch) -> dict[str, RowJobs]:
        """Claim the rows for this batch; rows another batch is embedding are requeued for CLAIM_WAIT s
        (by then that batch has written the vector, and the job finds its row up to date). Waiting
        is not an attempt."""
        claimed = {row[0] for row in conn.execute(
            QUERIES["claim_rows"], (source_id, list(rows), self.settings.visibility_timeout))}
        batch.claimed[source_id] = sorted(claimed)
        for pk, row in rows.items():
            if pk not in claimed:
                batch.requeue(source_id, row, row.attempt - 1, CLAIM_WAIT)
        return {pk: row for pk, row in rows.items() if pk in claimed}

    def _plan_rows(self, source: Source, rows: dict[str, RowJobs], loaded: list[tuple], batch: Batch) -> None:
        current = {pk: (content, content_hash, up_to_date, error) for pk, content, content_hash, up_to_date, error in loaded}
        for pk, row in rows.items():
            if pk not in current or current[pk][2]:  # deleted, or its vector already embeds this content
                metrics.ROWS.labels("skipped").inc()
                continue
            content, content_hash, _, error = current[pk]
            if error is not None:
                self._fail(source, row, None, "ContentError", f"the content of this row cannot be read: {error}", batch)
                continue
            if content is None or not content.strip():
                reason = "content is NULL" if content is None else "content is empty or whitespace only"
                batch.writes[source.id].append(Write(row, content_hash, None))
                self._fail(source, row, content_hash, "EmptyContent", f"{reason}: nothing to embed", batch)
                continue
            batch.items.append(Item(source, row, content, content_hash))

    def _broken_source(self, source: Source, rows: dict[str, RowJobs], exc: psycopg.Error, batch: Batch) -> None:
        """The source's table or columns changed under it: report it, keep serving the others."""
        dropped = isinstance(exc, psycopg.errors.UndefinedTable)
        log.error("source %s (%s) is broken: %s", source.id, source.table_name, str(exc).strip(),
                  extra={"source_id": source.id, "table": source.table_name})
        for row in rows.values():
            if dropped or row.attempt >= source.max_attempts:
                batch.archived.update(row.msg_ids)
                metrics.ROWS.labels("dropped").inc()
            else:
                delay = retry_delay(row.attempt, self.settings.backoff_base, self.settings.backoff_max)
                batch.requeue(source.id, row, row.attempt, delay)

    # -- stage 2: embed -------------------------------------------------------------------------
    def embed(self, batch: Batch) -> None:
        """Embed the batch's rows, grouped by embedder, in calls of at most its max_batch_size."""
        groups: dict[tuple[str, str, int], list[Item]] = defaultdict(list)
        for item in batch.items:
            groups[(item.source.embedder, item.source.model, item.source.dimensions)].append(item)
        for (kind, model, dimensions), group in groups.items():
            try:
                embedder = self.embedders.get(kind, model, dimensions)
            except ConfigError as exc:
                for item in group:
                    self._fail(item.source, item.row, item.content_hash, "ConfigError", str(exc), batch)
                continue
            step = max(1, embedder.max_batch_size)
            for start in range(0, len(group), step):  # one call per request-sized chunk: a failed
                self._embed_group(embedder, group[start:start + step], batch)  # call loses only its own

    def _embed_group(self, embedder: Embedder, group: list[Item], batch: Batch) -> None:
        """Embed a group; a permanent error splits it in halves so one bad row fails alone."""
        started = time.perf_counter()
        try:
            vectors = embedder.embed([item.content for item in group])
        except EmbeddingError as exc:
            if not exc.retryable and len(group) > 1:
                half = len(group) // 2
                self._embed_group(embedder, group[:half], batch)
                self._embed_group(embedder, group[half:], batch)
                return
            for item in group:
                self._retry_or_fail(item, exc, batch)
            return
        metrics.EMBED_SECONDS.observe(time.perf_counter() - started)
        for item, vector in zip(group, vectors, strict=True):
            if len(vector) != item.source.dimensions:
                message = (f"model {item.source.model} returned a {len(vector)}-dimensional vector, "
                           f"the column holds {item.source.dimensions}")
                self._fail(item.source, item.row, item.content_hash, "DimensionMismatch", message, batch)
                continue
            batch.writes[item.source.id].append(Write(item.row, item.content_hash, vector))

    def _retry_or_fail(self, item: Item, exc: EmbeddingError, batch: Batch) -> None:
        if exc.retryable and item.row.attempt < item.source.max_attempts:
            delay = retry_delay(item.row.attempt, self.settings.backoff_base, self.settings.backoff_max, exc.retry_after)
            batch.requeue(item.source.id, item.row, item.row.attempt, delay)
            metrics.ROWS.labels("retried").inc()
            log.info("embedding failed, retrying in %ss: %s", delay, exc,
                     extra={"source_id": item.source.id, "pk": item.row.pk, "attempt": item.row.attempt})
        else:
            self._fail(item.source, item.row, item.content_hash, error_class(exc), str(exc), batch)

    def _fail(self, source: Source, row: RowJobs, content_hash: UUID | None, cls: str, message: str,
              batch: Batch) -> None:
        batch.failures[source.id].append(Failure(row.pk, content_hash, cls, message, row.attempt))
        batch.archived.update(row.msg_ids)
        metrics.ROWS.labels("failed").inc()
        log.warning("row failed: %s: %s", cls, message, extra={"source_id": source.id, "pk": row.pk})

    def release(self, batch: Batch) -> None:
        """Make a fetched batch's jobs visible again at once, and its rows free (the worker is stopping)."""
        with self.pool.connection() as conn, conn.transaction():
            self.queue.delay(conn, batch.msg_ids, 0)
            self._release_claims(conn, batch)

    def _release_claims(self, conn: psycopg.Connection, batch: Batch) -> None:
        for source_id, pks in batch.claimed.items():
            if pks:
                conn.execute(QUERIES["release_claims"], (source_id, pks))

    # -- stage 3: commit ------------------------------------------------------------------------
    def commit(self, batch: Batch) -> None:
        """Apply the batch in one transaction; a deadlock is retried at once, and a write the table
        rejects (a constraint, a trigger, a column renamed meanwhile) is isolated row by row."""
        for attempt in range(1, COMMIT_TRIES + 1):
            try:
                self._commit(batch)
                break
            except ROLLED_BACK as exc:
                if attempt == COMMIT_TRIES:
                    raise
                log.info("write-back rolled back (%s), retrying", str(exc).strip().splitlines()[0])
                time.sleep(0.05 * 2 ** attempt)
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                log.warning("write-back failed (%s): writing row by row", str(exc).strip().splitlines()[0])
                self._commit_row_by_row(batch)
                break
        metrics.BATCH_SECONDS.observe(time.perf_counter() - batch.started)

    def _commit(self, batch: Batch) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(QUERIES["writeback_lock_timeout"])
            for source_id, writes in batch.writes.items():
                self._write(conn, batch.sources[source_id], writes)
            for source_id, failures in batch.failures.items():
                record_failures(conn, source_id, failures)
            self.queue.delete(conn, [m for m in batch.msg_ids if m not in batch.archived])
            self.queue.archive(conn, sorted(batch.archived))
            for (source_id, attempts, delay), pks in batch.requeued.items():
                self.queue.requeue(conn, source_id, pks, attempts, delay)
            self._release_claims(conn, batch)

    def _write(self, conn: psycopg.Connection, source: Source, writes: list[Write]) -> None:
        settled = write_vectors(conn, source, [w.row.pk for w in writes], [w.content_hash for w in writes],
                                [w.vector for w in writes])
        embedded = sum(1 for w in writes if w.vector is not None and w.row.pk in settled)
        metrics.ROWS.labels("embedded").inc(embedded)
        metrics.ROWS.labels("stale").inc(len(writes) - len(settled))

    def _commit_row_by_row(self, batch: Batch) -> None:
        """Each write in its own transaction; a rejected one fails alone. The batch's messages go last,
        with the rest of the batch: a crash in between leaves them queued, and the rows written by
        then are found up to date."""
        rest = batch.without_writes()
        for source_id, writes in batch.writes.items():
            source = batch.sources[source_id]
            for write in writes:
                try:
                    with self.pool.connection() as conn, conn.transaction():
                        conn.execute(QUERIES["writeback_lock_timeout"])
                        self._write(conn, source, [write])
                except psycopg.OperationalError:
                    raise
                except STRUCTURAL as exc:
                    self._broken_source(source, {write.row.pk: write.row}, exc, rest)
                except psycopg.Error as exc:
                    message = f"the table rejected the vector: {str(exc).strip().splitlines()[0]}"
                    self._fail(source, write.row, write.content_hash, type(exc).__name__, message, rest)
        self._commit(rest)
