"""A backfill into a table with a vector index: the index autoembed owns (built after the backfill)
against the same index maintained row by row, measured in the same run.

    .venv/bin/python bench/index_backfill.py [--rows N] [--dims 384] [--batch-size 100] [--quick] [--out FILE]

N short texts are inserted into a watched table in one statement; one in-process worker (hashing
embedder: near-free, so the index's cost dominates) drains the queue.
- baseline: an HNSW index (vector_cosine_ops) is created on the empty table before the insert, as
  readers of a Django model with HnswIndex have it, so every write-back maintains it row by row;
  the time is from the insert until every row has its vector.
- autoembed: the table is watched with `index => 'hnsw'`; the worker writes the vectors without an
  index, then builds it CONCURRENTLY (AUTOEMBED_INDEX_MAINTENANCE_WORK_MEM, _PARALLEL_WORKERS at
  their defaults); the time is from the insert until every row has its vector and the index is valid.
Figure: baseline seconds / autoembed seconds, target >= 3. Throughout both runs a prober searches
the table (autoembed.search, k=5) every second and counts the searches that answered.

Default scale ≈ 4-5 minutes on 2 cores (the baseline is most of it); --quick ≈ 20 s.
"""

from __future__ import annotations

import sys
import threading
import time

import common
from common import note

from autoembed.embedders.hashing import HashingEmbedder
from autoembed.settings import Settings

TARGET_SPEEDUP = 3.0
PROBE_EVERY = 1.0  # seconds between the prober's searches


class Prober:
    """Searches a table every PROBE_EVERY seconds on a connection of its own, and watches the job
    queue and the table's vector index: when the queue emptied, when the index was ready, how many
    searches answered (without an error; with rows), also while the index was being built."""

    def __init__(self, bench_db: common.BenchDatabase, table: str, dims: int):
        self.bench_db = bench_db
        self.table = table
        self.query = [0.1] * dims
        self.searches = self.answered = self.with_rows = self.while_building = self.with_rows_while_building = 0
        self.errors: list[str] = []
        self.queue_empty_at: float | None = None
        self.index_valid_at: float | None = None
        self.loaded = threading.Event()  # set once the rows are inserted: the queue is watched from then on
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)

    def __enter__(self) -> "Prober":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with self.bench_db.connect() as conn:
            next_search = time.monotonic()
            while not self._stop.is_set():
                now = time.monotonic()
                if self.queue_empty_at is None and self.loaded.is_set() and conn.execute(
                        "select not exists (select from pgmq.q_autoembed_jobs)").fetchone()[0]:
                    self.queue_empty_at = now
                state = conn.execute("select st.state from autoembed.index_status st where st.source = %s",
                                     (f"public.{self.table}",)).fetchone()
                building = bool(state and state[0] and state[0].startswith("building"))
                if self.index_valid_at is None and state and state[0] and state[0].startswith("ready"):
                    self.index_valid_at = now
                if now >= next_search:
                    next_search = now + PROBE_EVERY
                    self._search(conn, building)
                self._stop.wait(0.25)

    def _search(self, conn, building: bool) -> None:
        self.searches += 1
        self.while_building += building
        try:
            rows = conn.execute("select pk from autoembed.search(%s::regclass, %s::vector, 5)",
                                (self.table, self.query)).fetchall()
        except Exception as exc:  # noqa: BLE001 - counted and reported
            self.errors.append(str(exc).strip()[:200])
            return
        self.answered += 1
        self.with_rows += bool(rows)
        self.with_rows_while_building += building and bool(rows)


