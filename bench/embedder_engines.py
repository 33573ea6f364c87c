"""Throughput, latency and int8 fidelity of the local embedder's backends (torch, onnx, onnx-int8).

    .venv/bin/python bench/embedder_engines.py [--model NAME] [--threads N] [--cache-dir DIR]

Each backend is pinned (no calibration: bench/local_calibration.py measures that) at `--threads`
(default: the usable cores). Measures, through `LocalEmbedder.embed` (so length grouping and
sub-batching are included):
texts/s (best of 2 rounds) on short (~18 token), medium (~160 token) and mixed-length texts
(a queue batch: 5 to 240 words) at sub-batch sizes 1/4/8/16/32; on the mixed texts also
sub-batches cut in arrival order instead of by length; single-text p50 latency; the cosine of
onnx to torch and of int8 to fp32 vectors on a fixed sample of 200 texts (90 short, 90
medium, 20 Korean). Each figure is also given
as a ratio to torch measured in the same run. Prints JSON, then a table. About 2-3 minutes
on 2 cores; expect ±10% between runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from autoembed.embedders.calibration import Plan, usable_cpus
from autoembed.embedders.local import LocalEmbedder
from autoembed.settings import Settings

BACKENDS = ("torch", "onnx", "onnx-int8")
SUB_BATCHES = (1, 4, 8, 16, 32)
COUNTS = {"short": 128, "medium": 64}  # texts per throughput cell
MIXED_WORDS = (5, 10, 20, 40, 80, 160, 240)  # a queue batch: from a title to the full window
ROUNDS = 2  # each cell keeps its best round: other load on the machine only ever slows it
WORDS = {"short": 14, "medium": 155}  # words per text, tuned to ~18 and ~160 tokens
LATENCY_CALLS = {"short": 40, "medium": 15}  # single-text p50, on the first texts of each set

from common import KOREAN, VOCABULARY  # noqa: E402  (the texts every benchmark shares)


def make_texts(kind: str, count: int, seed: int) -> list[str]:
    """Deterministic word-salad sentences of about the length `kind` names."""
    rng = random.Random(seed)
    n = WORDS[kind]
    texts = []
    for _ in range(count):
        words = [rng.choice(VOCABULARY) for _ in range(rng.randint(int(n * 0.85), int(n * 1.15)))]
        texts.append(" ".join(words).capitalize() + ".")
    return texts


def make_mixed(count: int, seed: int) -> list[str]:
    """Texts whose word counts are drawn from MIXED_WORDS, as a queue batch might hold."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCABULARY) for _ in range(rng.choice(MIXED_WORDS))) for _ in range(count)]


def texts_per_second(embedder: LocalEmbedder, texts: list[str], sub_batch: int) -> float:
    embedder.plan = Plan(embedder.plan.backend, embedder.plan.threads, ((embedder.max_tokens, sub_batch),))
    started = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - started)


