"""What watching a table costs its writers: INSERT and UPDATE throughput, watched vs unwatched.

    .venv/bin/python bench/write_overhead.py [--rows 10000] [--single-rows 10000] [--commit-every 100]
        [--rounds 3] [--kind short] [--quick] [--out FILE]

Two identical tables (id bigint identity pk, body text, views int, embedding vector(384)); one is
watched (statement-level triggers enqueue jobs into pgmq; no worker runs), the other not. Measured
on each, in rotating order, median of --rounds:

- one INSERT ... SELECT of --rows rows (from a staging table of the same texts), short texts and,
  separately, medium ones; the medium ones once more with the session's work_mem at 64 MB on every
  table, which keeps their transition table in memory (10,000 medium rows are ≈ 10 MB; the default
  work_mem is 4 MB);
- --single-rows single-row INSERT statements, one commit per --commit-every, sent (a) pipelined
  with executemany and (b) one round trip each, as an application loop would;
- one UPDATE of an unrelated column (views) on --rows rows: no job is enqueued, but the watched
  table's triggers still run (row-level WHEN checks; the statement trigger captures its transition
  tables and returns at once, as no row's content changed);
- --single-rows single-row UPDATEs of that unrelated column, one round trip each (the commonest
  application write after INSERT: counters, flags, timestamps);
- one UPDATE of the content column on --rows rows (every row changes: jobs enqueued, vectors cleared).

The large INSERTs also run on two reference tables: one whose only trigger is a no-op AFTER INSERT
statement trigger with a transition table, the floor of any transition-table design (PostgreSQL
copies every new row into a tuplestore, which spills to disk past work_mem), before any job is
built; and one whose only trigger is a no-op BEFORE INSERT row trigger, the least any row-level
design pays (a call per row), before it records anything.

The queue is purged and both tables truncated/vacuumed between runs, so neither side inherits the
other's bloat. Autovacuum is off on the measured tables (their vacuums are these), and a CHECKPOINT
precedes each timed large statement, so no timing shares the 2 cores with an autovacuum worker or
its I/O with a checkpoint or a new WAL segment: without both, single rounds of the medium INSERT
swung by ±25% and their ratios by more. Each timed statement runs on a connection that has
written the table once before (a rolled-back insert, update and delete), as an application's
pooled connection has: a new backend's first trigger call also compiles the trigger functions and
loads their catalog entries, once per connection (≈ 2-3 ms here), which is not the cost of the
statement. Target: the large INSERT keeps ≥ 0.8 of the unwatched rate.

Default scale ≈ 1 minute on 2 cores; --quick ≈ 10 s.
"""

from __future__ import annotations

import statistics
import sys
import time

import common
from common import note, sql

TARGET = 0.8
FLOOR = "noop_trigger"  # unwatched, plus a no-op statement trigger with a transition table
ROW_FLOOR = "noop_row_trigger"  # unwatched, plus a no-op BEFORE INSERT row trigger
#: the reference tables of the large INSERTs -> what their figure is called and what it shows
REFERENCES = {
    FLOOR: ("no-op transition-table trigger (floor)",
            "the same INSERT with only a no-op statement trigger capturing its rows"),
    ROW_FLOOR: ("no-op row trigger",
                "the same INSERT with only a no-op BEFORE INSERT row trigger: the least a row-level design pays"),
}
ROOMY_WORK_MEM = "64MB"  # holds 10,000 medium rows' transition table in memory


def reset(conn, table: str) -> None:
    conn.execute(sql.SQL("truncate {} restart identity").format(sql.Identifier(table)))
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    conn.execute(sql.SQL("vacuum analyze {}").format(sql.Identifier(table)))
    conn.execute("vacuum pgmq.q_autoembed_jobs")


def warm_up(conn, table: str) -> None:
    """Write `table` once and roll it back: the trigger paths are compiled and cached, as in a pool.
    Then CHECKPOINT, so the timed statement that follows starts from a quiet WAL."""
    ident = sql.Identifier(table)
    conn.execute("begin")
    conn.execute(sql.SQL("insert into {} (body) values ('warm-up')").format(ident))
    conn.execute(sql.SQL("update {} set views = views + 1 where body = 'warm-up'").format(ident))
    conn.execute(sql.SQL("update {} set body = 'warm-up 2' where body = 'warm-up'").format(ident))
    conn.execute(sql.SQL("delete from {} where body = 'warm-up 2'").format(ident))
    conn.execute("rollback")
    conn.execute("checkpoint")


