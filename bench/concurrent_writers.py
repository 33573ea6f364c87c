"""Concurrent writers: pgbench transactions per second into a watched table, vs the same table unwatched.

    .venv/bin/python bench/concurrent_writers.py [--seconds 4] [--clients 1,8,32] [--bulk-rows 1000,10000]
        [--bulk-clients 1,8] [--rounds 5] [--statement-floor] [--candidate LABEL=FILE ...]
        [--protocol prepared] [--fsync-off] [--quick] [--out FILE]

pgbench itself (the server's own load generator, from the PostgreSQL bin directory) runs
fixed-duration workloads against one table (id bigint identity pk, body text, views int,
embedding vector(384)) in several variants, no worker running:

- `unwatched`: the baseline of every ratio;
- `watched`: watched with the hashing embedder, the triggers of the migrations (and --apply-sql);
- `floor`: a row-level AFTER INSERT trigger inserting (source_id, pk) into a plain index-less
  table: the least a durable per-row enqueue can cost;
- `statement floor` (--statement-floor): a no-op AFTER INSERT statement trigger with a transition
  table: the least any transition-table design pays, before it records anything;
- `candidate LABEL` (--candidate LABEL=FILE, repeatable): watched like `watched`, in a database
  where FILE ran after the migrations (e.g. a new `autoembed.install_triggers`), so a design is
  measured beside today's before it becomes a migration.

Workloads: single-row `INSERT ... VALUES` transactions at each of --clients concurrent clients
(TPS), and one `INSERT ... SELECT` of each of --bulk-rows rows per transaction at each of
--bulk-clients (rows/s). Every variant lives in its own database of one cluster, built once from
the migrated database; every measurement runs on a fresh copy of it (CREATE DATABASE ... TEMPLATE)
after a CHECKPOINT, so no run inherits another's rows, queue or dead tuples. Autovacuum is off.
Per round the variants run in rotating order; a figure is the median rate over --rounds, and its
ratio the median over rounds of the ratio to the unwatched run of the same round (paired: a shared
machine's load drifts between rounds more than between neighbouring runs; the notes give the
spread). After each run of a watched variant the bench checks that `autoembed.queue_rows()` names
at least as many rows as were inserted (no job lost; a candidate that stages keys elsewhere must
count them there too).

Commits are durable (fsync and synchronous_commit on), as in production: NOTIFY holds a
cluster-wide lock from before a transaction's commit record until after it is flushed, so each
watched commit waits for every other one's WAL flush. --fsync-off shows the CPU cost alone.
Target: single-row INSERTs at 8 clients keep >= 0.8 of the unwatched rate; bulk INSERTs >= 0.8
(write_overhead's target for one large statement).

Default scale ≈ 10 minutes on 2 cores (3 variants); each candidate adds ≈ 3-4 minutes; --quick ≈ 1 minute.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import common
from common import note, sql

from autoembed.devdb import find_pg_bin

TARGET = 0.8
TARGET_CLIENTS = 8
DIMS = common.LOCAL_DIMS
TABLE = "t"
FLOOR_KEYS = "bench_floor_keys"
#: a body of about 14 words (a short text), made unique per transaction by pgbench variables
BODY = "Bread flour oven bake recipe dough yeast salt the water of summer rain"


@dataclass(frozen=True)
class Variant:
    """One way of writing the table: its label, its database, whether autoembed watches it."""

    label: str
    database: str
    watched: bool
    sql_file: str | None = None  # a candidate's SQL, run before the table is watched

    @property
    def figure_name(self) -> str:
        """How the report names it."""
        return self.label if not self.sql_file else f"candidate {self.label}"


@dataclass(frozen=True)
class Workload:
    """A pgbench script: `rows` rows per transaction (1: INSERT ... VALUES)."""

    rows: int

    @property
    def name(self) -> str:
        return "1-row INSERT ... VALUES" if self.rows == 1 else f"{self.rows:,}-row INSERT ... SELECT"

    @property
    def unit(self) -> str:
        return "TPS" if self.rows == 1 else "rows/s"

    def script(self) -> str:
        if self.rows == 1:
            return ("\\set r random(1, 1000000000)\n"
                    f"insert into {TABLE} (body) values ('{BODY} ' || :client_id || '-' || :r);\n")
        return (f"insert into {TABLE} (body) select '{BODY} ' || g from generate_series(1, {self.rows}) g;\n")


# -- variants ----------------------------------------------------------------------------------------
def build_variants(bench_db: common.BenchDatabase, statement_floor: bool,
                   candidates: list[tuple[str, str]]) -> list[Variant]:
    """Create one template database per variant (copies of the migrated one), each with its table."""
    variants = [Variant("unwatched", "v_unwatched", False), Variant("watched", "v_watched", True),
                Variant("floor", "v_floor", False)]
    if statement_floor:
        variants.append(Variant("statement floor", "v_statement_floor", False))
    variants += [Variant(label, f"v_candidate_{i}", True, path) for i, (label, path) in enumerate(candidates)]
    for variant in variants:
        bench_db.cluster.create_database(variant.database, template=common.BENCH_DB)
        with common.ae_db.connect(bench_db.cluster.url(variant.database), autocommit=True) as conn:
            if variant.sql_file:
                conn.execute(Path(variant.sql_file).read_text(encoding="utf-8"))
                note(f"{variant.figure_name}: applied {variant.sql_file}")
            common.create_table(conn, TABLE, DIMS, watched=variant.watched)
            if variant.label == "floor":
                add_floor_trigger(conn)
            elif variant.label == "statement floor":
                add_statement_floor_trigger(conn)
    return variants


def add_floor_trigger(conn) -> None:
    """A row-level AFTER INSERT trigger writing (source_id, pk) into an index-less table."""
    conn.execute(sql.SQL("create table {} (source_id int not null, pk text not null)")
                 .format(sql.Identifier(FLOOR_KEYS)))
    conn.execute(sql.SQL(
        "create function bench_floor() returns trigger language plpgsql as $$ "
        "begin insert into {} (source_id, pk) values (1, new.id::text); return null; end $$"
    ).format(sql.Identifier(FLOOR_KEYS)))
    conn.execute(sql.SQL("create trigger bench_floor after insert on {} for each row execute function bench_floor()")
                 .format(sql.Identifier(TABLE)))


def add_statement_floor_trigger(conn) -> None:
    """A no-op AFTER INSERT statement trigger capturing its rows in a transition table."""
    conn.execute("create function bench_noop() returns trigger language plpgsql as $$ begin return null; end $$")
    conn.execute(sql.SQL("create trigger bench_noop after insert on {} referencing new table as new_rows "
                         "for each statement execute function bench_noop()").format(sql.Identifier(TABLE)))


# -- one measurement ---------------------------------------------------------------------------------
def pgbench(dsn: str, script: Path, clients: int, seconds: float, protocol: str) -> dict[str, float]:
    """Run pgbench; returns tps, average latency (ms) and failed transactions."""
    cmd = [str(find_pg_bin() / "pgbench"), "--no-vacuum", "--client", str(clients),
           "--jobs", str(min(clients, 2)), "--time", str(max(1, round(seconds))), "--protocol", protocol,
           "--file", str(script), dsn]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench failed ({result.returncode}):\n{result.stderr[-2000:]}")
    text = result.stdout

    def number(pattern: str) -> float:
        match = re.search(pattern, text, re.MULTILINE)
        if not match:
            raise RuntimeError(f"no {pattern!r} in pgbench's output:\n{text}")
        return float(match.group(1))

    failed = re.search(r"^number of failed transactions: (\d+)", text, re.MULTILINE)
    return {"tps": number(r"^tps = ([\d.]+)"), "latency_ms": number(r"^latency average = ([\d.]+) ms"),
            "transactions": number(r"^number of transactions actually processed: (\d+)"),
            "failed": float(failed.group(1)) if failed else 0.0}


def measure(bench_db: common.BenchDatabase, variant: Variant, workload: Workload, clients: int,
            script: Path, args) -> dict[str, float]:
    """One pgbench run on a fresh copy of the variant's database; checks that no job was lost."""
    run_db = "run"
    bench_db.cluster.create_database(run_db, template=variant.database)
    dsn = bench_db.cluster.url(run_db)
    try:
        with common.ae_db.connect(dsn, autocommit=True) as conn:
            conn.execute("checkpoint")
        result = pgbench(dsn, script, clients, args.seconds, args.protocol)
        if result["failed"]:
            raise RuntimeError(f"{variant.figure_name}: {result['failed']:.0f} pgbench transactions failed")
        with common.ae_db.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(TABLE))).fetchone()[0]
            if variant.watched:
                queued = conn.execute("select autoembed.queue_rows()").fetchone()[0]
                if queued < rows:
                    raise RuntimeError(f"{variant.figure_name}: {rows} rows inserted but only {queued} queued")
        return {**result, "rate": result["tps"] * workload.rows, "rows": rows}
    finally:
        with common.ae_db.connect(bench_db.cluster.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(run_db)))


