"""Diagnostic: what one write-back of 100 vectors costs, and whether it grows with the table.

    .venv/bin/python bench/writeback_cost.py [--rows 40000] [--dims 384] [--quick] [--out FILE]

Two measurements the pipeline benchmarks pointed at:

1. Parameter format. The worker sends the vectors of a batch as one `vector[]` parameter. With a
   `%s` placeholder psycopg picks the text format for a list of numpy arrays (each float printed,
   then parsed by vector_in); `%b` sends pgvector's binary format. Timed: a round trip of
   `select cardinality(%s::vector[])` with 100 vectors, text vs binary.
2. Growth. `autoembed.write_embeddings(source_id, pks, hashes, vectors)` called for consecutive
   batches of 100 rows of a --rows table, with binary vectors, in a fresh cluster: median ms per
   call over the first and the last quarter of the run. A flat pipeline has equal figures. With
   --candidate, the same after replacing the function's row_state clean-up (see CANDIDATE_FIX)
   in the throwaway database, to check a fix before it becomes a migration.

Default ≈ 40 s; --quick ≈ 10 s.
"""

from __future__ import annotations

import re
import statistics
import sys
import time

import common
import numpy as np
from common import note


MIGRATION = common.REPO / "db" / "migrations" / "20261123000001_autoembed_core.sql"
CLEANUP_NOW = """    delete from autoembed.row_state s
    where s.source_id = src.id and s.pk = any(written)
      and s.pk = any(array(select b.pk from unnest(pks, hashes) b(pk, hash) where b.hash is null));"""
#: driven from the batch: one index probe per cleared row, none when no row was cleared
CANDIDATE_FIX = """    delete from autoembed.row_state s
    using unnest(pks, hashes) b(pk, hash)
    where b.hash is null and b.pk = any(written) and s.source_id = src.id and s.pk = b.pk;"""


def candidate_sql() -> str:
    text = MIGRATION.read_text(encoding="utf-8")
    match = re.search(r"^create function autoembed\.write_embeddings.*?^\$\$;", text, re.S | re.M)
    if not match or CLEANUP_NOW not in match.group(0):
        raise RuntimeError("write_embeddings changed in the migration: update CLEANUP_NOW/CANDIDATE_FIX")
    return match.group(0).replace(CLEANUP_NOW, CANDIDATE_FIX).replace("create function", "create or replace function", 1)


def write_call(conn) -> tuple[str, list[str]]:
    """The call of autoembed.write_embeddings with named arguments (its signature has changed
    before: this follows it), vectors in binary format; and the argument names in order."""
    names = conn.execute(
        "select p.proargnames from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname = 'autoembed' and p.proname = 'write_embeddings'").fetchone()[0]
    args = [n for n in names if n != "pk"]  # pk: the OUT column
    known = {"source_id", "embedder", "model", "pks", "hashes", "vectors"}
    if not set(args) <= known:
        raise RuntimeError(f"autoembed.write_embeddings takes {args}: teach bench/writeback_cost.py the new ones")
    placeholders = ", ".join(f"{a} => {'%b' if a == 'vectors' else '%s'}" for a in args)
    return f"select pk from autoembed.write_embeddings({placeholders})", args


def worker_sends_text() -> bool:
    """Whether the worker's write_embeddings query passes its last parameter (the vectors) as %s."""
    from autoembed.queries import QUERIES

    return QUERIES["write_embeddings"].rstrip().rstrip(";").rstrip().endswith("%s)")


def format_cost(conn, dims: int, reps: int = 20) -> dict[str, float]:
    vectors = [np.random.default_rng(i).random(dims).astype(np.float32) for i in range(100)]
    out = {}
    for label, placeholder in (("text (%s)", "%s"), ("binary (%b)", "%b")):
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            conn.execute(f"select cardinality({placeholder}::vector[])", (vectors,)).fetchone()
            times.append(time.perf_counter() - started)
        out[label] = statistics.median(times) * 1000
    return out


