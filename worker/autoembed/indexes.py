"""Vector indexes a watch owns (autoembed.watch(..., index => 'hnsw' | 'ivfflat')): built with
CREATE INDEX CONCURRENTLY once the watch's backfill is done, with the settings' maintenance_work_mem
and parallel maintenance workers. db/idempotent/095_vector_indexes.sql says when an index is due and
gives the statements; this module runs them: the worker on a thread and connection of its own, so
batches keep flowing (IndexBuilder), `autoembed index` at once (api.build_indexes).

One build per watch at a time, across workers and CLI runs: a build holds the watch's advisory lock,
taken without waiting. A role that does not own the table may not build it: the worker reports that
for autoembed.status, naming what the owner runs, and does not try. A failed build is logged and
reported, and tried again after RETRY_SECONDS; it never stops the worker."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg
from psycopg_pool import PoolTimeout

from autoembed.queries import QUERIES
from autoembed.settings import Settings

log = logging.getLogger(__name__)

RETRY_SECONDS = 600.0  # a watch whose build failed is tried again after this long
CHECK_SECONDS = 5.0  # while batches flow, the worker looks for due indexes at most this often


@dataclass(frozen=True)
class DueIndex:
    """A watch whose wanted index may be built now (a row of autoembed.indexes_due)."""

    source_id: int
    source: str
    watch: str
    may_create: bool  # the connected role owns the table
    how_to_build: str  # the command and the psql line that build it now


def due_indexes(conn: psycopg.Connection, watches: tuple[str, ...] = ()) -> list[DueIndex]:
    """The watches (of `watches`, 'table' or 'table.name' each; empty: all) whose index may be built now."""
    return [DueIndex(*row) for row in conn.execute(QUERIES["indexes_due"], (RETRY_SECONDS, list(watches) or None))]


def build_index(conn: psycopg.Connection, source_id: int, settings: Settings) -> str | None:
    """Build the index source `source_id` wants, on `conn` (autocommit, used by nothing else meanwhile;
    its session keeps the build's maintenance_work_mem and max_parallel_maintenance_workers):
    drop autoembed's own index where it is left invalid or no longer fits, then CREATE INDEX
    CONCURRENTLY. Returns the state of the watch's index afterwards ('ready: ...' once built, or why
    not), None when another session is building it; psycopg.Error when a statement fails."""
    conn.execute(QUERIES["index_build_settings"],
                 (settings.index_maintenance_work_mem, str(settings.index_parallel_workers)))
    if not conn.execute(QUERIES["lock_index_build"], (source_id,)).fetchone()[0]:
        return None
    try:
        for (statement,) in conn.execute(QUERIES["index_build_statements"], (source_id,)).fetchall():
            log.info("index build: %s", statement, extra={"source_id": source_id})
            conn.execute(statement)  # made by the database with format('%I'), run outside a transaction
        state = conn.execute(QUERIES["index_state"], (source_id,)).fetchone()[0]
        if state.startswith("ready"):
            conn.execute(QUERIES["report_index_problem"], (source_id, None))
        return state
    finally:
        if not conn.closed and not conn.broken:
            conn.execute(QUERIES["unlock_index_build"], (source_id,))


def not_owner(due: DueIndex, role: str) -> str:
    """Why `role` does not build the index of `due`, and what its table's owner runs instead."""
    return (f"the worker's role {role} does not own {due.source}, and only the owner may create its index: "
            f"as the owner run {due.how_to_build}")


class IndexBuilder:
    """Builds the due indexes of a worker's watches, one after another, on a thread and connection
    of its own. It may outlive a worker: `autoembed serve` keeps one across its drains, so a build
    goes on past a drain's time limit."""

    def __init__(self, dsn: str, settings: Settings):
        self.dsn = dsn
        self.settings = settings
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None  # the build's, while it runs
        self._closing = False
        self._checked = float("-inf")

    def building(self) -> bool:
        """Whether a build thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def check(self, connection: Callable[[], AbstractContextManager[psycopg.Connection]], force: bool = False) -> None:
        """Start the build thread when an index is due and none runs, looking on a connection
        `connection()` lends (the worker's pool); without `force`, at most every CHECK_SECONDS. A
        look-up that fails is logged and tried again at the next check: it never holds up batches."""
        now = time.monotonic()
        if self._closing or self.building() or (not force and now - self._checked < CHECK_SECONDS):
            return
        self._checked = now
        try:
            with connection() as conn:
                if not due_indexes(conn, self.settings.watches):
                    return
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("could not look for vector indexes to build: %s", str(exc).strip() or type(exc).__name__)
            return
        self._thread = threading.Thread(target=self._run, name="autoembed-index", daemon=True)
        self._thread.start()

    def wait(self, stopping: Callable[[], bool]) -> None:
        """Block until the build thread ends, or `stopping()`."""
        while self.building() and not stopping():
            self._thread.join(0.2)

    def close(self) -> None:
        """Cancel a build in progress (its index is left invalid, then dropped and built again by the
        next build) and end the thread."""
        self._closing = True
        conn = self._conn
        if conn is not None:
            conn.cancel_safe()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        """Serve the due indexes until none is left (or close)."""
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                self._conn = conn
                while not self._closing:
                    due = due_indexes(conn, self.settings.watches)
                    if not due or not self._serve(conn, due[0]):
                        return
        except psycopg.Error as exc:
            if not self._closing:
                log.error("vector index builder stopped: %s (it starts again at the next check)", str(exc).strip())
        finally:
            self._conn = None

    def _serve(self, conn: psycopg.Connection, due: DueIndex) -> bool:
        """Build one due index, or report why not; False when the builder should stop for now."""
        extra = {"source_id": due.source_id}
        if not due.may_create:
            problem = not_owner(due, conn.info.user)
            log.warning("vector index of %s (%s) not built: %s", due.source, due.watch, problem, extra=extra)
            conn.execute(QUERIES["report_index_problem"], (due.source_id, problem))
            return True
        started = time.monotonic()
        log.info("building the vector index of %s (%s)", due.source, due.watch, extra=extra)
        try:
            state = build_index(conn, due.source_id, self.settings)
        except psycopg.Error as exc:
            if self._closing:
                log.info("vector index build of %s (%s) interrupted: the worker stopped; it is built again later",
                         due.source, due.watch, extra=extra)
                return False
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.error("vector index build of %s (%s) failed: %s", due.source, due.watch, message, extra=extra)
            conn.execute(QUERIES["report_index_problem"],
                         (due.source_id, f"the build failed: {message} (tried again in {RETRY_SECONDS / 60:.0f} "
                                         f"minutes; now: {due.how_to_build})"))
            return True
        if state is None:  # another session took it meanwhile
            return False
        if not state.startswith("ready"):
            conn.execute(QUERIES["report_index_problem"], (due.source_id, f"the build made no usable index: {state}"))
        log.info("vector index of %s (%s): %s after %.1f s", due.source, due.watch, state,
                 time.monotonic() - started, extra=extra)
        return True
