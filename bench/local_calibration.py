"""The local embedder's calibration: what it costs, what it chooses, and how that choice compares
with the best raw configuration a full sweep finds in the same run (no database; the worker
itself is measured against the same sweep by e2e_throughput.py, which imports this module).

    .venv/bin/python bench/local_calibration.py [--calibrations N] [--rounds N] [--quick] [--out FILE]

1. Calibrates `--calibrations` times from scratch (a temporary calibration directory beside the
   machine's ONNX export): wall-clock and CPU seconds, and the plan each time.
2. Sweeps raw sentence-transformers, `model.encode(texts, batch_size=b)` on the whole set, over
   engines (torch, ONNX fp32) x intra-op threads (1 .. usable cores) x b (1 .. 64), on four sets:
   short and medium texts, English and Korean (a Korean "medium" row is past the 256-token window,
   so it runs as a long one). Wall-clock texts/s (the figure) and texts per CPU-second of this
   process (steadier under other load; for one thread it ranks configurations as an idle
   machine's wall clock would); cells interleaved within a round, best of the rounds; the second
   round repeats only each set's leading configurations.
3. `embed` of the calibrated embedder, in calls of the worker's batch size, against the best raw
   configurations of each set (the sweep's `TOP` by wall clock, each measured again every round;
   a round's baseline is the fastest of them), in `--rounds` rounds taking turns: the ratio,
   best of rounds (other load only ever slows a side), the per-round ratios (the noise), and the
   same in CPU time.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import common
from common import note

from autoembed.embedders.calibration import (
    FP32_BACKENDS,
    SIZES,
    Calibration,
    measurements_table,
    thread_counts,
    usable_cpus,
)
from autoembed.embedders.local import LocalEmbedder
from autoembed.embedders.models import Engines, ModelFiles, safe_dir_name, set_torch_threads
from autoembed.settings import Settings

SETS = ("short-en", "short-ko", "medium-en", "medium-ko")
#: configurations the second sweep round measures again, per set
SECOND_ROUND_TOP = 5
#: the sweep's fastest configurations of a set the comparison measures again, every round
TOP = 2
TARGET = 0.95


@dataclass(frozen=True)
class Rate:
    """Texts per second of wall-clock time and of this process's CPU time (all its threads)."""

    wall: float
    cpu: float


