"""The pipeline's own cost: end-to-end rows/s with the near-free hashing embedder, against the
least work any such pipeline must do per row, measured in the same run.

    .venv/bin/python bench/pipeline_overhead.py [--rows N] [--medium-rows N] [--batch-sizes 100,250,500,1000]
        [--dims 384] [--rounds N] [--quick] [--out FILE]

N short texts are inserted into a watched table in one statement, then one in-process worker
drains the queue (rows/s = N / drain time), once per worker batch size (AUTOEMBED_BATCH_SIZE).
The baseline (the floor) drains the same queue from the same insert with a hand-written loop that
does only what the pipeline must: read a job message (pgmq.read), and for each batch of its keys,
in one transaction, load the content, embed it with the same hashing embedder and write the
vectors back; then delete the message. It checks no content hash, claims no row, keeps no row
state and records nothing, and runs one thread. Target: worker >= 0.8 of the floor at the default
batch size (100). The raw hashing embedder's own rate is reported beside. Medium texts run once at
the default batch size. Each side keeps its best of --rounds, sides taking turns.

Default scale ≈ 1-2 minutes on 2 cores; --quick ≈ 10 s.
"""

from __future__ import annotations

import json
import sys
import time

import common
from common import note

from autoembed import metrics
from autoembed.embedders.hashing import HashingEmbedder
from autoembed.settings import Settings

TARGET_RATIO = 0.8
DEFAULT_BATCH = Settings.batch_size
QUEUE = "autoembed_jobs"


def message_keys(message: dict) -> list[int]:
    """The integer keys a job message of the bench's tables names (a range, a list, or one key)."""
    if "pk_range" in message:
        first, last = message["pk_range"]
        return list(range(first, last + 1))
    return [int(pk) for pk in message.get("pks", [message.get("pk")])]


def floor_drain(conn, table: str, embedder, batch_size: int) -> float:
    """Drain the queue with the least work per row (module doc); returns the seconds it took."""
    load = common.sql.SQL("select id, body from {} where id = any(%s) order by id").format(common.sql.Identifier(table))
    write = common.sql.SQL("update {} t set embedding = v.e from unnest(%s::bigint[], %s) v(id, e) "
                           "where t.id = v.id").format(common.sql.Identifier(table))
    started = time.perf_counter()
    while True:
        read = conn.execute("select msg_id, message from pgmq.read(%s, 60, 1)", (QUEUE,), prepare=True).fetchone()
        if read is None:
            return time.perf_counter() - started
        msg_id, message = read
        keys = message_keys(message if isinstance(message, dict) else json.loads(message))
        for part in common.chunks(keys, batch_size):
            with conn.transaction():
                rows = conn.execute(load, (list(part),), prepare=True).fetchall()
                vectors = embedder.embed([body for _, body in rows])
                conn.execute(write, ([pk for pk, _ in rows], vectors), prepare=True)
        conn.execute("select pgmq.delete(%s, %s::bigint)", (QUEUE, msg_id), prepare=True)


def run(bench_db: common.BenchDatabase, conn, embedder, texts: list[str], kind: str, batch_size: int,
        rounds: int, dims: int, tag: str) -> tuple[float, float, float, dict]:
    """Best worker, floor and raw rates over `rounds` (each round: raw, floor, then worker)."""
    settings = Settings(batch_size=batch_size, listen=False, poll_interval=0.5)
    raw_rates, floor_rates, e2e_rates, embed_shares = [], [], [], []
    for r in range(rounds):
        raw_rates.append(common.raw_embed_rate(embedder, texts, batch_size))
        for side in ("floor", "worker"):
            table = f"docs_{tag}_{side}_{r}"
            common.create_table(conn, table, dims)
            common.insert_texts(conn, table, texts)
            conn.execute("vacuum analyze pgmq.q_autoembed_jobs")
            if side == "floor":
                seconds = floor_drain(conn, table, embedder, batch_size)
                floor_rates.append(len(texts) / seconds)
            else:
                embed_before = metrics.EMBED_SECONDS._sum.get()
                seconds = common.drain_in_process(bench_db.dsn, settings, embedder)
                embed_shares.append((metrics.EMBED_SECONDS._sum.get() - embed_before) / seconds)
                e2e_rates.append(len(texts) / seconds)
            done = common.count_embedded(conn, table)
            if done != len(texts):
                raise RuntimeError(f"{table}: {done} of {len(texts)} rows embedded by the {side}")
            conn.execute(common.sql.SQL("drop table {}").format(common.sql.Identifier(table)))
        note(f"{kind} batch {batch_size} round {r + 1}: worker {e2e_rates[-1]:,.0f} rows/s, floor "
             f"{floor_rates[-1]:,.0f} rows/s, raw {raw_rates[-1]:,.0f} texts/s, embed() {embed_shares[-1]:.0%} of worker time")
    detail = {"rows": len(texts), "batch_size": batch_size, "raw_texts_per_s": raw_rates,
              "floor_rows_per_s": floor_rates, "worker_rows_per_s": e2e_rates, "embed_share_of_worker_time": embed_shares}
    return max(e2e_rates), max(floor_rates), max(raw_rates), detail


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
        best = max(results, key=lambda bs: results[bs][0] / results[bs][1])
        for bs in batch_sizes:
            e2e, floor, raw, detail = results[bs]
            judged = bs == DEFAULT_BATCH
            report.add(f"short, batch {bs}: worker rows/s (hashing)", e2e, "rows/s", baseline=floor,
                       baseline_name="floor loop",
                       target=f">= {TARGET_RATIO} of the floor" if judged else None,
                       passed=(e2e >= TARGET_RATIO * floor) if judged else None,
                       note=f"raw hashing {raw:,.0f} texts/s" + ("; best ratio" if bs == best else ""))
            report.details[f"short_batch_{bs}"] = detail
        report.details["best_batch_size"] = best
        if args.medium_rows > 0:
            medium = common.make_texts("medium", args.medium_rows)
            e2e, floor, raw, detail = run(bench_db, conn, embedder, medium, "medium", DEFAULT_BATCH, args.rounds,
                                          args.dims, "medium")
            report.add(f"medium, batch {DEFAULT_BATCH}: worker rows/s (hashing)", e2e, "rows/s", baseline=floor,
                       baseline_name="floor loop", target=f">= {TARGET_RATIO} of the floor",
                       passed=e2e >= TARGET_RATIO * floor, note=f"raw hashing {raw:,.0f} texts/s")
            report.details["medium"] = detail
    return report.emit(args.out)


if __name__ == "__main__":
    main()
    sys.exit(0)
