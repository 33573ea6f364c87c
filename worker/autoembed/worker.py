"""The worker loop: drain the queue in batches, then wait on NOTIFY | poll timeout | stop.

Each batch: load current content (one query per source, short autocommit reads), embed with no
transaction open, then one short transaction writes the vectors (guarded by content hash),
records failures and finishes, archives or delays the jobs.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from uuid import UUID

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool, PoolTimeout

from autoembed import metrics
from autoembed.embedders import EmbedderCache
from autoembed.errors import AutoembedError, ConfigError, EmbeddingError
from autoembed.jobs import RowJobs, group_jobs
from autoembed.listener import Listener
from autoembed.queries import QUERIES
from autoembed.queue import Job, JobQueue
from autoembed.retry import retry_delay
from autoembed.settings import Settings
from autoembed.sources import Source, load_sources
from autoembed.writeback import Failure, record_failures, write_vectors

log = logging.getLogger(__name__)

RECONNECT_MAX = 30.0  # seconds between attempts while the database is down
SOURCES_TTL = 30.0  # seconds a loaded list of sources is trusted


@dataclass
class Item:
    """One row to embed: its current content and the hash the write will be guarded by."""

    source: Source
    row: RowJobs
    content: str
    content_hash: UUID


@dataclass
class Outcome:
    """Everything a batch decided, applied in one transaction."""

    finished: list[int] = field(default_factory=list)
    archived: list[int] = field(default_factory=list)
    delayed: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    writes: dict[int, list[tuple[str, UUID | None, np.ndarray | None]]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[int, list[Failure]] = field(default_factory=lambda: defaultdict(list))


def error_class(error: BaseException) -> str:
    """A short name for an error: the underlying cause's class where there is one."""
    cause = error.__cause__
    return type(cause).__name__ if cause is not None else type(error).__name__


def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)


