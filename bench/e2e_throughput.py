"""End-to-end throughput with the local model, against the same model's raw throughput.

    .venv/bin/python bench/e2e_throughput.py [--backend onnx|onnx-int8|torch] [--short-rows N]
        [--medium-rows N] [--rounds N] [--batch-size N] [--quick] [--out FILE]

For short (≈18 tokens) and medium (≈160 tokens) texts: N rows are inserted into a watched table in
one statement (N jobs queued), then one in-process worker drains the queue; rows/s = N / drain
time. The baseline is `embedder.embed` on the very same embedder object over the same texts, in
calls of the worker's batch size. Rounds alternate raw/worker order and each side keeps its best
round (load from elsewhere only ever slows a run). Target: e2e ≥ 0.9 of raw.

Default scale ≈ 1.5 minutes on 2 cores (model load included); --quick ≈ 15 s.
"""

from __future__ import annotations

import sys

import common
from common import note

from autoembed import metrics
from autoembed.embedders import build_embedder
from autoembed.settings import Settings

TARGET = 0.9


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="onnx", choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--short-rows", type=int, default=1500)
    parser.add_argument("--medium-rows", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=Settings.batch_size, help="AUTOEMBED_BATCH_SIZE of the worker")
    parser.add_argument("--threads", type=int, default=0, help="AUTOEMBED_LOCAL_THREADS (0: the runtime's choice)")
    args = parser.parse_args(argv)
    common.apply_quick(args, {"short_rows": 200, "medium_rows": 40, "rounds": 1})
    common.quiet_logs()

    settings = Settings(batch_size=args.batch_size, local_backend=args.backend, local_threads=args.threads,
                        listen=False, poll_interval=0.5)
    report = common.Report("e2e_throughput", {k: v for k, v in vars(args).items() if k not in ("out",)})
    note(f"loading {common.LOCAL_MODEL} ({args.backend})")
    embedder = build_embedder("local", common.LOCAL_MODEL, common.LOCAL_DIMS, settings)
    report.details["embedder_source"] = getattr(embedder, "source", "")

    with common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db) as bench_db, bench_db.connect() as conn:
        report.machine = common.machine_facts(bench_db.server_version())
        for kind, rows in (("short", args.short_rows), ("medium", args.medium_rows)):
            if rows <= 0:
                continue
            texts = common.make_texts(kind, rows)
            common.raw_embed_rate(embedder, texts[:64], args.batch_size)  # warm-up on these lengths
            raw_rates, e2e_rates, embed_shares = [], [], []
            for r in range(args.rounds):
                order = ("raw", "e2e") if r % 2 == 0 else ("e2e", "raw")
                for side in order:
                    if side == "raw":
                        rate = common.raw_embed_rate(embedder, texts, args.batch_size)
                        raw_rates.append(rate)
                        note(f"{kind} round {r + 1}: raw {rate:.1f} texts/s")
                        continue
                    table = f"docs_{kind}_{r}"
                    common.create_table(conn, table, common.LOCAL_DIMS, embedder="local", model=common.LOCAL_MODEL)
                    common.insert_texts(conn, table, texts)
                    embed_before = metrics.EMBED_SECONDS._sum.get()
                    seconds = common.drain_in_process(bench_db.dsn, settings, embedder)
                    embed_seconds = metrics.EMBED_SECONDS._sum.get() - embed_before
                    done = common.count_embedded(conn, table)
                    if done != rows:
                        raise RuntimeError(f"{table}: {done} of {rows} rows embedded after the drain")
                    e2e_rates.append(rows / seconds)
                    embed_shares.append(embed_seconds / seconds)
                    note(f"{kind} round {r + 1}: worker {rows / seconds:.1f} rows/s "
                         f"({seconds:.2f} s, {embed_seconds / seconds:.0%} of it in embed())")
            raw, e2e = max(raw_rates), max(e2e_rates)
            ratio = e2e / raw
            paired = sorted(e / r for e, r in zip(e2e_rates, raw_rates))
            report.add(f"{kind}: worker rows/s ({args.backend})", e2e, "rows/s", baseline=raw,
                       baseline_name="raw embed", target=f"ratio >= {TARGET}", passed=ratio >= TARGET,
                       note=f"best of {args.rounds} each; median of the per-round ratios "
                            f"{paired[len(paired) // 2]:.3f} (if far apart, the machine was busy)")
            report.details[kind] = {
                "rows": rows, "raw_texts_per_s": raw_rates, "worker_rows_per_s": e2e_rates,
                "paired_ratios": [e / r for e, r in zip(e2e_rates, raw_rates)],
                "embed_share_of_worker_time": embed_shares,
            }
    embedder.close()
    return report.emit(args.out)


if __name__ == "__main__":
    main()
    sys.exit(0)
