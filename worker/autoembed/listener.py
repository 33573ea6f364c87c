"""Wake-ups: LISTEN on its own connection, reconnecting by itself. NOTIFY is a hint, polling the guarantee."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "autoembed"  # the channel autoembed.enqueue notifies after queueing a job

SLICE = 0.25  # seconds between checks of the stop flag while waiting


class Listener:
    """Waits for a NOTIFY on the autoembed channel, a timeout, or a stop request. Calls
    `on_connection_lost` when its connection dies (the server likely restarted)."""

    def __init__(self, dsn: str, on_connection_lost: Callable[[], None] | None = None):
        self._dsn = dsn
        self._conn: psycopg.Connection | None = None
        self._on_connection_lost = on_connection_lost

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
            self._conn.execute(sql.SQL("listen {}").format(sql.Identifier(NOTIFY_CHANNEL)))
            log.debug("listening", extra={"channel": NOTIFY_CHANNEL})
        return self._conn

    def wait(self, timeout: float, stopping: Callable[[], bool]) -> bool:
        """Block until a notification (True), `timeout` seconds or `stopping()` (False)."""
        deadline = time.monotonic() + timeout
        while not stopping():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                for _ in self._connection().notifies(timeout=min(SLICE, remaining), stop_after=1):
                    return True
            except psycopg.OperationalError as exc:
                log.warning("LISTEN connection lost, reconnecting", extra={"error": str(exc)})
                self.close()
                if self._on_connection_lost is not None:
                    self._on_connection_lost()
                time.sleep(min(SLICE, max(0.0, remaining)))
        return False

    def close(self) -> None:
        """Drop the connection (the next wait reconnects)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