# -- the report --------------------------------------------------------------------------------------
def report_cell(report: common.Report, workload: Workload, clients: int, variants: list[Variant],
                runs: dict[str, list[dict]]) -> None:
    """The figures of one (workload, clients) cell. A ratio is the median over rounds of the
    variant's rate over unwatched's in the same round (the two ran minutes apart at most, so a
    change in the machine's load between rounds cancels out); the value is the median rate. The
    candidates also carry their ratio to today's watched, paired the same way."""
    def rates(label: str) -> list[float]:
        return [run["rate"] for run in runs[label]]

    def paired(label: str, baseline: str) -> list[float]:
        return [v / b for v, b in zip(rates(label), rates(baseline))]

    unwatched = statistics.median(rates("unwatched"))
    cell = f"{workload.name}, {clients} client{'s' if clients > 1 else ''}"
    for variant in variants:
        value = statistics.median(rates(variant.label))
        if variant.label == "unwatched":
            report.add(f"{cell}: unwatched", value, workload.unit)
            continue
        ratios = paired(variant.label, "unwatched")
        ratio = statistics.median(ratios)
        target = None
        if variant.watched and (workload.rows > 1 or clients == TARGET_CLIENTS):
            target = f"ratio >= {TARGET}"
        spread = f"ratio per round {min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
        versus = (f"{statistics.median(paired(variant.label, 'watched')):.2f}x today's watched"
                  if variant.sql_file else "")
        report.add(f"{cell}: {variant.figure_name}", value, workload.unit, baseline=unwatched,
                   baseline_name="unwatched", ratio=ratio, target=target,
                   passed=(ratio >= TARGET) if target else None, note="; ".join(filter(None, [spread, versus])))
    note(f"{cell}: " + ", ".join(f"{v.label} {statistics.median(rates(v.label)):,.0f}" for v in variants))


