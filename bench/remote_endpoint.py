"""One worker against a remote embedding endpoint: as busy as the best raw client keeps it?

    .venv/bin/python bench/remote_endpoint.py [--rows 20000] [--latency-ms 200] [--capacity 8]
        [--request-texts 25] [--batch-sizes 100,100:100] [--squeeze-rows 30000] [--quick] [--out FILE]

The endpoint is OpenAIStub (tests/support) in a process of its own: every request takes a fixed
--latency-ms, at most --capacity requests are served at once and one more is answered 429 at
once with `Retry-After: 1`, as a rate-limited API or an overloaded TEI answers. Requests carry at
most --request-texts texts (AUTOEMBED_OPENAI_BATCH_SIZE for the worker, the same for the raw
client), so the endpoint's ceiling is capacity x request-texts / latency rows/s.

1. **Raw client**: plain `requests`, one session per thread, N threads pulling requests of
   --request-texts texts from a queue (a 429 waits its Retry-After and goes again). A sweep over
   thread counts finds the best; then the best runs once more on --rows texts.
2. **autoembed**: one `autoembed worker` process at default settings except the endpoint and the
   request size, for each --batch-sizes entry `B` (AUTOEMBED_BATCH_SIZE=B, the default
   AUTOEMBED_MAX_BATCH_SIZE) or `B:M` (AUTOEMBED_MAX_BATCH_SIZE=M): half of --rows inserted in one
   statement (cold: the worker learns the endpoint's pace and capacity on them), then the other
   half (warm, as the raw client is after its sweep); rows/s from the insert's commit until the
   queue is empty and every row has its vector. The warm ratio to the raw best of the same run is
   the figure (goal >= 0.9); the cold one is reported beside it.
   Beside it, the embedder alone, called exactly as the worker calls it, without the database
   (batches of `Settings.read_size` rows, as the worker reads them).
3. **Squeeze**: after a warm-up, the stub (in this process for this part) serves --capacity, then
   a quarter of it for --squeeze-seconds, then --capacity again; the worker's rows/s and the 429s
   it got, per second: it slows down when squeezed and comes back by itself.

A worker reads as many rows as the embedder's request slots keep busy (its `max_batch_size`: slots
x texts per request x `dispatch.CALL_ROUNDS`), at least AUTOEMBED_BATCH_SIZE and at most
AUTOEMBED_MAX_BATCH_SIZE; `100:100` shows fixed batches of 100 rows (one call of 4 requests: at
most 4 of the endpoint's slots busy). Vectors are 64-d (--dims) so that
JSON on two shared cores does not become the bottleneck. Default scale ~5 minutes.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import urllib.request

import common
import numpy as np
import requests
from common import note

from autoembed.embedders.openai import OpenAIEmbedder
from autoembed.settings import Settings
from support.openai_stub import OpenAIStub

MODEL = "bench-remote"
API_KEY = "sk-bench-remote-not-a-real-key"
TARGET_RATIO = 0.9


class StubProcess:
    """`python -m support.openai_stub` in a subprocess (so neither client shares its interpreter)."""

    def __init__(self, *args: str):
        self.args = list(args)
        self.popen: subprocess.Popen | None = None
        self.base_url = ""

    def __enter__(self) -> "StubProcess":
        self.popen = subprocess.Popen([sys.executable, "-m", "support.openai_stub", "--port", "0", *self.args],
                                      cwd=common.REPO / "tests", stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
        self.base_url = self.popen.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the stub did not start: {self.base_url!r}")
        return self

    def stats(self, reset: bool = False) -> dict:
        """The stub's counts and max_concurrent so far (`reset`: and start afresh)."""
        root = self.base_url.removesuffix("/v1")
        with urllib.request.urlopen(f"{root}/stub/stats{'?reset=1' if reset else ''}", timeout=10) as answer:
            return json.load(answer)

    def __exit__(self, *exc) -> None:
        if self.popen is not None:
            self.popen.terminate()
            self.popen.wait(10)


