"""Run the benchmarks and write bench/RESULTS.md and bench/out/*.json.

    .venv/bin/python bench/run_all.py [--with-peer] [--skip memory,...] [--only scale,...]
        [--memory-rows N] [--quick] [--results FILE] [--out-dir DIR]

Runs e2e_throughput, pipeline_overhead, latency, write_overhead, scale, memory and index_backfill
(and peer_pgai with --with-peer), one after the other, each as its own process at its default
scale, then writes a Markdown report: the machine, and every figure with its same-run baseline,
ratio, target and verdict. Run it on a quiet machine: every figure is CPU-bound on 2 cores and
other load only ever makes it worse (each report records the load average before and after).

Default scale: ≈ 8 minutes for the first five, plus ≈ 10 minutes for memory (1,000,000 rows;
--memory-rows to change), plus ≈ 5 minutes for index_backfill (100,000 rows), plus ≈ 2 minutes
for the peer. --quick runs everything small (about 2 minutes): it checks that the benchmarks
work, and its figures mean little.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import common

BENCHES = ["e2e_throughput", "pipeline_overhead", "remote_endpoint", "latency", "write_overhead", "scale", "memory",
           "index_backfill"]
PEER = "peer_pgai"
DESCRIPTIONS = {
    "e2e_throughput": "local model, calibrated as a worker calibrates it, one in-process worker draining N "
                      "queued rows, vs the best raw sentence-transformers configuration a sweep finds in the same run",
    "pipeline_overhead": "hashing embedder (near-free), one in-process worker, per batch size, vs a floor loop "
                         "doing only what the pipeline must per row (read, load, embed, write, delete), same run",
    "remote_endpoint": "one `autoembed worker` against an OpenAI-compatible stub with fixed latency and a "
                       "capacity limit (429 beyond), vs the best raw multi-threaded client of the same run",
    "latency": "one idle `autoembed worker` process; single-row inserts; commit-to-commit time from the "
               "server's commit timestamps, vs raw single-text embed after the same idle gap",
    "write_overhead": "INSERT/UPDATE throughput into a watched table vs the same table unwatched (no worker)",
    "scale": "N `autoembed worker` processes, openai embedder on a local stub answering each request "
             "after a fixed 50 ms, vs 1 worker",
    "memory": "backfill of existing rows: `autoembed backfill` + one `autoembed worker --drain` (hashing)",
    "index_backfill": "N-row load into a watched table with an HNSW index (hashing, one in-process worker): "
                      "`index => 'hnsw'` (built CONCURRENTLY after the backfill) vs the index made before the "
                      "load and maintained row by row, same run; a prober searches throughout",
    "peer_pgai": "autoembed vs pgai 0.12.1's vectorizer worker, same table, texts and stub endpoint",
}


def run_bench(name: str, out: Path, extra: list[str]) -> dict | None:
    cmd = [sys.executable, str(common.BENCH_DIR / f"{name}.py"), "--out", str(out), *extra]
    common.note(f"running {' '.join(cmd[1:])}")
    started = time.monotonic()
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        common.note(f"{name} failed after {seconds:.0f}s (exit {result.returncode}):\n{result.stderr[-3000:]}")
        return {"bench": name, "error": result.stderr.strip()[-1500:], "seconds": round(seconds, 1)}
    table = result.stdout[result.stdout.rfind("\n== "):] if "\n== " in result.stdout else ""
    print(table.strip(), flush=True)
    return json.loads(out.read_text())


def cell(value: float | None, unit: str = "") -> str:
    return common.fmt(value, unit)


def markdown(results: list[dict], args: argparse.Namespace) -> str:
    out_dir = Path(args.out_dir)
    if out_dir.resolve().is_relative_to(common.REPO):
        out_dir = out_dir.resolve().relative_to(common.REPO)
    machine = next((r["machine"] for r in results if "machine" in r), common.machine_facts())
    total = sum(r.get("seconds", 0) for r in results)
    lines = [
        "# autoembed benchmarks",
        "",
        "Written by `bench/run_all.py`" + (" --quick (small scale: these figures mean little)" if args.quick else "")
        + f" on {dt.date.today().isoformat()}; raw data in `{out_dir}/*.json`. Each figure is measured",
        "against a baseline taken in the same run, so the ratio is the number to compare across machines.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {machine.get('cpu')} ({machine.get('nproc')} cores as seen by the OS) |",
        f"| memory | {machine.get('memory_gib')} GiB |",
        f"| PostgreSQL | {machine.get('postgres')} (throwaway cluster, default settings"
        + (", fsync off" if args.fsync_off else "") + ") |",
        f"| Python | {machine.get('python')} |",
        f"| date (UTC) | {machine.get('date')} |",
        f"| total time | {total / 60:.1f} min |",
        "",
        "## Figures",
        "",
        "| benchmark | figure | value | baseline | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['bench']} | **failed to run** | | | | | see below |")
            continue
        for f in r["figures"]:
            verdict = "" if f["passed"] is None else ("pass" if f["passed"] else "**FAIL**")
            base = "" if f["baseline"] is None else f"{cell(f['baseline'], f['unit'])} ({f['baseline_name']})"
            ratio = "" if f["ratio"] is None else f"{f['ratio']:.3f}"
            lines.append(f"| {r['bench']} | {f['name']} | {cell(f['value'], f['unit'])} | {base} | {ratio} | "
                         f"{f['target'] or ''} | {verdict} |")
    lines += ["", "## Notes per benchmark", ""]
    for r in results:
        name = r["bench"]
        lines.append(f"### {name}")
        lines.append("")
        lines.append(DESCRIPTIONS.get(name, ""))
        lines.append("")
        if "error" in r:
            lines += ["Failed:", "", "```", r["error"], "```", ""]
            continue
        m = r["machine"]
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items() if v not in (None, False, []))
        lines.append(f"- {r['seconds']} s; load average {m.get('loadavg_at_start', 0):.2f} before, "
                     f"{m.get('loadavg_at_end', 0):.2f} after; parameters: {params}")
        for f in r["figures"]:
            if f.get("note"):
                lines.append(f"- {f['name']}: {f['note']}")
        if name == "peer_pgai" and r["details"].get("peer_unavailable"):
            lines.append(f"- pgai was not measured: {r['details']['peer_unavailable']}")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--with-peer", action="store_true", help="also run peer_pgai (installs pgai in bench/.venv-pgai)")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--only", default="", help="comma-separated benchmarks to run (default: all)")
    parser.add_argument("--memory-rows", type=int, default=None, help="rows of the memory benchmark (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="every benchmark at small scale")
    parser.add_argument("--fsync-off", action="store_true")
    parser.add_argument("--results", default=str(common.BENCH_DIR / "RESULTS.md"))
    parser.add_argument("--out-dir", default=str(common.OUT_DIR))
    args = parser.parse_args(argv)

    names = BENCHES + ([PEER] if args.with_peer else [])
    if args.only:
        names = [n for n in names + [PEER] if n in args.only.split(",")]
    names = [n for n in dict.fromkeys(names) if n not in args.skip.split(",")]
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        extra = (["--quick"] if args.quick else []) + (["--fsync-off"] if args.fsync_off else [])
        if name == "memory" and args.memory_rows:
            extra += ["--rows", str(args.memory_rows)]
        results.append(run_bench(name, out_dir / f"{name}.json", extra))
    Path(args.results).write_text(markdown(results, args), encoding="utf-8")
    common.note(f"wrote {args.results}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