def parse_candidate(text: str) -> tuple[str, str]:
    """--candidate LABEL=FILE as (label, path)."""
    label, sep, path = text.partition("=")
    if not sep or not label or not Path(path).is_file():
        raise SystemExit(f"--candidate takes LABEL=FILE with an existing FILE, got {text!r}")
    return label, path


def int_list(text: str) -> list[int]:
    """'1,8,32' as [1, 8, 32] ('' as [])."""
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each pgbench run")
    parser.add_argument("--clients", type=int_list, default=[1, 8, 32], help="clients of the single-row runs")
    parser.add_argument("--bulk-rows", type=int_list, default=[1000, 10000], help="rows per bulk INSERT ... SELECT")
    parser.add_argument("--bulk-clients", type=int_list, default=[1, 8], help="clients of the bulk runs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--protocol", default="prepared", choices=["simple", "extended", "prepared"],
                        help="pgbench's query protocol")
    parser.add_argument("--statement-floor", action="store_true",
                        help="also measure a table whose only trigger is a no-op transition-table statement trigger")
    parser.add_argument("--candidate", type=parse_candidate, action="append", default=[], metavar="LABEL=FILE",
                        help="also measure the table watched after FILE ran (repeatable)")
    args = parser.parse_args(argv)
    common.apply_quick(args, {"seconds": 2.0, "clients": [1, 8], "bulk_rows": [1000], "bulk_clients": [1],
                              "rounds": 1})
    common.quiet_logs()

    report = common.Report("concurrent_writers", {k: v for k, v in vars(args).items() if k != "out"})
    cells = ([(Workload(1), c) for c in args.clients]
             + [(Workload(rows), c) for rows in args.bulk_rows for c in args.bulk_clients])
    with common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db, conf={"autovacuum": "off"}) as bench_db, \
            tempfile.TemporaryDirectory(prefix="autoembed-pgbench-") as scripts:
        report.machine = common.machine_facts(bench_db.server_version())
        variants = build_variants(bench_db, args.statement_floor, args.candidate)
        for workload, clients in cells:
            script = Path(scripts) / f"insert_{workload.rows}.sql"
            script.write_text(workload.script(), encoding="utf-8")
            runs: dict[str, list[dict]] = {v.label: [] for v in variants}
            for r in range(args.rounds):  # rotate the order, so no variant always runs first
                for variant in variants[r % len(variants):] + variants[:r % len(variants)]:
                    runs[variant.label].append(measure(bench_db, variant, workload, clients, script, args))
            report_cell(report, workload, clients, variants, runs)
            report.details[f"{workload.name}, {clients} clients"] = runs
    return report.emit(args.out)


if __name__ == "__main__":
    main()
    sys.exit(0)
