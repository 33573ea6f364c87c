"""The worker loop: drain the queue, then wait on NOTIFY | poll timeout | stop.

While batch N is being embedded, batch N+1 is fetched and batch N-1 committed on two database
threads, so the model never waits for the database. Each batch stays individually guarded
(content hash) and claims its rows (autoembed.claims), so overlapping batches, like concurrent
workers, neither write stale vectors nor embed a row twice.

Once a watch's backfill is done, the vector index it wants is built in the background
(autoembed.indexes.IndexBuilder), batches flowing meanwhile; a drain or once run waits for it.

A source the worker cannot serve (its model does not load, makes vectors of another dimension,
its table lost a column) is reported and its rows wait in the queue; the others are served. A
database error is retried with a growing delay; one that retrying cannot cure (not migrated, a
missing grant) is logged saying what to do, and ends a `drain` or `once` run at once.
"""

from __future__ import annotations

import logging
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg
from psycopg_pool import PoolTimeout

from autoembed import metrics
from autoembed.activity import log_drain
from autoembed.batch import Batch
from autoembed.breaker import Breakers
from autoembed.commit import commit, release
from autoembed.connections import worker_pool
from autoembed.diagnosis import LastingDatabaseError, lasting, preflight
from autoembed.embed import embed, source_problems
from autoembed.embedders import EmbedderCache
from autoembed.errors import ConfigError, DatabaseUnavailable
from autoembed.fetch import fetch
from autoembed.indexes import IndexBuilder
from autoembed.listener import Listener
from autoembed.settings import Settings
from autoembed.store import Store

log = logging.getLogger(__name__)

RECONNECT_FIRST = 0.5  # seconds before the first retry after a database error
RECONNECT_MAX = 30.0  # seconds between attempts while the database is down


class SourcesNotServed(ConfigError):
    """A drain (or once) run ended with rows left of sources this worker cannot serve."""


