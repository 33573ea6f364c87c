"""One batch of jobs in three stages: fetch (read jobs, load current content), embed (no database
transaction open), commit (one short transaction: guarded writes, failures, finish/archive/delay).
The worker loop runs the stages of consecutive batches concurrently."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
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

SOURCES_TTL = 30.0  # seconds a loaded list of sources is trusted

RowKey = tuple[int, str]  # (source_id, pk)


@dataclass
class Item:
    """One row to embed: its current content and the hash the write will be guarded by."""

    source: Source
    row: RowJobs
    content: str
    content_hash: UUID


@dataclass
class Batch:
    """A batch in flight: rows still to embed, and everything decided so far."""

    msg_ids: list[int] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    archived: list[int] = field(default_factory=list)
    delayed: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    writes: dict[int, list[tuple[str, UUID | None, np.ndarray | None]]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[int, list[Failure]] = field(default_factory=lambda: defaultdict(list))
    started: float = field(default_factory=time.perf_counter)

    @property
    def size(self) -> int:
        """How many queue messages the batch holds."""
        return len(self.msg_ids)

    def embedded_keys(self) -> dict[RowKey, UUID]:
        """(source_id, pk) -> content hash of every vector this batch will write."""
        return {(sid, pk): h for sid, rows in self.writes.items() for pk, h, v in rows if v is not None}


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
        self._sources: dict[int, Source] = {}
        self._sources_loaded_at = float("-inf")

    # -- stage 1: fetch ------------------------------------------------------------------------
    def fetch(self) -> Batch:
        """Read up to batch_size jobs and load the current content of their rows (one query per source)."""
        batch = Batch()
        with self.pool.connection() as conn:
            jobs, malformed = self.queue.read(conn, self.settings.batch_size, self.settings.visibility_timeout)
            batch.msg_ids = [job.msg_id for job in jobs] + malformed
            batch.archived += malformed
            if malformed:
                log.warning("archiving %d malformed messages", len(malformed))
            for source_id, rows in group_jobs(jobs).items():
                source = self._source(source_id, conn)
                if source is None:  # unwatched since: nothing to do
                    batch.finished += [m for r in rows.values() for m in r.msg_ids]
                    continue
                try:
                    loaded = conn.execute(QUERIES["load_content"], (source_id, list(rows))).fetchall()
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    self._broken_source(source, rows, exc, batch)
                    continue
                self._plan_rows(source, rows, loaded, batch)
        return batch

    def _source(self, source_id: int, conn: psycopg.Connection) -> Source | None:
        if source_id not in self._sources or time.monotonic() - self._sources_loaded_at > SOURCES_TTL:
            self._sources = load_sources(conn)
            self._sources_loaded_at = time.monotonic()
        return self._sources.get(source_id)

    def _plan_rows(self, source: Source, rows: dict[str, RowJobs], loaded: list[tuple], batch: Batch) -> None:
        current = {pk: (content, content_hash, up_to_date) for pk, content, content_hash, up_to_date in loaded}
        for pk, row in rows.items():
            if pk not in current or current[pk][2]:  # deleted, or its vector already embeds this content
                batch.finished += row.msg_ids
                metrics.ROWS.labels("skipped").inc()
                continue
            content, content_hash, _ = current[pk]
            if content is None or not content.strip():
                reason = "content is NULL" if content is None else "content is empty or whitespace only"
                batch.writes[source.id].append((pk, content_hash, None))
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
                batch.archived += row.msg_ids
                metrics.ROWS.labels("dropped").inc()
            else:
                delay = retry_delay(row.attempt, self.settings.backoff_base, self.settings.backoff_max)
                batch.delayed[delay] += row.msg_ids

    # -- stage 2: embed -------------------------------------------------------------------------
    def embed(self, batch: Batch, in_flight: dict[RowKey, UUID] | None = None) -> None:
        """Embed the batch's rows, grouped by embedder. Rows whose exact content another batch in
        flight is already writing (`in_flight`) are finished without a second embedding."""
        in_flight = in_flight or {}
        groups: dict[tuple[str, str, int], list[Item]] = defaultdict(list)
        for item in batch.items:
            if in_flight.get((item.source.id, item.row.pk)) == item.content_hash:
                batch.finished += item.row.msg_ids
                metrics.ROWS.labels("skipped").inc()
                continue
            groups[(item.source.embedder, item.source.model, item.source.dimensions)].append(item)
        for (kind, model, dimensions), group in groups.items():
            try:
                embedder = self.embedders.get(kind, model, dimensions)
            except ConfigError as exc:
                for item in group:
                    self._fail(item.source, item.row, item.content_hash, "ConfigError", str(exc), batch)
                continue
            self._embed_group(embedder, group, batch)

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
            batch.writes[item.source.id].append((item.row.pk, item.content_hash, vector))
            batch.finished += item.row.msg_ids

    def _retry_or_fail(self, item: Item, exc: EmbeddingError, batch: Batch) -> None:
        if exc.retryable and item.row.attempt < item.source.max_attempts:
            delay = retry_delay(item.row.attempt, self.settings.backoff_base, self.settings.backoff_max, exc.retry_after)
            batch.delayed[delay] += item.row.msg_ids
            metrics.ROWS.labels("retried").inc()
            log.info("embedding failed, retrying in %ss: %s", delay, exc,
                     extra={"source_id": item.source.id, "pk": item.row.pk, "attempt": item.row.attempt})
        else:
            self._fail(item.source, item.row, item.content_hash, error_class(exc), str(exc), batch)

    def _fail(self, source: Source, row: RowJobs, content_hash: UUID | None, cls: str, message: str,
              batch: Batch) -> None:
        batch.failures[source.id].append(Failure(row.pk, content_hash, cls, message, row.attempt))
        batch.archived += row.msg_ids
        metrics.ROWS.labels("failed").inc()
        log.warning("row failed: %s: %s", cls, message, extra={"source_id": source.id, "pk": row.pk})

    def release(self, batch: Batch) -> None:
        """Make a fetched batch's jobs visible again at once (the worker is stopping)."""
        with self.pool.connection() as conn:
            self.queue.delay(conn, batch.msg_ids, 0)

    # -- stage 3: commit ------------------------------------------------------------------------
    def commit(self, batch: Batch) -> None:
        """One transaction: guarded vector writes, failure records, then finish/archive/delay the jobs."""
        with self.pool.connection() as conn, conn.transaction():
            for source_id, writes in batch.writes.items():
                pks, hashes, vectors = (list(column) for column in zip(*writes))
                written = write_vectors(conn, source_id, pks, hashes, vectors)
                metrics.ROWS.labels("embedded").inc(sum(1 for pk, _, v in writes if v is not None and pk in written))
                metrics.ROWS.labels("stale").inc(len(pks) - len(written))
            for source_id, failures in batch.failures.items():
                record_failures(conn, source_id, failures)
            self.queue.delete(conn, batch.finished)
            self.queue.archive(conn, batch.archived)
            for delay, msg_ids in batch.delayed.items():
                self.queue.delay(conn, msg_ids, delay)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - batch.started)
