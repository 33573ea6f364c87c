"""The worker loop: drain the queue, then wait on NOTIFY | poll timeout | stop.

While batch N is being embedded, batch N+1 is fetched and batch N-1 committed on two database
threads, so the model never waits for the database. Each batch stays individually guarded
(content hash) and claims its rows (autoembed.claims), so overlapping batches, like concurrent
workers, neither write stale vectors nor embed a row twice.
"""

from __future__ import annotations

import logging
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg
from psycopg_pool import PoolTimeout

from autoembed import metrics
from autoembed.batch import Batch
from autoembed.commit import commit, release
from autoembed.connections import worker_pool
from autoembed.embed import check_sources, embed
from autoembed.embedders import EmbedderCache
from autoembed.errors import AutoembedError
from autoembed.fetch import fetch
from autoembed.listener import Listener
from autoembed.settings import Settings
from autoembed.store import Store

log = logging.getLogger(__name__)

RECONNECT_MAX = 30.0  # seconds between attempts while the database is down


class Worker:
    """Processes autoembed jobs until stopped (or, with drain, until the queue is empty)."""

    def __init__(self, settings: Settings, dsn: str, embedders: EmbedderCache | None = None):
        self.settings = settings
        self.embedders = embedders or EmbedderCache(settings)
        self.pool = worker_pool(dsn)
        self.store = Store(self.pool)
        self.listener = Listener(dsn, on_connection_lost=self._drop_broken_connections) if settings.listen else None
        self._db_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="autoembed-db")
        self._stopping = False

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
        """Release threads, connections and embedders."""
        self._db_threads.shutdown(wait=True)
        if self.listener:
            self.listener.close()
        self.pool.close()
        self.embedders.close()

    def check_sources(self) -> None:
        """Fail fast (ConfigError) when a source's embedder cannot fill its column."""
        with self.store.connection() as conn:
            sources = self.store.sources(conn)
        check_sources(sources.values(), self.embedders)

    # -- the loop -----------------------------------------------------------------------------
    def run(self, drain: bool = False) -> None:
        """Loop until stopped; with `drain`, return once the queue holds no job at all."""
        self.pool.open()
        backoff = 0.5
        while not self._stopping:
            try:
                self._process_until_idle()
                backoff = 0.5
                if self._queue_depth() == 0 and drain:
                    return
            except (psycopg.Error, PoolTimeout) as exc:  # the batch's jobs reappear after their timeout
                metrics.DATABASE_ERRORS.inc()
                log.warning("database error, retrying in %.1fs: %s", backoff, str(exc).strip())
                self._drop_broken_connections()
                self._sleep(backoff)
                backoff = min(RECONNECT_MAX, backoff * 2)
                continue
            self._idle_wait(drain)

    def _process_until_idle(self) -> None:
        """Run batches back to back, overlapped, until a fetch comes back empty (or stop)."""
        committing: Future | None = None
        fetching: Future | None = self._fetch()
        try:
            while fetching is not None and not self._stopping:  # on stop, `finally` releases the prefetch
                batch = fetching.result()
                fetching = None
                if batch.size == 0:
                    return
                fetching = self._fetch()
                embed(batch, self.embedders, self.settings)
                if committing is not None:
                    committing.result()
                committing = self._db_threads.submit(commit, self.store, batch, self.settings)
        finally:
            if committing is not None:
                committing.result()
            if fetching is not None:
                self._release(fetching)

    def _fetch(self) -> Future:
        """Start fetching the next batch on a database thread."""
        return self._db_threads.submit(fetch, self.store, self.settings)

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

    def _queue_depth(self) -> int:
        with self.store.connection() as conn:
            depth = self.store.queue_depth(conn)
        metrics.QUEUE_DEPTH.set(depth)
        return depth


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
