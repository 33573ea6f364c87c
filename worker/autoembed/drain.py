"""Drains on request (`autoembed serve`'s POST /drain): the worker (autoembed.worker.Worker) runs
until the queue is empty, one drain at a time per process (single flight), within a time limit.
The embedders stay loaded from one drain to the next, and so does the vector index builder: a
build a drain started goes on past its time limit, and the next drain waits for it in turn."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from prometheus_client import REGISTRY
from psycopg_pool import PoolTimeout

from autoembed.embedders import EmbedderCache
from autoembed.errors import DatabaseUnavailable
from autoembed.indexes import IndexBuilder
from autoembed.settings import Settings
from autoembed.worker import Worker

#: the outcomes of autoembed_rows_total (autoembed.metrics.ROWS) a drain reports
ROW_OUTCOMES = ("embedded", "skipped", "stale", "retried", "failed", "dropped")
POOL_WAIT = 30.0  # seconds a drain waits for its first database connection


class KeptEmbedders(EmbedderCache):
    """An embedder cache shared by successive drains: the worker of a drain closing it at its end
    keeps the models loaded; close_all() (the server's shutdown) closes them."""

    def close(self) -> None:
        """Keep every embedder: the next drain uses them again."""

    def close_all(self) -> None:
        """Close every embedder built so far."""
        super().close()


@dataclass(frozen=True)
class DrainResult:
    """What one drain did: `status` is `drained` (the queue was empty at the end), `time limit`
    (stopped after the limit, jobs remain) or `stopped` (the server is shutting down)."""

    status: str
    seconds: float
    rows: dict[str, int]

    def as_json(self) -> dict:
        """The JSON answer of POST /drain."""
        return {"status": self.status, "seconds": round(self.seconds, 3), **self.rows}


def _row_counts() -> dict[str, int]:
    return {outcome: int(REGISTRY.get_sample_value("autoembed_rows_total", {"outcome": outcome}) or 0)
            for outcome in ROW_OUTCOMES}


class Drainer:
    """Runs drains with the worker, one at a time: a drain requested while one runs is refused
    (drain() returns None), so no two drains of this process read the same jobs."""

    def __init__(self, settings: Settings, dsn: str, *, max_seconds: float = 300.0,
                 embedders: KeptEmbedders | None = None):
        self.settings = settings
        self.dsn = dsn
        self.max_seconds = max_seconds
        self.embedders = embedders or KeptEmbedders(settings)
        self.indexes = IndexBuilder(dsn, settings)
        self._flight = threading.Lock()
        self._state = threading.Lock()  # guards the two fields below
        self._worker: Worker | None = None
        self._started: float | None = None
        self._closing = False

    def running_for(self) -> float | None:
        """Seconds the current drain has run, or None when none runs."""
        with self._state:
            return None if self._started is None else time.monotonic() - self._started

    def drain(self) -> DrainResult | None:
        """Drain the queue now; None when another drain is running. Raises DatabaseUnavailable when
        no connection can be had, ConfigError when a source's embedder cannot serve it."""
        if not self._flight.acquire(blocking=False):
            return None
        try:
            before = _row_counts()
            started = time.monotonic()
            worker = Worker(self.settings, self.dsn, self.embedders, self.indexes)
            with self._state:
                self._worker, self._started = worker, started
                if self._closing:
                    worker.stop()
            limit = threading.Timer(self.max_seconds, worker.stop)
            limit.daemon = True
            limit.start()
            try:
                worker.pool.open(wait=True, timeout=POOL_WAIT)
                worker.check_sources()
                worker.run(drain=True)
            except PoolTimeout as exc:
                raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc
            finally:
                limit.cancel()
                worker.close()
                with self._state:
                    self._worker, self._started = None, None
            after = _row_counts()
            status = "drained" if not worker.stopping() else "stopped" if self._closing else "time limit"
            return DrainResult(status, time.monotonic() - started,
                               {outcome: after[outcome] - before[outcome] for outcome in ROW_OUTCOMES})
        finally:
            self._flight.release()

    def close(self) -> None:
        """Stop the running drain after the batch in hand (it answers `stopped`) and refuse new
        ones; the embedders close once it has returned, and an index build is cancelled."""
        with self._state:
            self._closing = True
            if self._worker is not None:
                self._worker.stop()
        with self._flight:
            self.embedders.close_all()
            self.indexes.close()
