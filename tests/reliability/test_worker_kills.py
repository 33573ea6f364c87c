"""SIGKILL the worker at random moments, in the model call and in the write-back, and restart it:
nothing is lost, nothing is left stale, nothing is written twice, no job is left behind."""

from __future__ import annotations

import random
import time
from collections import Counter

import psycopg
from harness import (DIMS, WorkerProcess, check, install_audit, ok_inputs, openai_env, report, scaled,
                     slow_writeback, wait_settled, wait_until)
from support import create_docs, queue_depth, watch

from support.openai_stub import OpenAIStub

LATENCY = 0.12  # seconds the stub takes per request: the model-call window


def insert_rows(conn: psycopg.Connection, first: int, count: int) -> None:
    conn.execute("insert into docs (body) select 'row ' || g || ' of the kill test ' || md5(g::text) "
                 "from generate_series(%s::int, %s::int) g", (first, first + count - 1))


def test_sigkill_at_random_moments_loses_nothing(conn, dsn, tmp_path):
    rows, kills = scaled(2000), scaled(20, minimum=20)
    create_docs(conn)
    install_audit(conn)
    slow_writeback(conn, seconds=0.004)  # 25 rows a batch: ~100 ms of write-back to land kills in
    watch(conn, embedder="openai", model="stub-model", backfill=False)
    rng = random.Random(20261123)
    insert_rows(conn, 1, rows)
    inserted, updated = rows, 0
    landed: Counter[str] = Counter()
    started = time.monotonic()
    with OpenAIStub(dimensions=DIMS, latency=LATENCY, seed=1) as stub, \
            psycopg.connect(dsn, autocommit=True) as observer:
        worker = WorkerProcess(dsn, "kill-test-worker", tmp_path / "worker.log", openai_env(stub))
        for k in range(kills):
            # Keep work in the queue, and change the content of rows while the worker lives and dies.
            if queue_depth(conn) < 150:
                insert_rows(conn, inserted + 1, 200)
                inserted += 200
            picked = rng.sample(range(1, inserted + 1), 10)
            conn.execute("update docs set body = body || ' (edited)' where id = any(%s)", (picked,))
            updated += len(picked)

            moment = ("model call", "write-back", "random")[k % 3]
            requests_before = len(stub.request_log)
            worker.start()
            try:
                time.sleep(0.05)
                worker.assert_alive()
                if moment == "model call":
                    # A request arrived and its answer is at least LATENCY away: kill inside the call.
                    wait_until(lambda: len(stub.request_log) > requests_before, 20, interval=0.002,
                               what="a model call")
                    time.sleep(LATENCY * rng.uniform(0.2, 0.7))
                elif moment == "write-back":
                    wait_until(lambda: worker.writing_back(observer), 20, interval=0.002, what="a write-back")
                else:
                    time.sleep(rng.uniform(0.1, 2.0))
            finally:
                worker.kill()
            landed[moment] += 1
        killed_at = time.monotonic()

        worker.start()
        verdict = wait_settled(conn, timeout=120 * max(1.0, rows / 2000), workers=(worker,))
        recovered_in = time.monotonic() - killed_at
        worker.stop()
        embedded_texts = ok_inputs(stub)

    verdict = check(conn)
    report("sigkill", rows=verdict.rows, kills=sum(landed.values()), faults={f"kill in {k}": n for k, n in landed.items()},
           lost=len(verdict.lost), stale=len(verdict.stale), failed=verdict.failed,
           duplicate_writes=verdict.duplicate_writes, reembedded_after_kills=embedded_texts - verdict.rows - updated,
           drain_after_last_kill_s=round(recovered_in, 2), elapsed_s=round(time.monotonic() - started, 1))
    assert worker.kills >= 20 and landed["model call"] >= 6 and landed["write-back"] >= 6, landed
    assert verdict.ok, verdict
    assert verdict.failed == 0, verdict.failures
    assert verdict.rows == inserted
    assert "Traceback" not in worker.log()