def fill(conn, table: str) -> None:
    with conn.transaction():
        conn.execute(sql.SQL("insert into {} (body) select body from staging order by id").format(sql.Identifier(table)))
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    conn.execute(sql.SQL("vacuum analyze {}").format(sql.Identifier(table)))
    conn.execute("vacuum pgmq.q_autoembed_jobs")


def bulk_insert(bench_db, table: str, rows: int, staging: str = "staging", work_mem: str | None = None) -> float:
    with bench_db.connect() as conn:
        reset(conn, table)
        if work_mem:
            conn.execute("select set_config('work_mem', %s, false)", (work_mem,))
        warm_up(conn, table)
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(sql.SQL("insert into {} (body) select body from {} order by id limit %s")
                         .format(sql.Identifier(table), sql.Identifier(staging)), (rows,))
        return rows / (time.perf_counter() - started)


def one_row_statements(bench_db, stmt: sql.Composed, params: list[tuple], commit_every: int,
                       pipelined: bool) -> float:
    """Rows/s of `stmt` run once per parameter tuple on one connection, committing every `commit_every`:
    pipelined (executemany) or one round trip each."""
    with bench_db.connect(autocommit=False) as conn:
        started = time.perf_counter()
        for chunk in common.chunks(params, commit_every):
            if pipelined:
                with conn.cursor() as cur:
                    cur.executemany(stmt, chunk)
            else:
                for one in chunk:
                    conn.execute(stmt, one)
            conn.commit()
        return len(params) / (time.perf_counter() - started)


def single_inserts(bench_db, table: str, texts: list[str], commit_every: int, pipelined: bool) -> float:
    with bench_db.connect() as admin:
        reset(admin, table)
    stmt = sql.SQL("insert into {} (body) values (%s)").format(sql.Identifier(table))
    return one_row_statements(bench_db, stmt, [(t,) for t in texts], commit_every, pipelined)


def single_updates(bench_db, table: str, rows: int, commit_every: int) -> float:
    with bench_db.connect() as admin:
        reset(admin, table)
        fill(admin, table)
    stmt = sql.SQL("update {} set views = views + 1 where id = %s").format(sql.Identifier(table))
    return one_row_statements(bench_db, stmt, [(key,) for key in range(1, rows + 1)], commit_every, False)