def p50_ms(embedder: LocalEmbedder, texts: list[str]) -> float:
    times = []
    for text in texts:
        started = time.perf_counter()
        embedder.embed([text])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def arrival_order_rate(embedder: LocalEmbedder, texts: list[str], sub_batch: int) -> float:
    """texts/s when sub-batches are cut in arrival order (no length grouping), for comparison."""
    started = time.perf_counter()
    for start in range(0, len(texts), sub_batch):
        chunk = texts[start : start + sub_batch]
        embedder._encode(chunk, max(embedder._token_counts(chunk)),
                         [embedder.plan.threads[0]] * len(embedder.plan.sub_batches))
    return len(texts) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: settings, else the cores)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="ONNX export cache (default: settings)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # quiet ONNX Runtime's quantizer on a first export

    settings = Settings.from_env()
    threads = (settings.local_threads if args.threads is None else args.threads) or usable_cpus()
    cache_dir = args.cache_dir or settings.cache_dir
    bench_started = time.perf_counter()

    sets = {kind: make_texts(kind, COUNTS[kind], seed) for kind, seed in (("short", 1), ("medium", 2))}
    sets["mixed"] = make_mixed(64, 3)
    fidelity = make_texts("short", 90, 6) + make_texts("medium", 90, 7) + KOREAN * 2

    result: dict = {"model": args.model, "threads": threads, "backends": {}}
    vectors: dict[str, np.ndarray] = {}
    for backend in BACKENDS:
        started = time.perf_counter()
        embedder = LocalEmbedder(args.model, backend, cache_dir=cache_dir, threads=threads, sub_batch=8)
        load_s = time.perf_counter() - started
        tokenizer = embedder._st.tokenizer
        if "tokens" not in result:
            result["tokens"] = {
                kind: round(statistics.mean(len(ids) for ids in tokenizer(texts)["input_ids"]), 1)
                for kind, texts in sets.items()
            }
        embedder.embed(sets["short"][:16])  # warm-up
        row: dict = {"load_s": round(load_s, 2), "texts_per_s": {}, "p50_ms": {}}
        for kind, texts in sets.items():
            best = dict.fromkeys(SUB_BATCHES, 0.0)
            for _ in range(ROUNDS):  # rounds interleave the sizes, so a burst of load hits all alike
                for bs in SUB_BATCHES:
                    best[bs] = max(best[bs], texts_per_second(embedder, texts, bs))
            row["texts_per_s"][kind] = {str(bs): round(rate, 1) for bs, rate in best.items()}
            if kind in LATENCY_CALLS:
                row["p50_ms"][kind] = round(p50_ms(embedder, texts[: LATENCY_CALLS[kind]]), 2)
        arrival = max(arrival_order_rate(embedder, sets["mixed"], 8) for _ in range(ROUNDS))
        row["mixed_bs8_arrival_order"] = round(arrival, 1)
        vectors[backend] = np.stack(embedder.embed(fidelity))
        result["backends"][backend] = row
        embedder.close()

    def cosines(a: str, b: str) -> dict:
        cos = (vectors[a] * vectors[b]).sum(axis=1)
        return {"min": round(float(cos.min()), 4), "mean": round(float(cos.mean()), 4)}

    result["fidelity"] = {
        "sample": len(fidelity),
        "onnx_vs_torch": cosines("onnx", "torch"),
        "int8_vs_fp32": cosines("onnx-int8", "onnx"),
    }
    torch_row = result["backends"]["torch"]
    for backend, row in result["backends"].items():
        row["x_torch"] = {
            "texts_per_s": {
                kind: {bs: round(v / torch_row["texts_per_s"][kind][bs], 2) for bs, v in cells.items()}
                for kind, cells in row["texts_per_s"].items()
            },
            # latency as a speed-up: torch's p50 divided by this backend's
            "p50": {kind: round(torch_row["p50_ms"][kind] / v, 2) for kind, v in row["p50_ms"].items()},
        }
    result["total_s"] = round(time.perf_counter() - bench_started, 1)

    print(json.dumps(result, indent=2))
    print_table(result)
    return 0


def print_table(result: dict) -> None:
    print(f"\n{result['model']}, threads: {result['threads']}, mean tokens {result['tokens']}")
    print("texts/s (x torch in the same run)")
    header = f"{'backend':10} {'len':6} " + " ".join(f"{'bs' + str(bs):>13}" for bs in SUB_BATCHES)
    print(header + f" {'p50 ms':>14}")
    for backend, row in result["backends"].items():
        for kind, cells in row["texts_per_s"].items():
            ratios = row["x_torch"]["texts_per_s"][kind]
            line = " ".join(f"{cells[str(bs)]:>6.1f} ({ratios[str(bs)]:.2f})" for bs in SUB_BATCHES)
            p50 = ""
            if kind in row["p50_ms"]:
                p50 = f"{row['p50_ms'][kind]:>6.1f} ({row['x_torch']['p50'][kind]:.2f})"
            print(f"{backend:10} {kind:6} {line} {p50:>14}")
    print("mixed lengths at sub-batch 8, texts/s: grouped by length vs cut in arrival order")
    for backend, row in result["backends"].items():
        grouped = row["texts_per_s"]["mixed"]["8"]
        print(f"  {backend:10} {grouped:>6.1f} vs {row['mixed_bs8_arrival_order']:>6.1f}")
    fid = result["fidelity"]
    print(
        f"cosine on {fid['sample']} texts: onnx vs torch min {fid['onnx_vs_torch']['min']}, "
        f"int8 vs fp32 min {fid['int8_vs_fp32']['min']} mean {fid['int8_vs_fp32']['mean']}"
    )
    print(f"total {result['total_s']} s")


if __name__ == "__main__":
    sys.exit(main())