# -- the raw client ----------------------------------------------------------------------------------
def raw_client(base_url: str, texts: list[str], request_texts: int, threads: int) -> dict:
    """Rows/s of `threads` plain-`requests` threads embedding `texts`, `request_texts` per request."""
    work: queue.Queue = queue.Queue()
    for start in range(0, len(texts), request_texts):
        work.put(texts[start:start + request_texts])
    refused = [0] * threads
    failures: list[str] = []

    def run(slot: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {API_KEY}"
        try:
            while True:
                try:
                    batch = work.get_nowait()
                except queue.Empty:
                    return
                while True:
                    answer = session.post(f"{base_url}/embeddings", json={"model": MODEL, "input": batch}, timeout=60)
                    if answer.status_code == 429:
                        refused[slot] += 1
                        time.sleep(float(answer.headers.get("Retry-After", "1")))
                        continue
                    if answer.status_code != 200:
                        failures.append(f"HTTP {answer.status_code}")
                        return
                    vectors = [np.asarray(item["embedding"], dtype="float32")
                               for item in answer.json()["data"]]
                    assert len(vectors) == len(batch)
                    break
        finally:
            session.close()

    started = time.perf_counter()
    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"raw client failed: {failures[0]}")
    return {"threads": threads, "rows": len(texts), "seconds": seconds, "rows_per_s": len(texts) / seconds,
            "refused_429": sum(refused)}


# -- the worker --------------------------------------------------------------------------------------
def worker_run(bench_db: common.BenchDatabase, conn, base_url: str, table: str, texts: list[str],
               settings: Settings, args) -> dict:
    """Rows/s of one `autoembed worker` on `texts`, from the insert's commit to the last vector."""
    common.create_table(conn, table, args.dims, embedder="openai", model=MODEL)
    env = common.worker_env(openai_base_url=base_url, openai_api_key=API_KEY, batch_size=settings.batch_size,
                            max_batch_size=settings.max_batch_size, openai_batch_size=args.request_texts,
                            poll_interval=1)
    half = len(texts) // 2
    with common.WorkerPool(bench_db, 1, env, prefix=f"bench-remote-{table}") as pool:
        pool.wait_listening(conn)
        started = time.monotonic()
        common.insert_texts(conn, table, texts[:half])  # cold: the worker learns the endpoint here
        cold = common.wait_drained(conn, table, half, args.timeout) - started
        started = time.monotonic()
        common.insert_texts(conn, table, texts[half:])  # warm, as the raw client after its sweep
        warm = common.wait_drained(conn, table, len(texts), args.timeout) - started
    return {"batch_size": label(settings), "rows": len(texts), "cold_rows_per_s": half / cold,
            "rows_per_s": (len(texts) - half) / warm}


def label(settings: Settings) -> str:
    """How a worker's batch settings read in the report."""
    return f"{settings.batch_size} to {settings.max_batch_size}"


def embedder_run(base_url: str, texts: list[str], settings: Settings, args) -> dict:
    """Rows/s of the openai embedder alone, called as the worker calls it (batches of
    `settings.read_size` rows, each in calls of `max_batch_size` read at the start of the batch),
    without the database: the first half of `texts` warms it up, the second is timed."""
    embedder = OpenAIEmbedder(MODEL, args.dims, base_url=base_url, api_key=API_KEY, batch_size=args.request_texts)
    try:
        half = len(texts) // 2
        timings = []
        for part in (texts[:half], texts[half:]):
            started, done = time.perf_counter(), 0
            while done < len(part):
                batch = part[done:done + settings.read_size(embedder.wanted_batch_rows())]
                done += len(batch)
                step = embedder.max_batch_size
                for start in range(0, len(batch), step):
                    embedder.embed(list(batch[start:start + step]))
            timings.append(len(part) / (time.perf_counter() - started))
        return {"batch_size": label(settings), "cold_rows_per_s": timings[0], "rows_per_s": timings[1],
                "pacing": embedder.pacing()}
    finally:
        embedder.close()


