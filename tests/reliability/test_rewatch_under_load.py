"""`unwatch` and `watch` again while applications write and a worker embeds: whatever changed while
nobody watched is embedded again, and nothing the new registration finds is taken on trust."""

from __future__ import annotations

import random
import threading
import time

import psycopg
from harness import check, install_audit, report, scaled, wait_settled
from support import create_docs, watch
from test_concurrent_writers import live_worker, run_stream  # noqa: F401 (a fixture)

WORDS = ["alpha", "beta", "gamma", "delta", "안녕", "🎉", "", None]


def random_ops(rng: random.Random, count: int) -> list[tuple]:
    ops = []
    for _ in range(count):
        kind = rng.choice(["insert", "update_content", "update_content", "update_other", "delete", "rekey", "pause"])
        if kind == "insert":
            ops.append(("insert", rng.choice(WORDS)))
        elif kind == "update_content":
            ops.append(("update_content", rng.randrange(40), rng.choice(WORDS)))
        elif kind == "pause":
            ops.append(("pause", rng.random() * 0.01))
        else:
            ops.append((kind, rng.randrange(40)))
    return ops


def test_watching_again_under_load_leaves_no_row_lost_or_stale(conn, dsn, live_worker):  # noqa: F811
    rng = random.Random(11)
    create_docs(conn)
    install_audit(conn)
    watch(conn, backfill=False)
    conn.execute("insert into docs (body) select 'row ' || g from generate_series(1, 60) g")
    streams = [random_ops(rng, scaled(120)) for _ in range(3)]
    start, errors = threading.Barrier(len(streams) + 1), []
    writers = [threading.Thread(target=run_stream, args=(dsn, "docs", ops, start, errors)) for ops in streams]
    for writer in writers:
        writer.start()
    start.wait()
    cycles = scaled(4)
    with psycopg.connect(dsn, autocommit=True) as admin:
        for cycle in range(cycles):
            time.sleep(rng.random() * 0.2)
            admin.execute("select autoembed.unwatch('docs')")
            time.sleep(rng.random() * 0.2)  # the writers go on: nobody watches
            watch(admin, clear_on_change=cycle % 2 == 0)
    for writer in writers:
        writer.join(60)
    assert not errors, errors
    verdict = wait_settled(conn, timeout=60)
    live_worker.assert_alive()
    report("watch again under load", rows=verdict.rows, faults={"rewatches": cycles}, lost=len(verdict.lost),
           stale=len(verdict.stale), failed=verdict.failed, duplicate_writes=verdict.duplicate_writes)
    verdict = check(conn)
    assert verdict.ok, verdict