def growth(bench_db: common.BenchDatabase, rows: int, dims: int, candidate: bool) -> tuple[float, float, str]:
    with bench_db.connect() as conn:
        table = "wb_candidate" if candidate else "wb_current"
        if candidate:
            definer = conn.execute("select p.prosecdef from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
                                   "where n.nspname = 'autoembed' and p.proname = 'write_embeddings'").fetchone()[0]
            conn.execute(candidate_sql())
            if definer:  # create or replace resets SECURITY DEFINER: keep what the migrations set
                conn.execute("do $$ begin execute format('alter function %s security definer', "
                             "(select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
                             "where n.nspname = 'autoembed' and p.proname = 'write_embeddings')); end $$")
        common.create_table(conn, table, dims)
        with conn.transaction():
            conn.execute(common.sql.SQL("insert into {} (body) select 'row ' || i from generate_series(1, %s) i")
                         .format(common.sql.Identifier(table)), (rows,))
        conn.execute("select pgmq.purge_queue('autoembed_jobs')")
        conn.execute(common.sql.SQL("analyze {}").format(common.sql.Identifier(table)))
        source_id, embedder, model = conn.execute(
            "select id, embedder, model from autoembed.sources where source = %s::regclass", (table,)).fetchone()
        keys = conn.execute(common.sql.SQL("select id::text, md5(body)::uuid from {} order by id")
                            .format(common.sql.Identifier(table))).fetchall()
        vectors = [np.random.default_rng(i).random(dims).astype(np.float32) for i in range(100)]
        query, names = write_call(conn)  # binary vectors: measure the SQL only
        times = []
        for start in range(0, rows, 100):
            part = keys[start : start + 100]
            values = {"source_id": source_id, "embedder": embedder, "model": model, "pks": [k for k, _ in part],
                      "hashes": [h for _, h in part], "vectors": vectors[: len(part)]}
            started = time.perf_counter()
            with conn.transaction():
                conn.execute(query, [values[n] for n in names])
            times.append(time.perf_counter() - started)
        q = max(1, len(times) // 4)
        plan = conn.execute("select count(*) from autoembed.row_state where source_id = %s", (source_id,)).fetchone()[0]
        return statistics.median(times[:q]) * 1000, statistics.median(times[-q:]) * 1000, f"{plan} row_state rows"


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40000)
    parser.add_argument("--dims", type=int, default=common.LOCAL_DIMS)
    parser.add_argument("--candidate", action="store_true", help="also measure CANDIDATE_FIX")
    args = parser.parse_args(argv)
    common.apply_quick(args, {"rows": 8000})
    common.quiet_logs()
    report = common.Report("writeback_cost", {k: v for k, v in vars(args).items() if k != "out"})
    with common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db) as bench_db, bench_db.connect() as conn:
        report.machine = common.machine_facts(bench_db.server_version())
        cost = format_cost(conn, args.dims)
        report.add("100 vectors as one vector[] parameter, text format", cost["text (%s)"], "ms",
                   baseline=cost["binary (%b)"], baseline_name="binary format",
                   note="a `%s` placeholder sends a list of numpy arrays as text; the worker's query "
                        + ("sends vectors as text (its last placeholder is %s)" if worker_sends_text()
                           else "sends vectors in binary"))
        variants = [False] + ([True] if args.candidate else [])
        for candidate in variants:
            note(f"write_embeddings over {args.rows:,} rows ({'candidate fix' if candidate else 'as migrated'})")
            first, last, what = growth(bench_db, args.rows, args.dims, candidate)
            label = "candidate fix" if candidate else "as migrated"
            report.add(f"write_embeddings per 100 rows, last quarter ({label})", last, "ms", baseline=first,
                       baseline_name="first quarter", target="ratio <= 1.5", passed=last <= 1.5 * first,
                       note=f"{args.rows:,} rows written in batches of 100; {what} at the end")
    return report.emit(args.out)


if __name__ == "__main__":
    main()
    sys.exit(0)