def timed(run: Callable[[], object], count: int) -> Rate:
    """The rate of `run()`, which handles `count` texts."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return Rate(count / (time.perf_counter() - wall), count / max(time.process_time() - cpu, 1e-9))


@dataclass(frozen=True, order=True)
class Config:
    """A raw configuration: engine, intra-op threads, `encode` batch size."""

    backend: str
    threads: int
    size: int

    def __str__(self) -> str:
        return f"{self.backend}/{self.threads}t/bs{self.size}"


def text_sets(short: int, medium: int, seed: int = 0) -> dict[str, list[str]]:
    """The four sets, English and Korean apart, drawn from common.make_texts (whose every
    KOREAN_EVERY-th text is Korean): `short` texts in each short set, `medium` in each medium one."""
    sets = {}
    every = common.KOREAN_EVERY
    for kind, count in (("short", short), ("medium", medium)):
        mixed = common.make_texts(kind, count * every, seed)
        sets[f"{kind}-en"] = [t for i, t in enumerate(mixed) if i % every != every - 1][:count]
        sets[f"{kind}-ko"] = [t for i, t in enumerate(mixed) if i % every == every - 1][:count]
    return sets


def configs(count: int, sizes: Sequence[int] = SIZES) -> list[Config]:
    """Every engine x threads x batch size a set of `count` texts can tell apart."""
    return [Config(b, t, s) for b in FP32_BACKENDS for t in thread_counts(usable_cpus()) for s in sizes if s <= count]


def raw_rate(engines: Engines, config: Config, texts: list[str]) -> Rate:
    """The rate of plain `model.encode(texts, batch_size=config.size)` (it sorts by length itself)."""
    model = engines.model(config.backend, config.threads)
    if config.backend == "torch":
        set_torch_threads(config.threads)
    return timed(lambda: model.encode(texts, batch_size=config.size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False), len(texts))


def sweep(engines: Engines, sets: dict[str, list[str]], rounds: int = 2) -> dict[str, dict[Config, Rate]]:
    """Per set and configuration, the best wall-clock and the best CPU-time rate (module doc, step 2)."""
    best: dict[str, dict[Config, Rate]] = {name: {} for name in sets}
    for name, texts in sets.items():  # warm every engine on this set's lengths first
        for config in {Config(c.backend, c.threads, 8) for c in configs(len(texts))}:
            raw_rate(engines, config, texts[:8])
    for round_ in range(rounds):
        for name, texts in sets.items():
            cells = configs(len(texts)) if round_ == 0 else top_configs(best[name], SECOND_ROUND_TOP)
            started = time.monotonic()
            for config in cells:
                rate, old = raw_rate(engines, config, texts), best[name].get(config, Rate(0.0, 0.0))
                best[name][config] = Rate(max(rate.wall, old.wall), max(rate.cpu, old.cpu))
            leader = top_configs(best[name], 1)[0]
            note(f"sweep round {round_ + 1}, {name}: {len(cells)} configurations in {time.monotonic() - started:.0f} s, "
                 f"best so far {leader} {best[name][leader].wall:.1f} texts/s (load {os.getloadavg()[0]:.1f})")
    return best


def top_configs(rates: dict[Config, Rate], count: int) -> list[Config]:
    """The `count` configurations with the highest wall-clock rates, fastest first."""
    return sorted(rates, key=lambda c: rates[c].wall, reverse=True)[:count]


def sweep_table(rates: dict[str, dict[Config, Rate]]) -> list[str]:
    """One block per set: engine/threads rows, batch-size columns, wall-clock texts/s and, after a
    slash, texts per CPU-second; the set's best wall-clock cell starred."""
    lines = []
    for name, cells in rates.items():
        sizes = sorted({c.size for c in cells})
        top = top_configs(cells, 1)[0]
        lines.append(f"{name:12} " + " ".join(f"{'bs' + str(s):>13}" for s in sizes)
                     + "   (raw encode: wall texts/s / CPU texts/s)")
        for backend, threads in sorted({(c.backend, c.threads) for c in cells}):
            row = []
            for s in sizes:
                config = Config(backend, threads, s)
                rate = cells.get(config)
                mark = "*" if config == top else " "
                row.append(f"{rate.wall:>6.1f}/{rate.cpu:<5.0f}{mark}" if rate else f"{'-':>13}")
            lines.append(f"  {backend + ' ' + str(threads) + 't':10} " + " ".join(row))
    return lines


def shared_export_dir(settings: Settings) -> tempfile.TemporaryDirectory:
    """A temporary cache directory whose model directories link to the machine's ONNX exports, so
    a calibration there starts from scratch without exporting again (and leaves the kept one alone)."""
    temp = tempfile.TemporaryDirectory(prefix="autoembed-calibration-")
    name = safe_dir_name(ModelFiles(common.LOCAL_MODEL, cache_dir=settings.cache_dir).name)
    if (settings.cache_dir / name).is_dir():
        os.symlink(settings.cache_dir / name, Path(temp.name) / name)
    return temp


def calibrated(settings: Settings, cache_dir: Path, refresh: bool = True) -> LocalEmbedder:
    """The local embedder as a worker builds it, calibrating afresh in `cache_dir` when `refresh`."""
    return LocalEmbedder.from_settings(common.LOCAL_MODEL, settings.replace(cache_dir=cache_dir), refresh=refresh)


def describe(calibration: Calibration) -> str:
    cost = f", measured in {calibration.seconds:.1f} s ({calibration.cpu_seconds:.1f} s CPU)" if calibration.measurements else ""
    return f"{calibration.plan.describe()} [{calibration.source.split(' ')[0]}{cost}]"


def interleaved(sides: dict[str, Callable[[], Rate]], rounds: int) -> dict[str, list[Rate]]:
    """Each side's rate per round, the sides taking turns (their order reversed every other round)."""
    rates: dict[str, list[Rate]] = {name: [] for name in sides}
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            rates[name].append(sides[name]())
    return rates


def as_data(rates: dict[str, list[Rate]]) -> dict[str, list[dict]]:
    """Per-round rates as JSON-ready data."""
    return {name: [vars(r) for r in values] for name, values in rates.items()}


def fastest_per_round(rates: dict[str, list[Rate]], names: Sequence[str]) -> list[Rate]:
    """Per round, the rate of the fastest (by wall clock) of the sides `names`."""
    return [max((rates[n][r] for n in names), key=lambda rate: rate.wall) for r in range(len(rates[names[0]]))]


