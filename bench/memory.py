"""Memory and time of a large backfill: `autoembed backfill` + one `autoembed worker --drain`.

    .venv/bin/python bench/memory.py [--rows 1000000] [--batch-size 100] [--dims 384] [--quick] [--out FILE]

--rows existing rows (short texts, generated in SQL, every 10th Korean) are inserted before the
table is watched (watch(..., backfill => false)), so no job exists yet. Then, as subprocesses:

1. `autoembed backfill TABLE`: enqueues every row (the SQL function walks the primary key in
   chunks of 10,000). Measured: its peak RSS (the kernel's ru_maxrss, via wait4), the peak RSS
   of its PostgreSQL backend (sampled from /proc every 50 ms: VmRSS, which counts the shared
   buffers the backend touched, and RssAnon, its private memory), and the time.
2. `autoembed worker --drain` with the hashing embedder: the same for the worker process and
   its backends, the drain time, and a time series of RSS and queue length, so a leak shows
   as growth between 25% and 100% of the rows.

Baselines, measured in the same run: the CLI's and the worker's own start-up footprint
(`autoembed backfill` on an empty table, `autoembed worker --drain` on an empty queue) and the
RSS of an idle backend. Targets: every process under 500 MB at peak, and the worker's RSS
flat (grows < 50 MB from 25% to 100% of the drain).

Default (1,000,000 rows) ≈ 10 minutes on 2 cores and ~3 GB of disk; --quick (20,000 rows) ≈ 20 s.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
import sys
import threading
import time

import common
from common import note

PEAK_LIMIT_MB = 500
GROWTH_LIMIT_MB = 50
CHUNK = 100_000

GENERATE = """
insert into {table} (body)
select case when i %% 10 = 9
            then (select string_agg(k[1 + (hashint4(i * 7 + j)::bigint & 2147483647) %% cardinality(k)], ' ')
                  from generate_series(1, 1) j) || ' (' || i || ')'
            else initcap((select string_agg(v[1 + (hashint4(i * 31 + j)::bigint & 2147483647) %% cardinality(v)], ' ')
                          from generate_series(1, 12 + i %% 5) j)) || '.'
       end