def update(bench_db, table: str, rows: int, column: str) -> float:
    with bench_db.connect() as conn:
        reset(conn, table)
        fill(conn, table)
        if column == "views":
            stmt = sql.SQL("update {} set views = views + 1 where id <= %s").format(sql.Identifier(table))
        else:
            stmt = sql.SQL("update {} set body = body || ' (edited)' where id <= %s").format(sql.Identifier(table))
        warm_up(conn, table)
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(stmt, (rows,))
        return rows / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10000, help="rows of the one large INSERT and the UPDATEs")
    parser.add_argument("--single-rows", type=int, default=10000, help="rows sent as single-row INSERTs")
    parser.add_argument("--commit-every", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kind", default="short", choices=["short", "medium"],
                        help="texts of every case but the medium INSERT ... SELECT")
    parser.add_argument("--dims", type=int, default=common.LOCAL_DIMS)
    args = parser.parse_args(argv)
    common.apply_quick(args, {"rows": 2000, "single_rows": 1000, "rounds": 1})
    common.quiet_logs()

    report = common.Report("write_overhead", {k: v for k, v in vars(args).items() if k != "out"})
    texts = common.make_texts(args.kind, max(args.rows, args.single_rows))
    with common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db) as bench_db, bench_db.connect() as conn:
        report.machine = common.machine_facts(bench_db.server_version())
        other = "medium" if args.kind == "short" else "short"
        medium_staging = "staging" if args.kind == "medium" else "staging_medium"
        for name, rows in (("staging", texts), (f"staging_{other}", common.make_texts(other, args.rows))):
            conn.execute(sql.SQL("create table {} (id int primary key, body text)").format(sql.Identifier(name)))
            with conn.transaction():
                conn.execute(sql.SQL("insert into {} select i, t from unnest(%s::text[]) with ordinality u(t, i)")
                             .format(sql.Identifier(name)), (rows,))
            conn.execute(sql.SQL("vacuum analyze {}").format(sql.Identifier(name)))
        common.create_table(conn, "unwatched", args.dims, watched=False)
        common.create_table(conn, "watched", args.dims, watched=True)
        for table in (FLOOR, ROW_FLOOR):
            common.create_table(conn, table, args.dims, watched=False)
        for table in ("unwatched", "watched", FLOOR, ROW_FLOOR):  # reset() vacuums; autovacuum only adds noise
            conn.execute(sql.SQL("alter table {} set (autovacuum_enabled = off)").format(sql.Identifier(table)))
        conn.execute("create function bench_noop() returns trigger language plpgsql as $$ begin return null; end $$")
        conn.execute(sql.SQL("create trigger noop after insert on {} referencing new table as new_rows "
                             "for each statement execute function bench_noop()").format(sql.Identifier(FLOOR)))
        conn.execute("create function bench_noop_row() returns trigger language plpgsql as $$ begin return new; end $$")
        conn.execute(sql.SQL("create trigger noop before insert on {} for each row execute function bench_noop_row()")
                     .format(sql.Identifier(ROW_FLOOR)))

        cases = [
            (f"INSERT ... SELECT, one statement, {args.kind}", f"{args.rows:,} rows",
             lambda t: bulk_insert(bench_db, t, args.rows), TARGET, True),
            (f"INSERT ... SELECT, one statement, {other}", f"{args.rows:,} rows",
             lambda t: bulk_insert(bench_db, t, args.rows, f"staging_{other}"), TARGET, True),
            (f"INSERT ... SELECT, one statement, medium, work_mem {ROOMY_WORK_MEM}",
             f"{args.rows:,} rows; the session's work_mem raised on every table alike",
             lambda t: bulk_insert(bench_db, t, args.rows, medium_staging, ROOMY_WORK_MEM), None, True),
            ("1-row INSERTs, executemany (pipelined)", f"{args.single_rows:,} rows, commit every {args.commit_every}",
             lambda t: single_inserts(bench_db, t, texts[: args.single_rows], args.commit_every, True), None, False),
            ("1-row INSERTs, one round trip each", f"{args.single_rows:,} rows, commit every {args.commit_every}",
             lambda t: single_inserts(bench_db, t, texts[: args.single_rows], args.commit_every, False), None, False),
            ("UPDATE of an unrelated column", f"{args.rows:,} rows, one statement",
             lambda t: update(bench_db, t, args.rows, "views"), None, False),
            ("1-row UPDATEs of an unrelated column, one round trip each",
             f"{min(args.single_rows, args.rows):,} rows, commit every {args.commit_every}",
             lambda t: single_updates(bench_db, t, min(args.single_rows, args.rows), args.commit_every), None, False),
            ("UPDATE of the content column", f"{args.rows:,} rows, one statement (jobs enqueued)",
             lambda t: update(bench_db, t, args.rows, "body"), None, False),
        ]
        for name, what, run, target, with_references in cases:
            tables = ["unwatched", "watched"] + (list(REFERENCES) if with_references else [])
            rates: dict[str, list[float]] = {table: [] for table in tables}
            for r in range(args.rounds):  # rotate the order, so no table always runs first
                for table in tables[r % len(tables):] + tables[:r % len(tables)]:
                    rates[table].append(run(table))
            watched, unwatched = statistics.median(rates["watched"]), statistics.median(rates["unwatched"])
            note(f"{name}: watched {watched:,.0f} rows/s, unwatched {unwatched:,.0f} rows/s")
            report.add(f"{name}: watched", watched, "rows/s", baseline=unwatched, baseline_name="unwatched",
                       target=f"ratio >= {target}" if target else None,
                       passed=(watched / unwatched >= target) if target else None, note=what)
            for table, (label, meaning) in REFERENCES.items() if with_references else ():
                report.add(f"{name}: {label}", statistics.median(rates[table]), "rows/s",
                           baseline=unwatched, baseline_name="unwatched", note=meaning)
            report.details[name] = rates
    return report.emit(args.out)


if __name__ == "__main__":
    main()
    sys.exit(0)