def ratio_summary(ours: list[Rate], theirs: list[Rate]) -> dict:
    """The best-of-rounds wall-clock ratio, the per-round ratios (the noise), and the CPU-time ratio."""
    paired = [a.wall / b.wall for a, b in zip(ours, theirs)]
    return {"ratio": max(r.wall for r in ours) / max(r.wall for r in theirs),
            "paired": paired, "paired_median": statistics.median(paired),
            "cpu_ratio": max(r.cpu for r in ours) / max(r.cpu for r in theirs)}


def rounds_note(summary: dict) -> str:
    """The per-round ratios and the CPU-time ratio, for a figure's note."""
    return (f"per-round ratios {', '.join(f'{p:.2f}' for p in summary['paired'])} "
            f"(median {summary['paired_median']:.2f}); in CPU time {summary['cpu_ratio']:.3f}")


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--calibrations", type=int, default=3, help="fresh calibrations to time")
    parser.add_argument("--short", type=int, default=64, help="texts per short set in the sweep")
    parser.add_argument("--medium", type=int, default=16, help="texts per medium set in the sweep")
    parser.add_argument("--sweep-rounds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the embedder against the best raw configuration")
    parser.add_argument("--batch-size", type=int, default=Settings.batch_size, help="texts per embed call")
    args = parser.parse_args(argv)
    common.apply_quick(args, {"calibrations": 1, "short": 16, "medium": 4, "sweep_rounds": 1, "rounds": 1})
    common.quiet_logs()
    report = common.Report("local_calibration", {k: v for k, v in vars(args).items() if k != "out"})
    report.machine = common.machine_facts()
    settings = Settings.from_env()

    with shared_export_dir(settings) as temp:
        runs = []
        for i in range(args.calibrations):
            embedder = calibrated(settings, Path(temp), refresh=True)
            runs.append(embedder.calibration)
            note(f"calibration {i + 1}: {describe(embedder.calibration)}")
        report.details["calibrations"] = [{"plan": c.plan.describe(), "seconds": c.seconds,
                                           "cpu_seconds": c.cpu_seconds, "complete": c.complete} for c in runs]
        seconds = [c.seconds for c in runs]
        report.add("calibration cost, wall clock (median of runs)", statistics.median(seconds), "s",
                   note=f"runs {', '.join(f'{s:.1f}' for s in seconds)} s; CPU "
                        f"{', '.join(f'{c.cpu_seconds:.1f}' for c in runs)} s; plans: "
                        + " | ".join(sorted({c.plan.describe() for c in runs})))

    sets = text_sets(args.short, args.medium)
    engines = Engines(ModelFiles(common.LOCAL_MODEL, cache_dir=settings.cache_dir))
    rates = sweep(engines, sets, args.sweep_rounds)
    report.details["sweep"] = {name: {str(c): vars(r) for c, r in cells.items()} for name, cells in rates.items()}
    for name, texts in sets.items():
        top = top_configs(rates[name], TOP)
        sides = {str(c): (lambda t=texts, c=c: raw_rate(engines, c, t)) for c in top}
        sides["embedder"] = lambda t=texts: embed_rate(embedder, t, args.batch_size)
        result = interleaved(sides, args.rounds)
        raw = fastest_per_round(result, [str(c) for c in top])
        summary = ratio_summary(result["embedder"], raw)
        report.details[name] = {"raw_configs": [str(c) for c in top], **as_data(result), **summary}
        report.add(f"{name}: calibrated embed() vs best raw", max(r.wall for r in result["embedder"]), "texts/s",
                   baseline=max(r.wall for r in raw), baseline_name="fastest of raw " + " | ".join(map(str, top)),
                   target=f"ratio >= {TARGET}", passed=summary["ratio"] >= TARGET, note=rounds_note(summary))
    data = report.emit(args.out)
    print_details(runs[-1], rates)
    return data


def embed_rate(embedder: LocalEmbedder, texts: list[str], batch_size: int) -> Rate:
    """The rate of `embedder.embed` in calls of `batch_size` texts, as the worker calls it."""
    return timed(lambda: [embedder.embed(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)],
                 len(texts))


def print_details(calibration: Calibration, rates: dict[str, dict[Config, Rate]]) -> None:
    """The sweep table, the calibration's measurements and the plan it chose (after the report table)."""
    print("\nsweep (best of rounds; * = best of the set)")
    print("\n".join(sweep_table(rates)))
    print(f"\ncalibration: {describe(calibration)}")
    print("\n".join("  " + line for line in measurements_table(calibration.measurements)))


if __name__ == "__main__":
    main()
    sys.exit(0)