def run_side(bench_db: common.BenchDatabase, conn, side: str, texts: list[str], dims: int, settings: Settings,
             embedder: HashingEmbedder) -> dict:
    """Load `texts` into a fresh table, drain, and time it (module doc)."""
    table = f"docs_{side}"
    common.create_table(conn, table, dims, watched=False)
    if side == "baseline":
        conn.execute(common.sql.SQL("create index on {} using hnsw (embedding vector_cosine_ops)").format(
            common.sql.Identifier(table)))
    conn.execute("select autoembed.watch(%s::regclass, 'body', embedder => 'hashing', model => 'bench-hashing', "
                 "backfill => false, index => %s)", (table, "none" if side == "baseline" else "hnsw"))
    conn.execute("checkpoint")
    with Prober(bench_db, table, dims) as prober:
        started = time.monotonic()
        common.insert_texts(conn, table, texts)
        prober.loaded.set()
        common.drain_in_process(bench_db.dsn, settings, embedder)
        finished = time.monotonic()
    done = common.count_embedded(conn, table)
    state = conn.execute("select st.state from autoembed.index_status st where st.source = %s",
                         (f"public.{table}",)).fetchone()[0]
    valid = conn.execute("select count(*) from pg_index where indrelid = %s::regclass and indisvalid "
                         "and indexrelid::regclass::text <> %s", (table, f"{table}_pkey")).fetchone()[0]
    if done != len(texts) or valid != 1:
        raise RuntimeError(f"{table}: {done} of {len(texts)} rows embedded, {valid} valid vector index(es); {state}")
    seconds = finished - started
    vectors_seconds = (prober.queue_empty_at or finished) - started
    result = {"seconds": seconds, "vectors_seconds": vectors_seconds,
              "index_seconds_after_vectors": max(0.0, seconds - vectors_seconds) if side != "baseline" else 0.0,
              "index_state": state, "searches": prober.searches, "searches_answered": prober.answered,
              "searches_with_rows": prober.with_rows, "searches_while_building": prober.while_building,
              "searches_with_rows_while_building": prober.with_rows_while_building, "search_errors": prober.errors[:3]}
    note(f"{side}: {seconds:.1f} s ({len(texts) / vectors_seconds:,.0f} rows/s of vectors"
         + (f", then the index in {result['index_seconds_after_vectors']:.1f} s" if side != "baseline" else "")
         + f"); searches answered {prober.answered} of {prober.searches}")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=common.LOCAL_DIMS)
    parser.add_argument("--batch-size", type=int, default=Settings.batch_size)
    args = parser.parse_args(argv)
    common.apply_quick(args, {"rows": 5000})
    common.quiet_logs()

    report = common.Report("index_backfill", {k: v for k, v in vars(args).items() if k != "out"})
    embedder = HashingEmbedder("bench-hashing", args.dims)
    settings = Settings(batch_size=args.batch_size, listen=False, poll_interval=0.5)
    texts = common.make_texts("short", args.rows)
    with common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db) as bench_db, bench_db.connect() as conn:
        report.machine = common.machine_facts(bench_db.server_version())
        sides = {side: run_side(bench_db, conn, side, texts, args.dims, settings, embedder)
                 for side in ("baseline", "autoembed")}
    baseline, owned = sides["baseline"]["seconds"], sides["autoembed"]["seconds"]
    speedup = baseline / owned
    rows = f"{args.rows:,}-row"
    report.add(f"{rows} backfill, HNSW index: seconds until every vector is written and the index valid", owned, "s",
               baseline=baseline, baseline_name="index maintained row by row",
               note=(f"autoembed: vectors in {sides['autoembed']['vectors_seconds']:.1f} s, then the index "
                     f"CONCURRENTLY in {sides['autoembed']['index_seconds_after_vectors']:.1f} s "
                     f"({settings.index_parallel_workers} parallel worker(s), {settings.index_maintenance_work_mem}); "
                     f"baseline write-back {args.rows / sides['baseline']['vectors_seconds']:,.0f} rows/s"))
    report.add(f"{rows} backfill, HNSW index: speed-up (baseline s / autoembed s)", speedup, "x",
               target=f">= {TARGET_SPEEDUP:g}", passed=speedup >= TARGET_SPEEDUP)
    answered = sides["autoembed"]
    report.add("searches answered during the autoembed run (k=5, one a second)", answered["searches_answered"],
               "searches", baseline=answered["searches"], baseline_name="searches sent",
               target="all", passed=answered["searches_answered"] == answered["searches"],
               note=f"{answered['searches_with_rows']} with rows; {answered['searches_with_rows_while_building']} of "
                    f"{answered['searches_while_building']} sent while the index was being built answered with rows")
    report.details.update(sides)
    return report.emit(args.out)


if __name__ == "__main__":
    main()
    sys.exit(0)
