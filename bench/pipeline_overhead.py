"""The pipeline's own ceiling: end-to-end rows/s with the near-free hashing embedder.

    .venv/bin/python bench/pipeline_overhead.py [--rows N] [--medium-rows N] [--batch-sizes 100,250,500,1000]
        [--dims 384] [--rounds N] [--quick] [--out FILE]

N short texts are inserted into a watched table in one statement, then one in-process worker
drains the queue (rows/s = N / drain time), once per worker batch size (AUTOEMBED_BATCH_SIZE).
The baseline is the raw hashing embedder over the same texts in calls of the same batch size,
in the same process. Medium texts run once at the default batch size: there the hashing
embedder itself costs ~0.3 ms a text, so they show less of the pipeline.
Target: ≥ 5,000 rows/s for short texts at the default batch size (100); the best batch size
is reported too. Each side keeps its best of --rounds.

Default scale ≈ 1-2 minutes on 2 cores; --quick ≈ 10 s.
"""

from __future__ import annotations

import sys

import common
from common import note

from autoembed import metrics
from autoembed.embedders.hashing import HashingEmbedder
from autoembed.settings import Settings

TARGET_ROWS_PER_S = 5000
DEFAULT_BATCH = Settings.batch_size


def run(bench_db: common.BenchDatabase, conn, embedder, texts: list[str], kind: str, batch_size: int,
        rounds: int, dims: int, tag: str) -> tuple[float, float, dict]:
    settings = Settings(batch_size=batch_size, listen=False, poll_interval=0.5)
    raw_rates, e2e_rates, embed_shares = [], [], []
    for r in range(rounds):
        raw_rates.append(common.raw_embed_rate(embedder, texts, batch_size))
        table = f"docs_{tag}_{r}"
        common.create_table(conn, table, dims)
        common.insert_texts(conn, table, texts)
        conn.execute("vacuum analyze pgmq.q_autoembed_jobs")
        embed_before = metrics.EMBED_SECONDS._sum.get()
        seconds = common.drain_in_process(bench_db.dsn, settings, embedder)
        embed_seconds = metrics.EMBED_SECONDS._sum.get() - embed_before
        done = common.count_embedded(conn, table)
        if done != len(texts):
            raise RuntimeError(f"{table}: {done} of {len(texts)} rows embedded after the drain")
        e2e_rates.append(len(texts) / seconds)
        embed_shares.append(embed_seconds / seconds)
        conn.execute(common.sql.SQL("drop table {}").format(common.sql.Identifier(table)))
        note(f"{kind} batch {batch_size} round {r + 1}: worker {len(texts) / seconds:,.0f} rows/s, "
             f"raw {raw_rates[-1]:,.0f} texts/s, embed() {embed_seconds / seconds:.0%} of worker time")
    detail = {"rows": len(texts), "batch_size": batch_size, "raw_texts_per_s": raw_rates,
              "worker_rows_per_s": e2e_rates, "embed_share_of_worker_time": embed_shares}
    return max(e2e_rates), max(raw_rates), detail


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000, help="short rows per run")
    parser.add_argument("--medium-rows", type=int, default=4000)
    parser.add_argument("--batch-sizes", default="100,250,500,1000")
    parser.add_argument("--dims", type=int, default=common.LOCAL_DIMS)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    common.apply_quick(args, {"rows": 2000, "medium_rows": 400, "rounds": 1})
    common.quiet_logs()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]

    report = common.Report("pipeline_overhead", {k: v for k, v in vars(args).items() if k != "out"})
    embedder = HashingEmbedder("bench-hashing", args.dims)
    with common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db) as bench_db, bench_db.connect() as conn:
        report.machine = common.machine_facts(bench_db.server_version())
        short = common.make_texts("short", args.rows)
        results = {}
        for bs in batch_sizes:
            results[bs] = run(bench_db, conn, embedder, short, "short", bs, args.rounds, args.dims, f"short_{bs}")
        best = max(results, key=lambda bs: results[bs][0])
        for bs in batch_sizes:
            e2e, raw, detail = results[bs]
            judged = bs == DEFAULT_BATCH
            report.add(f"short, batch {bs}: worker rows/s (hashing)", e2e, "rows/s", baseline=raw,
                       baseline_name="raw hashing",
                       target=f">= {TARGET_ROWS_PER_S:,} rows/s" if judged else None,
                       passed=(e2e >= TARGET_ROWS_PER_S) if judged else None,
                       note="best batch size" if bs == best else "")
            report.details[f"short_batch_{bs}"] = detail
        report.details["best_batch_size"] = best
        if args.medium_rows > 0:
            medium = common.make_texts("medium", args.medium_rows)
            e2e, raw, detail = run(bench_db, conn, embedder, medium, "medium", DEFAULT_BATCH, args.rounds,
                                   args.dims, "medium")
            report.add(f"medium, batch {DEFAULT_BATCH}: worker rows/s (hashing)", e2e, "rows/s", baseline=raw,
                       baseline_name="raw hashing", note="hashing costs ~0.3 ms per medium text itself")
            report.details["medium"] = detail
    return report.emit(args.out)


if __name__ == "__main__":
    main()
    sys.exit(0)
