"""The queue gauges of /metrics (autoembed_queue_rows, autoembed_queue_oldest_seconds), read from
the database by a daemon thread every few seconds: current whatever the worker loop is doing
(busy, failing or stuck), and a scrape never waits for the database. While the database cannot
be read they are NaN, so an alert on them neither fires nor clears on stale figures."""

from __future__ import annotations

import logging
import threading

import psycopg

from autoembed import metrics
from autoembed.queries import QUERIES

log = logging.getLogger(__name__)

INTERVAL = 5.0  # seconds between reads
CONNECT_TIMEOUT = 3  # seconds


class QueueGauges:
    """Refreshes the queue gauges from `dsn` until closed, over one connection it reopens as needed."""

    def __init__(self, dsn: str, interval: float = INTERVAL):
        self.dsn = dsn
        self.interval = interval
        self._conn: psycopg.Connection | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autoembed-queue-gauges", daemon=True)

    def start(self) -> QueueGauges:
        """Start refreshing; returns self."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop refreshing and close the connection."""
        self._stop.set()
        self._thread.join(timeout=self.interval + CONNECT_TIMEOUT)

    def _run(self) -> None:
        while True:
            self.refresh()
            if self._stop.wait(self.interval):
                break
        if self._conn is not None:
            self._conn.close()

    def refresh(self) -> None:
        """Read the queue's rows and oldest message age now and set the gauges (NaN on failure)."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                             application_name="autoembed-queue-gauges")
            rows, oldest = self._conn.execute(QUERIES["queue_gauges"]).fetchone()
        except psycopg.Error as exc:
            log.debug("cannot read the queue for its gauges: %s", str(exc).strip())
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            rows = oldest = float("nan")
        metrics.QUEUE_ROWS.set(rows)
        metrics.QUEUE_OLDEST_SECONDS.set(oldest)
