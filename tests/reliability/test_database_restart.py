"""PostgreSQL restarted (immediate mode: a crash, then recovery) while the worker is mid-batch:
the worker reconnects by itself, finishes, and listens again (NOTIFY wakes it, not the poll)."""

from __future__ import annotations

import time

import psycopg
import pytest
from harness import (DIMS, WorkerProcess, check, install_audit, openai_env, report, scaled, wait_settled,
                     wait_until)
from support import create_docs, watch

from support.openai_stub import OpenAIStub

POLL = 30  # seconds: longer than the test waits for a wake-up, so only NOTIFY can wake the worker


def connect(dsn: str, timeout: float = 30) -> psycopg.Connection:
    """A connection once the server accepts them again."""
    return wait_until(lambda: _try_connect(dsn), timeout, interval=0.1, what="the database to accept connections")


def _try_connect(dsn: str) -> psycopg.Connection | None:
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError:
        return None
    from pgvector.psycopg import register_vector

    register_vector(conn)
    return conn


def insert_and_wait(conn: psycopg.Connection, body: str) -> float:
    """Seconds from inserting a row to seeing it embedded; the worker must be idle first."""
    time.sleep(1.0)
    conn.execute("insert into docs (body) values (%s)", (body,))
    inserted = time.monotonic()
    wait_until(lambda: conn.execute("select embedding is not null from docs where body = %s", (body,)).fetchone()[0],
               10, what=f"NOTIFY to wake the worker ({body})")
    return time.monotonic() - inserted


def test_worker_survives_an_immediate_restart_mid_batch_and_listens_again(server, conn, dsn, tmp_path):
    if server.cluster is None:
        pytest.skip("restarting PostgreSQL needs the tests' own cluster (AUTOEMBED_TEST_DSN points elsewhere)")
    rows = scaled(600)
    create_docs(conn)
    install_audit(conn)
    watch(conn, embedder="openai", model="stub-model", backfill=False)
    conn.execute("insert into docs (body) select 'restart row ' || g from generate_series(1, %s) g", (rows,))
    conn.close()

    with OpenAIStub(dimensions=DIMS, latency=0.15, seed=2) as stub:
        env = openai_env(stub, batch_size=20, AUTOEMBED_POLL_INTERVAL=POLL, AUTOEMBED_VISIBILITY_TIMEOUT=3)
        worker = WorkerProcess(dsn, "restart-test-worker", tmp_path / "worker.log", env).start()
        try:
            with psycopg.connect(dsn, autocommit=True) as watcher:
                wait_until(lambda: watcher.execute("select count(embedding) from docs").fetchone()[0] >= 40, 30,
                           what="the first batches")
            # Mid-batch: a model call is in flight (its answer is 0.15 s away).
            before = len(stub.request_log)
            wait_until(lambda: len(stub.request_log) > before, 10, interval=0.002, what="a model call")
            restart_started = time.monotonic()
            server.cluster.restart("immediate")
            up = time.monotonic()
            down_s = up - restart_started

            watcher = connect(dsn)
            embedded_at_restart = watcher.execute("select count(embedding) from docs").fetchone()[0]
            wait_until(
                lambda: watcher.execute("select count(embedding) from docs").fetchone()[0] > embedded_at_restart,
                60, what="a write after the restart")
            recovered_s = time.monotonic() - up
            verdict = wait_settled(watcher, timeout=90, workers=(worker,))
            finished_s = time.monotonic() - up

            # LISTEN was re-established: an insert is embedded long before the 30 s poll would find it.
            wake_s = [insert_and_wait(watcher, "after the restart")]
            # Once more with the worker idle on its LISTEN connection when the server goes away.
            watcher.close()
            server.cluster.restart("immediate")
            watcher = connect(dsn)
            time.sleep(1.0)  # the listener notices, reconnects and listens again
            wake_s.append(insert_and_wait(watcher, "after the idle restart"))
            verdict = check(watcher)
            watcher.close()
        finally:
            worker.stop()

    log = worker.log()
    report("postgres restart", rows=verdict.rows, faults={"immediate restart": 2}, lost=len(verdict.lost),
           stale=len(verdict.stale), failed=verdict.failed, duplicate_writes=verdict.duplicate_writes,
           recover_s=round(recovered_s, 2), restart_s=round(down_s, 2), finish_after_restart_s=round(finished_s, 2),
           notify_wake_s=[round(w, 2) for w in wake_s])
    assert verdict.ok, verdict
    assert verdict.failed == 0 and verdict.rows == rows + 2
    # Not the 30 s poll (LISTEN was re-established), and not the ~3.4 s of meeting each dead pooled
    # connection a back-off apart: the worker tests them all as soon as a connection is lost.
    assert max(wake_s) < 2, f"woken after {wake_s}s: LISTEN not re-established, or dead connections met one by one"
    assert "LISTEN connection lost, reconnecting" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
