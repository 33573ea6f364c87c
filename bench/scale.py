"""Horizontal scaling: 1, 2 and 4 `autoembed worker` processes on an I/O-bound embedder.

    .venv/bin/python bench/scale.py [--rows 6000] [--workers 1,2,4] [--latency-ms 50]
        [--batch-size 25] [--openai-batch-size 25] [--dims 384] [--quick] [--out FILE]

The openai embedder points at OpenAIStub (an OpenAI-compatible server on 127.0.0.1, in this
process) whose every request takes a fixed --latency-ms: the model is remote and I/O-bound, so
more workers should mean proportionally more rows/s until the machine (2 cores: PostgreSQL,
the stub and the workers) runs out. For each worker count: start the workers, wait until all
LISTEN (imports done, sources checked), insert --rows rows in one statement, and time until all
are embedded. The baseline is 1 worker in the same run. Target: near-linear (≥ 0.8 × N).

Batches are kept small (AUTOEMBED_BATCH_SIZE=25, one 25-text request per batch) so a run has
hundreds of batches to spread, and one worker's ceiling (25 rows per ~50 ms) stays far below
what the machine can write. Default scale ≈ 1 minute; --quick ≈ 20 s.
"""

from __future__ import annotations

import sys
import time

import common
from common import note

from support.openai_stub import OpenAIStub

TARGET_EFFICIENCY = 0.8  # rows/s of N workers >= 0.8 * N * rows/s of one


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--batch-size", type=int, default=25, help="AUTOEMBED_BATCH_SIZE")
    parser.add_argument("--openai-batch-size", type=int, default=25, help="AUTOEMBED_OPENAI_BATCH_SIZE")
    parser.add_argument("--dims", type=int, default=common.LOCAL_DIMS)
    parser.add_argument("--kind", default="short", choices=["short", "medium"])
    parser.add_argument("--timeout", type=float, default=300, help="seconds one run may take to drain")
    args = parser.parse_args(argv)
    common.apply_quick(args, {"rows": 1500, "timeout": 150})
    common.quiet_logs()
    counts = [int(n) for n in args.workers.split(",") if n.strip()]

    report = common.Report("scale", {k: v for k, v in vars(args).items() if k != "out"})
    texts = common.make_texts(args.kind, args.rows)
    with OpenAIStub(dimensions=args.dims, latency=args.latency_ms / 1000) as stub, \
            common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db) as bench_db, \
            bench_db.connect() as conn:
        report.machine = common.machine_facts(bench_db.server_version())
        env = common.worker_env(openai_base_url=stub.base_url, openai_api_key="bench",
                                batch_size=args.batch_size, openai_batch_size=args.openai_batch_size,
                                poll_interval=1)
        rates = {}
        for n in counts:
            table = f"scale_{n}"
            common.create_table(conn, table, args.dims, embedder="openai", model="bench-stub")
            error = None
            deadlocks_before = bench_db.server_log_count("deadlock detected")
            with common.WorkerPool(bench_db, n, env, prefix=f"bench-scale{n}") as pool:
                ready = pool.wait_listening(conn)
                stub.reset()
                started = time.monotonic()
                common.insert_texts(conn, table, texts)
                try:
                    done_at = common.wait_drained(conn, table, args.rows, timeout=args.timeout)
                except TimeoutError as exc:
                    done_at, error = time.monotonic(), str(exc)
                seconds = done_at - started
                requests = stub.requests
                errors = {what: pool.count_in_logs(what) for what in ("deadlock detected", "database error")}
                errors["server log: deadlock detected"] = bench_db.server_log_count("deadlock detected") - deadlocks_before
                pool.stop()
            rates[n] = args.rows / seconds if error is None else None
            note(f"{n} worker(s): " + (f"{rates[n]:,.0f} rows/s" if error is None else f"NOT DRAINED: {error}")
                 + f" ({seconds:.2f} s, ready after {ready:.1f} s, {len(requests)} requests of "
                 f"{sum(requests) / max(1, len(requests)):.1f} texts; worker logs: {errors})")
            report.details[f"workers_{n}"] = {"seconds": seconds, "rows_per_s": rates[n], "error": error,
                                              "requests": len(requests), "counts": dict(stub.counts),
                                              "worker_log_counts": errors}
            conn.execute(common.sql.SQL("drop table {}").format(common.sql.Identifier(table)))
        first = rates[counts[0]]
        for n in counts:
            target = None if n == counts[0] else f"ratio >= {TARGET_EFFICIENCY * n / counts[0]:.1f}"
            detail = report.details[f"workers_{n}"]
            logs = detail["worker_log_counts"]
            server = logs["server log: deadlock detected"]
            trouble = (f"; {server} deadlocks in the server log, {logs['deadlock detected']} reached the worker logs"
                       if server else "")
            if rates[n] is None or first is None:
                report.add(f"{n} worker(s): rows/s", None, "rows/s", target=target, passed=False,
                           note=f"{detail['error'] or 'no 1-worker baseline'}{trouble}")
                continue
            ideal = first / counts[0] * n
            report.add(f"{n} worker(s): rows/s", rates[n], "rows/s", baseline=first,
                       baseline_name=f"{counts[0]} worker", target=target,
                       passed=None if n == counts[0] else rates[n] >= TARGET_EFFICIENCY * ideal,
                       note=f"efficiency {rates[n] / ideal:.0%} of linear{trouble}")
        one_worker_ceiling = args.batch_size / (args.latency_ms / 1000)
        report.details["one_worker_ceiling_rows_per_s"] = one_worker_ceiling
    return report.emit(args.out)


if __name__ == "__main__":
    main()
    sys.exit(0)