class Worker:
    """Processes autoembed jobs until stopped (or, with drain, until the queue is empty)."""

    def __init__(self, settings: Settings, dsn: str, embedders: EmbedderCache | None = None):
        self.settings = settings
        self.dsn = dsn
        self.embedders = embedders or EmbedderCache(settings)
        self.pool = ConnectionPool(
            dsn, min_size=1, max_size=2, open=False, configure=_configure,
            kwargs={"autocommit": True, "connect_timeout": 10}, check=ConnectionPool.check_connection,
            name="autoembed-worker",
        )
        self.queue = JobQueue(self.pool)
        self.listener = Listener(dsn) if settings.listen else None
        self._sources: dict[int, Source] = {}
        self._sources_loaded_at = float("-inf")
        self._stopping = False

    # -- lifecycle --------------------------------------------------------------------------
    def stop(self, *_args) -> None:
        """Ask the loop to finish the batch in hand and return."""
        if not self._stopping:
            log.info("stop requested: finishing the batch in hand")
        self._stopping = True

    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stopping

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the worker gracefully."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def close(self) -> None:
        """Release connections and embedders."""
        if self.listener:
            self.listener.close()
        self.pool.close()
        self.embedders.close()

    def check_sources(self) -> None:
        """Fail fast (ConfigError) when a source's embedder cannot fill its column."""
        with self.pool.connection() as conn:
            sources = load_sources(conn)
        problems = []
        for source in sources.values():
            try:
                embedder = self.embedders.get(source.embedder, source.model, source.dimensions)
            except ConfigError as exc:
                problems.append(f"{source.table_name}: {exc}")
                continue
            if embedder.dimensions != source.dimensions:
                problems.append(
                    f"{source.table_name}: model {source.model} makes {embedder.dimensions}-dimensional vectors, "
                    f"the column holds {source.dimensions}"
                )
        if problems:
            raise ConfigError("cannot embed these sources:\n  " + "\n  ".join(problems))

    def run(self, drain: bool = False) -> None:
        """Loop until stopped; with `drain`, return once the queue holds no job at all."""
        self.pool.open()
        backoff = 0.5
        while not self._stopping:
            try:
                handled = self.run_once()
                backoff = 0.5
                if handled:
                    continue
                if drain and self._queue_empty():
                    return
            except (psycopg.OperationalError, PoolTimeout) as exc:
                metrics.DATABASE_ERRORS.inc()
                log.warning("database unavailable, retrying in %.1fs: %s", backoff, exc)
                self._sleep(backoff)
                backoff = min(RECONNECT_MAX, backoff * 2)
                continue
            self._idle_wait(drain)

    def _idle_wait(self, drain: bool) -> None:
        timeout = min(self.settings.poll_interval, 0.5) if drain else self.settings.poll_interval
        if self.listener is not None:
            self.listener.wait(timeout, self.stopping)
        else:
            self._sleep(timeout)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))

    def _queue_empty(self) -> bool:
        with self.pool.connection() as conn:
            depth = conn.execute(QUERIES["queue_depth"]).fetchone()[0]
        metrics.QUEUE_DEPTH.set(depth)
        return depth == 0

    # -- one batch ----------------------------------------------------------------------------
    def run_once(self) -> int:
        """Read and process one batch; returns how many jobs it handled."""
        with self.pool.connection() as conn:
            jobs, malformed = self.queue.read(conn, self.settings.batch_size, self.settings.visibility_timeout)
        if not jobs and not malformed:
            return 0
        started = time.perf_counter()
        outcome = Outcome(archived=list(malformed))
        if malformed:
            log.warning("archiving %d malformed messages", len(malformed))
        items = self._load(jobs, outcome)
        self._embed(items, outcome)
        self._commit(outcome)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return len(jobs) + len(malformed)

    def _source(self, source_id: int, conn: psycopg.Connection) -> Source | None:
        if source_id not in self._sources or time.monotonic() - self._sources_loaded_at > SOURCES_TTL:
            self._sources = load_sources(conn)
            self._sources_loaded_at = time.monotonic()
        return self._sources.get(source_id)

    def _load(self, jobs: list[Job], outcome: Outcome) -> list[Item]:
        items: list[Item] = []
        with self.pool.connection() as conn:
            for source_id, rows in group_jobs(jobs).items():
                source = self._source(source_id, conn)
                if source is None:  # unwatched since: nothing to do
                    outcome.finished += [m for r in rows.values() for m in r.msg_ids]
                    continue
                try:
                    loaded = conn.execute(QUERIES["load_content"], (source_id, list(rows))).fetchall()
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    self._broken_source(source, rows, exc, outcome)
                    continue
                current = {pk: (content, content_hash, up_to_date) for pk, content, content_hash, up_to_date in loaded}
                for pk, row in rows.items():
                    if pk not in current or current[pk][2]:  # deleted, or already embeds this content
                        outcome.finished += row.msg_ids
                        metrics.ROWS.labels("skipped").inc()
                        continue
                    content, content_hash, _ = current[pk]
                    if content is None or not content.strip():
                        reason = "content is NULL" if content is None else "content is empty or whitespace only"
                        outcome.writes[source_id].append((pk, content_hash, None))
                        self._fail(source, row, content_hash, "EmptyContent", f"{reason}: nothing to embed", outcome)
                        continue
                    items.append(Item(source, row, content, content_hash))
        return items

    def _broken_source(self, source: Source, rows: dict[str, RowJobs], exc: psycopg.Error, outcome: Outcome) -> None:
        """The source's table or columns changed under it: report it, keep serving the others."""
        dropped = isinstance(exc, psycopg.errors.UndefinedTable)
        log.error(
            "source %s (%s) is broken: %s", source.id, source.table_name, str(exc).strip(),
            extra={"source_id": source.id, "table": source.table_name},
        )
        for row in rows.values():
            if dropped or row.attempt >= source.max_attempts:
                outcome.archived += row.msg_ids
                metrics.ROWS.labels("dropped").inc()
            else:
                delay = retry_delay(row.attempt, self.settings.backoff_base, self.settings.backoff_max)
                outcome.delayed[delay] += row.msg_ids

    def _embed(self, items: list[Item], outcome: Outcome) -> None:
        groups: dict[tuple[str, str, int], list[Item]] = defaultdict(list)
        for item in items:
            groups[(item.source.embedder, item.source.model, item.source.dimensions)].append(item)
        for (kind, model, dimensions), group in groups.items():
            try:
                embedder = self.embedders.get(kind, model, dimensions)
            except ConfigError as exc:
                for item in group:
                    self._fail(item.source, item.row, item.content_hash, "ConfigError", str(exc), outcome)
                continue
            self._embed_group(embedder, group, outcome)

    def _embed_group(self, embedder, group: list[Item], outcome: Outcome) -> None:
        """Embed a group; a permanent error splits it in halves so one bad row fails alone."""
        started = time.perf_counter()
        try:
            vectors = embedder.embed([item.content for item in group])
        except EmbeddingError as exc:
            if not exc.retryable and len(group) > 1:
                half = len(group) // 2
                self._embed_group(embedder, group[:half], outcome)
                self._embed_group(embedder, group[half:], outcome)
                return
            for item in group:
                self._retry_or_fail(item, exc, outcome)
            return
        metrics.EMBED_SECONDS.observe(time.perf_counter() - started)
        for item, vector in zip(group, vectors, strict=True):
            if len(vector) != item.source.dimensions:
                message = (f"model {item.source.model} returned a {len(vector)}-dimensional vector, "
                           f"the column holds {item.source.dimensions}")
                self._fail(item.source, item.row, item.content_hash, "DimensionMismatch", message, outcome)
                continue
            outcome.writes[item.source.id].append((item.row.pk, item.content_hash, vector))
            outcome.finished += item.row.msg_ids

    def _retry_or_fail(self, item: Item, exc: EmbeddingError, outcome: Outcome) -> None:
        if exc.retryable and item.row.attempt < item.source.max_attempts:
            delay = retry_delay(item.row.attempt, self.settings.backoff_base, self.settings.backoff_max, exc.retry_after)
            outcome.delayed[delay] += item.row.msg_ids
            metrics.ROWS.labels("retried").inc()
            log.info("embedding failed, retrying in %ss: %s", delay, exc,
                     extra={"source_id": item.source.id, "pk": item.row.pk, "attempt": item.row.attempt})
        else:
            self._fail(item.source, item.row, item.content_hash, error_class(exc), str(exc), outcome)

    def _fail(self, source: Source, row: RowJobs, content_hash: UUID | None, cls: str, message: str,
              outcome: Outcome) -> None:
        outcome.failures[source.id].append(Failure(row.pk, content_hash, cls, message, row.attempt))
        outcome.archived += row.msg_ids
        metrics.ROWS.labels("failed").inc()
        log.warning("row failed: %s: %s", cls, message, extra={"source_id": source.id, "pk": row.pk})

    def _commit(self, outcome: Outcome) -> None:
        with self.pool.connection() as conn, conn.transaction():
            for source_id, writes in outcome.writes.items():
                pks, hashes, vectors = (list(column) for column in zip(*writes))
                written = write_vectors(conn, source_id, pks, hashes, vectors)
                metrics.ROWS.labels("embedded").inc(sum(1 for pk, _, v in writes if v is not None and pk in written))
                metrics.ROWS.labels("stale").inc(len(pks) - len(written))
            for source_id, failures in outcome.failures.items():
                record_failures(conn, source_id, failures)
            self.queue.delete(conn, outcome.finished)
            self.queue.archive(conn, outcome.archived)
            for delay, msg_ids in outcome.delayed.items():
                self.queue.delay(conn, msg_ids, delay)


def run_worker(settings: Settings, dsn: str, drain: bool = False) -> None:
    """Build a worker, check its sources, run it, and clean up (the CLI's entry point)."""
    worker = Worker(settings, dsn)
    try:
        worker.pool.open(wait=True, timeout=30)
        worker.install_signal_handlers()
        worker.check_sources()
        worker.run(drain=drain)
    except PoolTimeout as exc:
        raise AutoembedError(f"cannot connect to the database: {exc}") from exc
    finally:
        worker.close()
