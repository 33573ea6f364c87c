"""Two and four worker processes on one queue: no double write, no loss, work spread across them."""

from __future__ import annotations

import time

import psycopg
import pytest
from harness import (DIMS, WorkerProcess, check, install_audit, ok_inputs, openai_env, report, scaled, wait_settled,
                     wait_until, writes_by_app)
from support import create_docs, watch

from support.openai_stub import OpenAIStub


def listening(conn: psycopg.Connection, names: list[str]) -> bool:
    """Every named worker has its LISTEN connection up (it is idle, waiting for work)."""
    up = {app for app, in conn.execute("select application_name from pg_stat_activity "
                                       "where query ilike 'listen%%' and application_name = any(%s)", (names,))}
    return up == set(names)


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_share_one_queue_without_double_writes_or_loss(conn, dsn, tmp_path, workers):
    rows = scaled(300 * workers)
    create_docs(conn)
    install_audit(conn)
    watch(conn, embedder="openai", model="stub-model", backfill=False)
    names = [f"worker-{i}" for i in range(1, workers + 1)]
    with OpenAIStub(dimensions=DIMS, latency=0.03, seed=4) as stub:
        env = openai_env(stub, batch_size=10, AUTOEMBED_POLL_INTERVAL=5, AUTOEMBED_VISIBILITY_TIMEOUT=5)
        procs = [WorkerProcess(dsn, name, tmp_path / f"{name}.log", env).start() for name in names]
        try:
            wait_until(lambda: listening(conn, names), 30, what="every worker to listen")
            started = time.monotonic()
            conn.execute("insert into docs (body) select 'shared row ' || g from generate_series(1, %s) g", (rows,))
            # Content changes race the workers: the same row has jobs in several workers' batches.
            app_deadlocks = 0
            for step in range(3):
                time.sleep(0.2)
                while True:  # see test_concurrent_writers: the application can lose a deadlock to a worker
                    try:
                        conn.execute("update docs set body = body || ' v' || %s where id %% 3 = %s", (step + 2, step))
                        break
                    except psycopg.errors.DeadlockDetected:
                        app_deadlocks += 1
            verdict = wait_settled(conn, timeout=120, workers=tuple(procs))
            elapsed = time.monotonic() - started
        finally:
            for proc in procs:
                proc.stop()
        embedded_texts = ok_inputs(stub)

    verdict = check(conn)
    shares = writes_by_app(conn)
    versions = conn.execute("select count(*) from reliability_audit where kind = 'content'").fetchone()[0]
    report(f"{workers} workers", rows=verdict.rows, faults={}, lost=len(verdict.lost), stale=len(verdict.stale),
           failed=verdict.failed, duplicate_writes=verdict.duplicate_writes, writes_per_worker=shares,
           model_inputs=embedded_texts, content_versions=versions, application_deadlocks=app_deadlocks,
           elapsed_s=round(elapsed, 2))
    assert verdict.ok, verdict
    assert verdict.failed == 0 and verdict.rows == rows
    assert set(shares) == set(names) and all(n > 0 for n in shares.values()), shares
    assert embedded_texts <= versions, "a content version was sent to the model twice"
    for proc in procs:
        assert "Traceback" not in proc.log(), proc.log()[-3000:]




def test_workers_writing_different_rows_never_deadlock(conn, dsn, tmp_path):
    """One job per row (inserts only): the workers never touch the same row, so nothing should make
    their write-backs wait for each other long enough to deadlock."""
    rows = scaled(600)
    create_docs(conn)
    watch(conn, embedder="openai", model="stub-model", backfill=False)
    names = ["apart-1", "apart-2"]
    with OpenAIStub(dimensions=DIMS, seed=4) as stub:  # no model latency: write-backs overlap all the time
        env = openai_env(stub, batch_size=5, AUTOEMBED_POLL_INTERVAL=5, AUTOEMBED_VISIBILITY_TIMEOUT=30)
        procs = [WorkerProcess(dsn, name, tmp_path / f"{name}.log", env).start() for name in names]
        try:
            wait_until(lambda: listening(conn, names), 30, what="every worker to listen")
            started = time.monotonic()
            conn.execute("insert into docs (body) select 'apart row ' || g from generate_series(1, %s) g", (rows,))
            wait_settled(conn, timeout=120, workers=tuple(procs), audited=False)
            elapsed = time.monotonic() - started
        finally:
            for proc in procs:
                proc.stop()
    deadlocks = sum(proc.log().count("deadlock detected") for proc in procs)
    report("2 workers, disjoint rows", rows=rows, faults={}, lost=0, stale=0, duplicate_writes=0,
           worker_deadlocks=deadlocks, elapsed_s=round(elapsed, 2))
    assert deadlocks == 0, f"{deadlocks} deadlocks between the workers' write-backs ({elapsed:.1f}s for {rows} rows)"

def _two_jobs_per_row_in_two_workers(conn, dsn, tmp_path):
    """Each row gets two jobs back to back (two content updates in one transaction); with one job per
    batch, two idle workers pick up the two jobs of a row at the same moment. Returns (verdict, model inputs)."""
    rows = scaled(40)
    create_docs(conn)
    install_audit(conn)
    watch(conn, embedder="openai", model="stub-model", backfill=False)
    conn.execute("insert into docs (body) select 'pair row ' || g from generate_series(1, %s) g", (rows,))
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")  # only the update jobs below
    names = ["pair-1", "pair-2"]
    with OpenAIStub(dimensions=DIMS, latency=0.05, seed=4) as stub:
        env = openai_env(stub, batch_size=1, AUTOEMBED_POLL_INTERVAL=5, AUTOEMBED_VISIBILITY_TIMEOUT=30)
        procs = [WorkerProcess(dsn, name, tmp_path / f"{name}.log", env).start() for name in names]
        try:
            wait_until(lambda: listening(conn, names), 30, what="both workers to listen")
            for i in range(1, rows + 1):
                with conn.transaction():
                    conn.execute("update docs set body = body || ' v2' where id = %s", (i,))
                    conn.execute("update docs set body = body || ' v3' where id = %s", (i,))
            wait_settled(conn, timeout=120, workers=tuple(procs))
        finally:
            for proc in procs:
                proc.stop()
    verdict = check(conn)
    report("2 workers, 2 jobs per row", rows=verdict.rows, faults={}, lost=len(verdict.lost),
           stale=len(verdict.stale), failed=verdict.failed, duplicate_writes=verdict.duplicate_writes,
           writes_per_worker=writes_by_app(conn), model_inputs=ok_inputs(stub))
    assert not (verdict.lost or verdict.stale or verdict.queue_left), verdict
    return verdict, ok_inputs(stub)


def test_two_jobs_of_one_row_in_two_workers_embed_and_write_it_once(conn, dsn, tmp_path):
    verdict, model_inputs = _two_jobs_per_row_in_two_workers(conn, dsn, tmp_path)
    assert verdict.duplicate_writes == 0, f"{verdict.duplicate_writes} of {verdict.rows} rows written twice"
    assert model_inputs == verdict.rows, f"{model_inputs - verdict.rows} of {verdict.rows} rows embedded twice"
