"""Chaos run: the reliability scenarios of tests/reliability at a larger scale, tabulated.

    .venv/bin/python bench/chaos.py [--scale 5] [-k EXPR] [--json FILE]

Runs `pytest tests/reliability` with AUTOEMBED_CHAOS_SCALE (rows, kills and hypothesis examples
times SCALE) against a throwaway PostgreSQL cluster (tests/conftest.py; AUTOEMBED_TEST_DSN is
ignored here, since restarting PostgreSQL needs the tests' own cluster). Each scenario appends
its figures to a JSON-lines file (AUTOEMBED_CHAOS_REPORT); this script sums them per scenario
and prints a table (faults injected by kind, rows, lost, stale, duplicate writes, time to
recover after a database restart or a provider outage), then the same as JSON. Exits with
pytest's status. The provider outage lasts 10 s x scale (max(1, scale)).

Tests marked xfail demonstrate open bugs (bench/CHAOS.md lists them); pytest reports them as
xfailed, and a scenario that regresses fails the run (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUMMED = ("rows", "lost", "stale", "failed", "duplicate_writes")


def run_suite(scale: float, select: str | None, report: Path) -> tuple[int, float]:
    env = {k: v for k, v in os.environ.items() if k != "AUTOEMBED_TEST_DSN"}
    env.update(AUTOEMBED_CHAOS_SCALE=str(scale), AUTOEMBED_CHAOS_REPORT=str(report))
    cmd = [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
           "-rfE"]
    if select:
        cmd += ["-k", select]
    started = time.monotonic()
    status = subprocess.run(cmd, cwd=REPO, env=env).returncode
    return status, time.monotonic() - started


def aggregate(lines: list[dict]) -> list[dict]:
    """One row per scenario: figures summed over its runs (hypothesis examples, parametrized cases)."""
    merged: dict[str, dict] = {}
    for line in lines:
        name = line["scenario"]
        row = merged.setdefault(name, {"scenario": name, "runs": 0, "faults": defaultdict(int),
                                       **{k: 0 for k in SUMMED}})
        row["runs"] += 1
        for key in SUMMED:
            row[key] += line.get(key) or 0
        for kind, count in (line.get("faults") or {}).items():
            row["faults"][kind] += count
        for key, value in line.items():
            if key not in (*SUMMED, "scenario", "faults", "scale"):
                row[key] = value  # timings and details: the last run's
    for row in merged.values():
        row["faults"] = dict(row["faults"])
    return list(merged.values())


def recovery(row: dict) -> str:
    if "recover_s" in row:
        wake = row.get("notify_wake_s")
        return f"{row['recover_s']:.2f}s (wake {', '.join(f'{w:.2f}' for w in wake)}s)" if wake else f"{row['recover_s']:.2f}s"
    if "drain_after_last_kill_s" in row:
        return f"drained {row['drain_after_last_kill_s']:.1f}s after last kill"
    if "outage_recover_s" in row:
        return f"all embedded {row['outage_recover_s']:.1f}s after a {row['outage_s']:.0f}s outage"
    return "-"


def print_table(rows: list[dict]) -> None:
    header = f"{'scenario':<28} {'runs':>4} {'rows':>7} {'lost':>5} {'stale':>5} {'failed':>6} {'dup writes':>10}  " \
             f"{'recovery':<34} faults injected"
    print(header)
    print("-" * len(header))
    for row in rows:
        faults = ", ".join(f"{k} {v}" for k, v in row["faults"].items() if v) or "-"
        print(f"{row['scenario']:<28} {row['runs']:>4} {row['rows']:>7} {row['lost']:>5} {row['stale']:>5} "
              f"{row['failed']:>6} {row['duplicate_writes']:>10}  {recovery(row):<34} {faults}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=5.0, help="multiplies rows, kills and examples (CI runs 1)")
    parser.add_argument("-k", dest="select", default=None, help="pytest -k expression to run some scenarios only")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON summary to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="autoembed-chaos-") as tmp:
        report = Path(tmp) / "chaos.jsonl"
        report.touch()
        status, elapsed = run_suite(args.scale, args.select, report)
        lines = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    rows = aggregate(lines)
    print()
    print(f"chaos run: scale {args.scale:g}, {elapsed:.0f}s, pytest exit status {status}")
    print_table(rows)
    summary = {"scale": args.scale, "elapsed_s": round(elapsed, 1), "pytest_status": status, "scenarios": rows}
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main())
