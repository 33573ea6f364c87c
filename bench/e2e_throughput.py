"""End-to-end throughput with the local model, against the best raw configuration a sweep finds
in the same run.

    .venv/bin/python bench/e2e_throughput.py [--short-rows N] [--medium-rows N] [--rounds N]
        [--backend B] [--threads N] [--sub-batch N] [--cached] [--quick] [--out FILE]

The worker's embedder is built as a worker builds it: calibrated afresh (in a temporary
calibration directory; `--cached` uses this machine's kept calibration instead), unless
--backend/--threads/--sub-batch pin it. Then bench/local_calibration.py's sweep of raw
sentence-transformers (`model.encode(texts, batch_size=b)` over engines x threads x b) finds the
best raw configurations of each set: short and medium texts, English and Korean. Per set, in
`--rounds` rounds taking turns: the sweep's two fastest raw configurations on the set's N texts
(a round's baseline is the faster of the two); N rows inserted
into a watched table (one statement, N jobs) drained by one in-process worker (rows/s = N / drain
time); and the worker's own embedder without the database (`embed` in calls of the batch size),
which splits a shortfall into the configuration's part and the pipeline's. Each side keeps its
best round (load from elsewhere only ever slows a run); the spread of the per-round ratios is
the noise; rows per CPU-second of this process (the worker's own, without PostgreSQL's) are
given beside. Target: worker >= 0.95 of the best raw configuration.

Default scale ≈ 10 minutes on 2 idle cores, much longer on a loaded machine; --quick ≈ 2 minutes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import common
import local_calibration as lc
from common import note

from autoembed import metrics
from autoembed.embedders.models import Engines, ModelFiles
from autoembed.settings import Settings

TARGET = lc.TARGET


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--short-rows", type=int, default=300, help="rows per short set (English, Korean)")
    parser.add_argument("--medium-rows", type=int, default=60, help="rows per medium set (English, Korean)")
    parser.add_argument("--sweep-short", type=int, default=64, help="texts per short set in the sweep")
    parser.add_argument("--sweep-medium", type=int, default=16, help="texts per medium set in the sweep")
    parser.add_argument("--sweep-rounds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=Settings.batch_size, help="AUTOEMBED_BATCH_SIZE of the worker")
    parser.add_argument("--backend", default=None, choices=["torch", "onnx", "onnx-int8"], help="pin the engine")
    parser.add_argument("--threads", type=int, default=0, help="pin AUTOEMBED_LOCAL_THREADS (0: calibrated)")
    parser.add_argument("--sub-batch", type=int, default=0, help="pin AUTOEMBED_LOCAL_SUB_BATCH (0: calibrated)")
    parser.add_argument("--cached", action="store_true", help="use this machine's kept calibration, if any")
    args = parser.parse_args(argv)
    common.apply_quick(args, {"short_rows": 48, "medium_rows": 8, "sweep_short": 16, "sweep_medium": 4,
                              "sweep_rounds": 1, "rounds": 1})
    common.quiet_logs()

    env_settings = Settings.from_env()
    settings = env_settings.replace(batch_size=args.batch_size, local_backend=args.backend, local_threads=args.threads,
                                    local_sub_batch=args.sub_batch, listen=False, poll_interval=0.5)
    report = common.Report("e2e_throughput", {k: v for k, v in vars(args).items() if k != "out"})
    with lc.shared_export_dir(settings) as temp:
        note("building the worker's embedder (calibrating)" if not args.cached else "building the worker's embedder")
        started = time.monotonic()
        embedder = lc.calibrated(settings, settings.cache_dir if args.cached else Path(temp), refresh=not args.cached)
        build_seconds = time.monotonic() - started
    calibration = embedder.calibration
    note(f"the worker's embedder: {lc.describe(calibration)}; built in {build_seconds:.1f} s")
    report.details["worker_plan"] = calibration.plan.describe()
    report.details["calibration"] = {"source": calibration.source, "seconds": calibration.seconds,
                                     "cpu_seconds": calibration.cpu_seconds, "complete": calibration.complete}
    report.add("calibration at start-up (on top of loading the model)", calibration.seconds, "s",
               note=f"{lc.describe(calibration)}; the whole build took {build_seconds:.1f} s")

    sweep_sets = lc.text_sets(args.sweep_short, args.sweep_medium, seed=1)
    engines = Engines(ModelFiles(common.LOCAL_MODEL, cache_dir=settings.cache_dir))
    note("sweeping raw configurations")
    rates = lc.sweep(engines, sweep_sets, args.sweep_rounds)
    report.details["sweep"] = {name: {str(c): vars(r) for c, r in cells.items()} for name, cells in rates.items()}
    sets = lc.text_sets(args.short_rows, args.medium_rows, seed=2)

    with common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db) as bench_db, bench_db.connect() as conn:
        report.machine = common.machine_facts(bench_db.server_version())
        for name in lc.SETS:
            texts, top = sets[name], lc.top_configs(rates[name], lc.TOP)
            if not texts:
                continue
            lc.embed_rate(embedder, texts[:32], args.batch_size)  # warm-up on these lengths
            tables = iter(f"docs_{name.replace('-', '_')}_{r}" for r in range(args.rounds))
            shares: list[float] = []

            def drain(texts: list[str] = texts) -> lc.Rate:
                table = next(tables)
                common.create_table(conn, table, common.LOCAL_DIMS, embedder="local", model=common.LOCAL_MODEL)
                common.insert_texts(conn, table, texts)
                embed_before, cpu_before = metrics.EMBED_SECONDS._sum.get(), time.process_time()
                seconds = common.drain_in_process(bench_db.dsn, settings, embedder)
                cpu = time.process_time() - cpu_before
                shares.append((metrics.EMBED_SECONDS._sum.get() - embed_before) / seconds)
                done = common.count_embedded(conn, table)
                if done != len(texts):
                    raise RuntimeError(f"{table}: {done} of {len(texts)} rows embedded after the drain")
                return lc.Rate(len(texts) / seconds, len(texts) / cpu)

            sides = {str(c): (lambda texts=texts, c=c: lc.raw_rate(engines, c, texts)) for c in top}
            sides["worker"] = drain
            sides["worker_embedder"] = lambda texts=texts: lc.embed_rate(embedder, texts, args.batch_size)
            result = lc.interleaved(sides, args.rounds)
            raw = lc.fastest_per_round(result, [str(c) for c in top])
            vs_best = lc.ratio_summary(result["worker"], raw)
            vs_own = lc.ratio_summary(result["worker"], result["worker_embedder"])
            choice = lc.ratio_summary(result["worker_embedder"], raw)
            note(f"{name}: worker {max(r.wall for r in result['worker']):.1f} rows/s, best raw "
                 f"{max(r.wall for r in raw):.1f} texts/s: {vs_best['ratio']:.3f} ({lc.rounds_note(vs_best)})")
            threads_now = {tokens: embedder.switch.current(i) for i, (tokens, _) in enumerate(embedder.plan.sub_batches)}
            note(f"{name}: thread count per bucket (tokens) at the end: {threads_now}")
            report.details[name] = {"rows": len(texts), "raw_configs": [str(c) for c in top], **lc.as_data(result),
                                    "threads_at_end": threads_now,
                                    "worker_vs_best_raw": vs_best, "worker_vs_its_embedder": vs_own,
                                    "embedder_vs_best_raw": choice, "embed_share_of_worker_time": shares}
            report.add(f"{name}: worker rows/s vs best raw config", max(r.wall for r in result["worker"]), "rows/s",
                       baseline=max(r.wall for r in raw), baseline_name="fastest of raw " + " | ".join(map(str, top)),
                       target=f"ratio >= {TARGET}", passed=vs_best["ratio"] >= TARGET,
                       note=f"{lc.rounds_note(vs_best)}; the worker's embedder without the database: "
                            f"{choice['ratio']:.3f} of the best raw (the choice; CPU time {choice['cpu_ratio']:.3f}), "
                            f"the worker {vs_own['ratio']:.3f} of it (the pipeline; embed() "
                            f"{min(shares):.0%}-{max(shares):.0%} of worker time)")
    data = report.emit(args.out)
    print("\nsweep (best of rounds; * = best of the set)")
    print("\n".join(lc.sweep_table(rates)))
    print(f"\nthe worker's configuration: {lc.describe(calibration)}")
    embedder.close()
    return data


if __name__ == "__main__":
    main()
    sys.exit(0)