from generate_series(%(start)s::int, %(stop)s::int) i, (select %(v)s::text[] as v, %(k)s::text[] as k) words
"""


def mb(kb: int | None) -> float | None:
    return None if kb is None else kb / 1024


def run_cli(bench_db: common.BenchDatabase, app: str, args: list[str], env: dict,
            timeout: float) -> tuple[float, common.WorkerProcess, common.RssSampler, list]:
    """Run `autoembed --dsn ... ARGS` as `app`, sampling it and its backends; returns
    (seconds, process, sampler, progress series [(s, queue length)])."""
    log = Path(tempfile.mkstemp(prefix=f"{app}-", suffix=".log")[1])
    started = time.monotonic()
    with open(log, "wb") as f:
        popen = subprocess.Popen([str(common.AUTOEMBED_BIN), "--dsn", bench_db.dsn_for(app), *args],
                                 env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    proc = common.WorkerProcess(app, popen, log)
    progress: list[tuple[float, int]] = []
    stop = threading.Event()
    with bench_db.connect() as watch_conn:
        def pids() -> dict[str, int]:
            out = {"client": popen.pid} if proc.alive() else {}
            out.update(common.backend_pids(watch_conn, [app]))
            return out

        def track_queue() -> None:
            with bench_db.connect() as conn:
                while not stop.wait(2.0):
                    n = conn.execute("select count(*) from pgmq.q_autoembed_jobs").fetchone()[0]
                    progress.append((round(time.monotonic() - started, 1), n))

        tracker = threading.Thread(target=track_queue, daemon=True)
        tracker.start()
        with common.RssSampler(pids, interval=0.05, series_every=2.0) as sampler:
            code = proc.wait(timeout)
        stop.set()
        tracker.join(timeout=10)
    seconds = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {code}:\n{proc.log_tail()}")
    log.unlink(missing_ok=True)
    return seconds, proc, sampler, progress


def backend_peak(sampler: common.RssSampler, key: str) -> int:
    return max((p.get(key, 0) for label, p in sampler.peaks.items() if label != "client"), default=0)


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=100, help="AUTOEMBED_BATCH_SIZE of the worker")
    parser.add_argument("--dims", type=int, default=common.LOCAL_DIMS)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds the drain may take")
    args = parser.parse_args(argv)
    common.apply_quick(args, {"rows": 20_000})
    common.quiet_logs()

    report = common.Report("memory", {k: v for k, v in vars(args).items() if k != "out"})
    env = common.worker_env(batch_size=args.batch_size, poll_interval=1)
    with common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db) as bench_db, bench_db.connect() as conn:
        report.machine = common.machine_facts(bench_db.server_version())
        conn.execute("create table docs (id bigint generated always as identity primary key, body text, "
                     f"views int not null default 0, embedding vector({args.dims}))")
        common.watch(conn, "docs", embedder="hashing", model="bench-hashing", backfill=False)

        # Baselines: start-up footprints, and an idle backend.
        seconds, empty_backfill, sampler, _ = run_cli(bench_db, "bench-backfill-empty", ["backfill", "docs"], env, 120)
        base_cli_kb = empty_backfill.max_rss_kb
        seconds, empty_worker, sampler, _ = run_cli(bench_db, "bench-worker-empty", ["worker", "--drain"], env, 120)
        base_worker_kb = empty_worker.max_rss_kb
        with bench_db.connect() as idle:
            idle_pid = idle.execute("select pg_backend_pid()").fetchone()[0]
            idle_backend = common.proc_status(idle_pid)

        conn.execute("alter table docs disable trigger user")  # belt and braces: watch() above made triggers
        note(f"inserting {args.rows:,} rows")
        started = time.monotonic()
        for start in range(1, args.rows + 1, CHUNK):
            with conn.transaction():
                conn.execute(GENERATE.format(table="docs"), {"start": start, "stop": min(args.rows, start + CHUNK - 1),
                                                             "v": common.VOCABULARY, "k": common.KOREAN})
        conn.execute("alter table docs enable trigger user")
        conn.execute("vacuum analyze docs")
        insert_seconds = time.monotonic() - started
        assert common.queue_length(conn) == 0
        note(f"inserted in {insert_seconds:.1f}s; backfill")

        backfill_s, backfill, backfill_samples, _ = run_cli(bench_db, "bench-backfill", ["backfill", "docs"], env, 3600)
        queued = common.queue_length(conn)
        note(f"backfill enqueued {queued:,} jobs in {backfill_s:.1f}s; draining")
        drain_s, worker, worker_samples, progress = run_cli(bench_db, "bench-worker", ["worker", "--drain"], env,
                                                            args.timeout)
        embedded = common.count_embedded(conn, "docs")
        if embedded != args.rows:
            raise RuntimeError(f"{embedded} of {args.rows} rows embedded after the drain")
        note(f"drained in {drain_s:.1f}s ({args.rows / drain_s:,.0f} rows/s)")

        # Flatness: the worker's RSS at 25% of the drain vs its peak after that.
        series = [(t, labels.get("client")) for t, labels in worker_samples.series if labels.get("client")]
        quarter = [kb for t, kb in series if t >= drain_s * 0.25]
        growth_mb = (max(quarter) - quarter[0]) / 1024 if quarter else None

        limit = PEAK_LIMIT_MB * 1024
        report.add("worker peak RSS", mb(worker.max_rss_kb), "MB", baseline=mb(base_worker_kb),
                   baseline_name="worker start-up (empty queue)", target=f"< {PEAK_LIMIT_MB} MB",
                   passed=worker.max_rss_kb < limit)
        report.add("worker RSS growth, 25% -> 100% of the drain", growth_mb, "MB", target=f"< {GROWTH_LIMIT_MB} MB",
                   passed=None if growth_mb is None else growth_mb < GROWTH_LIMIT_MB)
        report.add("`autoembed backfill` peak RSS", mb(backfill.max_rss_kb), "MB", baseline=mb(base_cli_kb),
                   baseline_name="same CLI, empty table", target=f"< {PEAK_LIMIT_MB} MB",
                   passed=backfill.max_rss_kb < limit)
        for label, samples in (("backfill's", backfill_samples), ("worker's", worker_samples)):
            anon, rss = backend_peak(samples, "RssAnon"), backend_peak(samples, "VmRSS")
            report.add(f"{label} PostgreSQL backend peak private memory (RssAnon)", mb(anon), "MB",
                       baseline=mb(idle_backend.get("RssAnon")), baseline_name="idle backend",
                       target=f"< {PEAK_LIMIT_MB} MB", passed=anon < limit,
                       note=f"VmRSS incl. shared buffers touched: {mb(rss):.0f} MB")
        report.add("backfill enqueue", args.rows / backfill_s, "rows/s", note=f"{backfill_s:.1f} s")
        report.add("drain (hashing, 1 worker)", args.rows / drain_s, "rows/s",
                   note=f"{drain_s:.1f} s; total backfill + drain {backfill_s + drain_s:.1f} s")
        report.details.update({
            "insert_seconds": insert_seconds, "backfill_seconds": backfill_s, "drain_seconds": drain_s,
            "worker_rss_series_mb": [(t, round(kb / 1024, 1)) for t, kb in series],
            "queue_length_series": progress,
            "peaks_kb": {"backfill": backfill_samples.peaks, "worker": worker_samples.peaks},
            "ru_maxrss_kb": {"backfill": backfill.max_rss_kb, "worker": worker.max_rss_kb,
                             "backfill_empty": base_cli_kb, "worker_empty": base_worker_kb},
            "idle_backend_kb": idle_backend,
        })
    return report.emit(args.out)


if __name__ == "__main__":
    main()
    sys.exit(0)