class Worker:
    """Processes autoembed jobs until stopped (or, with drain, until the queue is empty)."""

    def __init__(self, settings: Settings, dsn: str, embedders: EmbedderCache | None = None,
                 indexes: IndexBuilder | None = None):
        self.settings = settings
        self.embedders = embedders or EmbedderCache(settings)
        self.breakers = Breakers(settings.backoff_base, settings.backoff_max)
        self.pool = worker_pool(dsn)
        self.store = Store(self.pool, settings.watches)
        self._own_indexes = indexes is None  # a builder given (autoembed serve's) outlives this worker
        self.indexes = indexes or IndexBuilder(dsn, settings)
        self.listener = Listener(dsn, on_connection_lost=self._drop_broken_connections) if settings.listen else None
        self._db_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="autoembed-db")
        self._stopping = False
        self.unservable: dict[int, str] = {}  # source id -> "table: why this worker cannot serve it"

    # -- lifecycle --------------------------------------------------------------------------
    def stop(self, *_args) -> None:
        """Ask the loop to finish the batch in hand, release the prefetched one, and return."""
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
        """Release threads, connections and embedders; an index build in progress is cancelled,
        unless its builder was given."""
        if self._own_indexes:
            self.indexes.close()
        self._db_threads.shutdown(wait=True)
        if self.listener:
            self.listener.close()
        self.pool.close()
        self.embedders.close()

    def check_sources(self) -> dict[int, str]:
        """Build every source's embedder now. Each source it cannot serve (its embedder cannot be
        built or cannot fill its column) is logged and reported for autoembed.status; the others are
        served all the same. Returns those sources (id -> why); LastingDatabaseError when the
        database cannot tell which sources there are."""
        try:
            with self.store.connection() as conn:
                sources = self.store.sources(conn)
                problems = source_problems(sources.values(), self.embedders)
                for source, problem in problems.items():
                    log.error("source %s (%s) cannot be served: %s", source.id, source.table_name, problem,
                              extra={"source_id": source.id})
                    self.store.report_problem(conn, source.id, f"broken: {problem}")
                    self.unservable[source.id] = f"{source.table_name}: broken: {problem}"
        except psycopg.Error as exc:
            raise LastingDatabaseError(lasting(self.store, exc) or f"cannot read the sources: {exc}") from exc
        return {source.id: problem for source, problem in problems.items()}

    # -- the loop -----------------------------------------------------------------------------
    def run(self, drain: bool = False, once: bool = False) -> None:
        """Loop until stopped. With `drain`, return once the queue holds no job but those of sources
        this worker cannot serve (SourcesNotServed when there are such jobs); with `once`, once no
        job is visible; either then waits for the vector indexes due to be built (or stop). A drain
        or once run ends at the first database error that retrying cannot cure
        (LastingDatabaseError, saying what to do), a once run at any database error
        (DatabaseUnavailable)."""
        self.pool.open()
        failures = 0
        while not self._stopping:
            try:
                self._process_until_idle()
                left, workable = self._queue_depth()
                self.indexes.check(self.store.connection, force=True)
            except (psycopg.Error, PoolTimeout) as exc:  # the batch's jobs reappear after their timeout
                failures += 1
                self._database_error(exc, failures, final=drain or once, any_error=once)
                continue
            failures = 0
            if once or (drain and workable == 0):
                self.indexes.wait(self.stopping)
                self._end(left - workable)
                return
            self._idle_wait(drain)

    def _process_until_idle(self) -> None:
        """Run batches back to back, overlapped, until a fetch comes back empty (or stop)."""
        committing: tuple[Future, Batch] | None = None
        fetching: Future | None = self._fetch()
        try:
            while fetching is not None and not self._stopping:  # on stop, `finally` releases the prefetch
                batch = fetching.result()
                fetching = None
                if batch.size == 0:
                    return
                fetching = self._fetch()
                self.indexes.check(self.store.connection)
                embed(batch, self.embedders, self.breakers, self.settings)
                if committing is not None:
                    self._committed(*committing)
                committing = (self._db_threads.submit(commit, self.store, batch, self.settings), batch)
        finally:
            if committing is not None:
                self._committed(*committing)
            if fetching is not None:
                self._release(fetching)

    def _committed(self, committing: Future, batch: Batch) -> None:
        """Wait for a batch's commit; then learn which sources this worker cannot serve, as of that
        batch: those it found a lasting problem with, less those it wrote rows of."""
        committing.result()
        for source_id in batch.unservable:
            self.unservable[source_id] = f"{batch.sources[source_id].table_name}: {batch.problems[source_id]}"
        for source_id in batch.writes:
            if source_id not in batch.unservable:
                self.unservable.pop(source_id, None)

    def _end(self, unserved_rows: int) -> None:
        """The end of a drain or once run: SourcesNotServed when rows of unservable sources are left."""
        if unserved_rows and self.unservable:
            raise SourcesNotServed(f"{unserved_rows} queued row(s) of sources this worker cannot serve are left: "
                                   + "; ".join(self.unservable.values()))

    def _database_error(self, exc: BaseException, failures: int, final: bool, any_error: bool) -> None:
        """Log a database error and wait before the next try (0.5 s, doubling up to RECONNECT_MAX).
        When `final`, raise instead: LastingDatabaseError when retrying cannot cure it, or, with
        `any_error`, DatabaseUnavailable for any other."""
        metrics.DATABASE_ERRORS.inc()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        advice = lasting(self.store, exc)
        if final and advice:
            raise LastingDatabaseError(advice) from exc
        if final and any_error:
            raise DatabaseUnavailable(f"database error: {message}") from exc
        delay = min(RECONNECT_MAX, RECONNECT_FIRST * 2 ** (failures - 1))
        if advice:
            log.error("%s (retrying in %.1fs)", advice, delay)
        else:
            log.warning("database error, retrying in %.1fs: %s", delay, message)
        self._drop_broken_connections()
        self._sleep(delay)

    def _fetch(self) -> Future:
        """Start fetching the next batch on a database thread: as many rows as the embedders built
        so far want to be kept busy (a remote endpoint's request slots), at least the batch size."""
        rows = self.settings.read_size(self.embedders.wanted_batch_rows())
        return self._db_threads.submit(fetch, self.store, self.settings, rows)

    def _release(self, fetching: Future) -> None:
        """Give a prefetched batch back to the queue (stop, or an error in another stage)."""
        try:
            batch: Batch = fetching.result()
            if batch.size:
                release(self.store, batch)
        except (psycopg.Error, PoolTimeout) as exc:  # its jobs reappear after the visibility timeout
            log.warning("could not release a prefetched batch: %s", str(exc).strip())

    def _drop_broken_connections(self) -> None:
        """Test the pool's idle connections now and replace the broken ones. Otherwise, after a
        server restart, the next batch meets them one by one, and the pool waits 1 s, then 2 s,
        between those failed checks (measured: an idle worker woke 3.4 s after the restart)."""
        self.pool.check()

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

    def _queue_depth(self) -> tuple[int, int]:
        """Rows in the queue (visible or not): all, and those not of sources this worker cannot serve."""
        with self.store.connection() as conn:
            left, workable = self.store.queue_depth(conn, list(self.unservable))
        metrics.QUEUE_DEPTH.set(left)
        return left, workable


def run_worker(settings: Settings, dsn: str, drain: bool = False, once: bool = False) -> None:
    """Build a worker, check its sources, run it, and clean up (the CLI's entry point)."""
    preflight(dsn)
    worker = Worker(settings, dsn)
    started = time.monotonic()
    try:
        worker.pool.open(wait=True, timeout=30)
        worker.install_signal_handlers()
        worker.check_sources()
        worker.run(drain=drain, once=once)
        if drain:
            log_drain(time.monotonic() - started, stopped=worker.stopping())
    except PoolTimeout as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc
    finally:
        worker.close()
