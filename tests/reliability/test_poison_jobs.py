"""Poison in the queue while a worker process embeds: every kind of message autoembed never writes
(support/poison.py), over and over among the real jobs. The worker neither dies nor stalls; each
poison message is archived, every real row embedded, and --drain finishes."""

from __future__ import annotations

import random

from harness import WorkerProcess, check, install_audit, report, scaled, wait_settled
from support import create_docs, watch
from support.poison import POISON, send


def test_poison_among_real_jobs_never_stops_a_worker_or_its_batch_mates(conn, dsn, tmp_path):
    rows, rounds = scaled(300), scaled(2)
    create_docs(conn)
    install_audit(conn)
    source_id = watch(conn, max_attempts=1, backfill=False)
    rng = random.Random(5)
    kinds = [kind for _ in range(rounds) for kind in POISON]
    rng.shuffle(kinds)
    worker = WorkerProcess(dsn, "poison-worker", tmp_path / "worker.log",
                           env={"AUTOEMBED_BATCH_SIZE": "40", "AUTOEMBED_POLL_INTERVAL": "0.5"}).start()
    try:
        for i, kind in enumerate(kinds):
            conn.execute("insert into docs (body) select 'poisoned batch ' || %s || ' row ' || g "
                         "from generate_series(1, %s) g", (i, max(1, rows // len(kinds))))
            send(conn, POISON[kind], source_id)
        verdict = wait_settled(conn, timeout=120, workers=(worker,))
    finally:
        worker.stop()
    archived = conn.execute("select count(*) from pgmq.a_autoembed_jobs").fetchone()[0]
    report("poison messages", rows=verdict.rows, faults={"poison messages": len(kinds)}, lost=len(verdict.lost),
           stale=len(verdict.stale), failed=verdict.failed, duplicate_writes=verdict.duplicate_writes,
           archived=archived)
    assert verdict.ok and verdict.failed == 0, verdict
    # archived, never left queued (fewer messages than were sent when a job naming poison keys was
    # requeued, merged with another, while a batch-mate held the same key)
    assert 0 < archived <= len(kinds)
    assert worker.starts == 1 and "Traceback" not in worker.log()
    done = WorkerProcess(dsn, "drain", tmp_path / "drain.log", args=("--drain",)).start()
    assert done.process.wait(60) == 0, done.log()
    assert check(conn).ok