def squeeze_run(bench_db: common.BenchDatabase, conn, args, texts: list[str]) -> dict:
    """The worker's rows/s and the 429s it met, second by second, while the capacity drops and returns."""
    table = "remote_squeeze"
    common.create_table(conn, table, args.dims, embedder="openai", model=MODEL)
    with OpenAIStub(dimensions=args.dims, latency=args.latency_ms / 1000, capacity=args.capacity) as stub:
        env = common.worker_env(openai_base_url=stub.base_url, openai_api_key=API_KEY,
                                batch_size=args.squeeze_batch_size, openai_batch_size=args.request_texts,
                                poll_interval=1)
        with common.WorkerPool(bench_db, 1, env, prefix="bench-remote-squeeze") as pool:
            pool.wait_listening(conn)
            warm_up = 4 * args.squeeze_batch_size  # the worker learns the endpoint before the clock runs
            common.insert_texts(conn, table, texts[:warm_up])
            common.wait_drained(conn, table, warm_up, args.timeout)
            texts = texts[warm_up:]
            stub.reset()
            common.insert_texts(conn, table, texts)
            started = time.monotonic()
            timeline, phase = [], "full"
            last_rows, last_refused = 0, 0
            while True:
                time.sleep(1.0)
                elapsed = time.monotonic() - started
                if phase == "full" and elapsed >= args.squeeze_at:
                    phase, stub.capacity = "squeezed", max(1, args.capacity // 4)
                elif phase == "squeezed" and elapsed >= args.squeeze_at + args.squeeze_seconds:
                    phase, stub.capacity = "restored", args.capacity
                rows = common.count_embedded(conn, table) - warm_up
                refused = stub.counts["429"]
                timeline.append({"second": round(elapsed), "phase": phase, "rows_per_s": rows - last_rows,
                                 "refused_429": refused - last_refused})
                last_rows, last_refused = rows, refused
                if rows >= len(texts) or elapsed > args.timeout:
                    break
    return {"rows": len(texts), "capacity": args.capacity, "squeezed_capacity": max(1, args.capacity // 4),
            "timeline": timeline}


def phase_rate(timeline: list[dict], phase: str, skip: int = 0, last: int | None = None) -> float | None:
    """Mean rows/s over a phase's seconds (after the first `skip`, or only its `last` ones)."""
    seconds = [t["rows_per_s"] for t in timeline if t["phase"] == phase][skip:]
    if last is not None:
        seconds = seconds[-last:]
    seconds = seconds[:-1] if phase == timeline[-1]["phase"] and len(seconds) > 1 else seconds  # last one is partial
    return sum(seconds) / len(seconds) if seconds else None


def batch_settings(entry: str) -> Settings:
    """`B` or `B:M` as settings: AUTOEMBED_BATCH_SIZE B and AUTOEMBED_MAX_BATCH_SIZE M (default: its default)."""
    batch, _, most = entry.partition(":")
    return Settings(batch_size=int(batch), **({"max_batch_size": int(most)} if most else {}))


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--request-texts", type=int, default=25)
    parser.add_argument("--dims", type=int, default=64,
                        help="vector size: small, so JSON on 2 shared cores does not become the bottleneck")
    parser.add_argument("--sweep", default="1,2,4,6,8,10,12,16", help="raw client thread counts")
    parser.add_argument("--sweep-rows", type=int, default=3000)
    parser.add_argument("--batch-sizes", default="100,100:100",
                        help="worker batch settings: B (AUTOEMBED_BATCH_SIZE) or B:M (and AUTOEMBED_MAX_BATCH_SIZE)")
    parser.add_argument("--squeeze-rows", type=int, default=30000)
    parser.add_argument("--squeeze-batch-size", type=int, default=800)
    parser.add_argument("--squeeze-at", type=float, default=8.0)
    parser.add_argument("--squeeze-seconds", type=float, default=8.0)
    parser.add_argument("--skip-squeeze", action="store_true")
    parser.add_argument("--skip-worker", action="store_true", help="raw client and embedder alone only")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    common.apply_quick(args, {"rows": 4000, "sweep": "4,8,12", "sweep_rows": 1000, "squeeze_rows": 6000,
                              "squeeze_at": 3.0, "squeeze_seconds": 3.0})
    common.quiet_logs()
    report = common.Report("remote_endpoint", {k: v for k, v in vars(args).items() if k != "out"})
    texts = common.make_texts("short", args.rows)
    ceiling = args.capacity * args.request_texts / (args.latency_ms / 1000)
    stub_args = ["--dimensions", str(args.dims), "--latency-ms", str(args.latency_ms),
                 "--capacity", str(args.capacity)]
    with StubProcess(*stub_args) as stub, \
            common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db) as bench_db, \
            bench_db.connect() as conn:
        report.machine = common.machine_facts(bench_db.server_version())
        sweep = []
        for threads in [int(n) for n in args.sweep.split(",") if n.strip()]:
            result = raw_client(stub.base_url, texts[:args.sweep_rows], args.request_texts, threads)
            sweep.append(result)
            note(f"raw client, {threads} threads: {result['rows_per_s']:,.0f} rows/s, {result['refused_429']} refused")
        best_threads = max(sweep, key=lambda r: r["rows_per_s"])["threads"]
        stub.stats(reset=True)
        raw = raw_client(stub.base_url, texts, args.request_texts, best_threads)
        raw["stub"] = stub.stats(reset=True)
        note(f"raw client at its best ({best_threads} threads): {raw['rows_per_s']:,.0f} rows/s")
        runs, alone, worker_error = [], [], None
        for batch in [batch_settings(entry) for entry in args.batch_sizes.split(",") if entry.strip()]:
            result = embedder_run(stub.base_url, texts, batch, args)
            result["stub"] = stub.stats(reset=True)
            alone.append(result)
            note(f"embedder alone, batch {label(batch)}: {result['rows_per_s']:,.0f} rows/s warm, "
                 f"{result['cold_rows_per_s']:,.0f} cold, {result['stub']['counts'].get('429', 0)} refused")
            if worker_error or args.skip_worker:
                continue
            try:
                result = worker_run(bench_db, conn, stub.base_url, f"remote_{len(runs)}", texts, batch, args)
            except (RuntimeError, TimeoutError) as exc:  # the worker would not run: say why, keep the rest
                worker_error = str(exc).strip().splitlines()[-1][:300]
                note(f"autoembed worker did not run: {worker_error}")
                continue
            result["stub"] = stub.stats(reset=True)
            runs.append(result)
            note(f"autoembed worker, batch {label(batch)}: {result['rows_per_s']:,.0f} rows/s warm, "
                 f"{result['cold_rows_per_s']:,.0f} cold, "
                 f"{result['stub']['counts'].get('429', 0)} refused, at most {result['stub']['max_concurrent']} at once")
        squeeze = None if args.skip_squeeze or args.skip_worker or worker_error else squeeze_run(bench_db, conn, args, common.make_texts(
            "short", args.squeeze_rows, seed=3))

    report.add("endpoint ceiling (capacity x request texts / latency)", ceiling, "rows/s")
    report.add(f"raw client, best of the sweep ({best_threads} threads)", raw["rows_per_s"], "rows/s",
               baseline=ceiling, baseline_name="ceiling")
    for result in alone:
        report.add(f"openai embedder alone, called as the worker does, batch {result['batch_size']}",
                   result["rows_per_s"], "rows/s", baseline=raw["rows_per_s"], baseline_name="raw best",
                   note=f"no database; cold half: {result['cold_rows_per_s']:,.0f} rows/s; "
                        f"{result['stub']['counts'].get('429', 0)} refused")
    if worker_error:
        report.add("autoembed worker", None, "rows/s", note=f"did not run: {worker_error}")
    for result in runs:
        report.add(f"autoembed worker, batch {result['batch_size']}", result["rows_per_s"], "rows/s",
                   baseline=raw["rows_per_s"], baseline_name="raw best", target=f"ratio >= {TARGET_RATIO}",
                   passed=result["rows_per_s"] >= TARGET_RATIO * raw["rows_per_s"],
                   note=f"{result['stub']['counts'].get('429', 0)} requests refused (429), "
                        f"at most {result['stub']['max_concurrent']} in flight")
        report.add(f"autoembed worker, batch {result['batch_size']}, cold", result["cold_rows_per_s"], "rows/s",
                   baseline=raw["rows_per_s"], baseline_name="raw best",
                   note="first half of the rows: includes learning the endpoint (slow start, first 429)")
    if squeeze:
        timeline = squeeze["timeline"]
        before = phase_rate(timeline, "full", skip=2)
        squeezed = phase_rate(timeline, "squeezed", skip=1)
        restored = phase_rate(timeline, "restored", last=5)
        refused = {p: sum(t["refused_429"] for t in timeline if t["phase"] == p) for p in ("full", "squeezed", "restored")}
        report.add("squeeze: rows/s at full capacity", before, "rows/s", note=f"{refused['full']} refused")
        report.add("squeeze: rows/s at 1/4 capacity", squeezed, "rows/s", baseline=before, baseline_name="full",
                   note=f"{refused['squeezed']} refused: it slowed down")
        report.add("squeeze: rows/s after capacity returned (last 5 s)", restored, "rows/s", baseline=before,
                   baseline_name="full", target="ratio >= 0.8",
                   passed=None if restored is None or before is None else restored >= 0.8 * before,
                   note=f"{refused['restored']} refused; recovery includes the wait before probing above "
                        f"the level that worked while squeezed (pacing.PROBE_BASE_S)")
        report.details["squeeze"] = squeeze
    report.details.update(raw_sweep=sweep, raw_best=raw, embedder_alone=alone, worker=runs)
    return report.emit(args.out)


if __name__ == "__main__":
    main()
    sys.exit(0)
