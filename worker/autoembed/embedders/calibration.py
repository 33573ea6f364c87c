"""Which engine, thread count and sub-batch sizes run a local model fastest on this machine.

The answer depends on the machine (CPU, cores, cache sizes, what else runs there) more than on
the model, so the local embedder measures it where it runs, once, and keeps the result:

- **Engines** giving the same vectors: torch and ONNX Runtime fp32 (`FP32_BACKENDS`). int8 gives
  other vectors, so it is tried only when named (AUTOEMBED_LOCAL_BACKEND=onnx-int8).
- **Sub-batch sizes** (`SIZES`) per length bucket: texts of the model's typical lengths in
  tokens of its own tokenizer (`TYPICAL_TOKENS`, then the window), half English, half Korean
  (this model spells Hangul as jamo, so a Korean row is long in tokens). A text is put in the
  bucket nearest its length; the sub-batch size can differ per bucket.
- **Threads** are not fixed here: whether a second thread helps the one worker process depends
  on what else runs on the machine at the moment, so the plan lists 1 and the usable cores and
  the embedder picks per sub-batch by measured wall-clock speed (switching.py).

How: for each engine on one thread, a hill-climb over the sizes per bucket, timed in this
thread's CPU time (other load on the machine hardly moves it, where wall-clock time varies
2x); the engine whose worst bucket is closest to the best engine there wins (`choose`). All of it
runs within a time budget; a calibration cut short by it is used but not kept.

The result is kept as JSON under `cache_dir/calibration/`, one file per key (`cache_key`: model,
candidate engines/threads/sizes, CPU model and count, library versions): another machine,
CPU count or library version is another file. `autoembed calibrate --refresh` measures again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

#: sub-batch sizes tried (texts per forward pass)
SIZES = (1, 2, 4, 8, 16, 32, 64)
#: engines that make the same vectors, in order of preference on a tie
FP32_BACKENDS = ("onnx", "torch")
#: typical text lengths in tokens, special tokens included: a title or a sentence, a paragraph;
#: the model's window (a long or Korean row, cut there) is the last bucket
TYPICAL_TOKENS = (20, 160)
#: the size used where nothing was measured
DEFAULT_SUB_BATCH = 8
#: tokens per forward pass each intra-op thread needs to be worth it: the sizes are measured on
#: one thread, and on 2 idle cores 2 threads ran fastest from 640 tokens a pass (sub-batches of
#: 32 short, 4 medium or long texts) while one thread was as fast from 160 (bench/e2e_throughput.py)
TOKENS_PER_THREAD = 320
#: where the first climb starts (later buckets start at the size the shorter one chose)
CLIMB_START = 16
#: the most tokens one measured forward pass may hold: bounds the cost of a cell of long texts
TOKENS_PER_CELL = 1024
#: a cell runs forward passes until this much time has passed on its clock: CPU time is steady,
#: the wall clock (threads pinned above 1) needs longer to average over other work's bursts
MIN_CELL_SECONDS = {"cpu": 0.05, "wall": 0.25}
#: engines within this fraction of the best score count as tied (then `FP32_BACKENDS` order)
ENGINE_MARGIN = 0.03
#: another engine slower than this fraction of the first, at the first's sizes, is not searched further
ENGINE_SCREEN = 0.9
#: the start-up budget when the settings name none (AUTOEMBED_LOCAL_CALIBRATION_SECONDS)
DEFAULT_BUDGET = 15.0
#: bump when the search or the file changes: older files are then ignored
FORMAT = 1
#: libraries whose versions key the cache (a new version can change the speed)
LIBRARIES = ("sentence-transformers", "transformers", "tokenizers", "torch", "onnxruntime", "numpy")

ENGLISH = (
    "The city library opened a new reading room near the river, and students gathered there after school "
    "to study for their exams. A small bakery on the corner sells bread, coffee and tea every morning; the "
    "owner bakes the dough before sunrise and checks the oven temperature twice. Our team searched the "
    "database for the invoice, found the payment in the bank account and sent the refund before the "
    "deadline. The weather turned cold in winter, so the doctor told the patient to rest, drink water and "
    "return to the hospital if the fever stayed high. On the mountain road the car engine made a strange "
    "noise whenever the driver pressed the brake, and the mechanic replaced a worn tire the next day."
)
KOREAN = (
    "서울의 도서관은 강 근처에 새 열람실을 열었고 학생들은 방과 후 그곳에 모여 시험 공부를 했습니다. "
    "모퉁이의 작은 빵집은 매일 아침 빵과 커피와 차를 팝니다. 주인은 해가 뜨기 전에 반죽을 굽고 오븐 온도를 "
    "두 번 확인합니다. 우리 팀은 데이터베이스에서 송장을 찾아 은행 계좌의 결제를 확인하고 기한 전에 환불을 "
    "보냈습니다. 겨울에 날씨가 추워지자 의사는 환자에게 물을 많이 마시고 쉬라고 말했습니다."
)


@dataclass(frozen=True)
class Candidate:
    """One engine on a fixed number of intra-op threads (0: the runtime's choice)."""

    backend: str
    threads: int


@dataclass(frozen=True)
class Measurement:
    """Texts per second of `backend` on `threads` threads for sub-batches of `size` texts of
    `tokens` tokens; `clock` "cpu" (this thread's CPU time) or "wall"; `seconds`: the wall-clock
    time the cell took, loading the engine and a first untimed pass included."""

    backend: str
    threads: int
    tokens: int
    size: int
    rate: float
    clock: str
    seconds: float = 0.0


@dataclass(frozen=True)
class Plan:
    """The configuration the embedder runs: an engine; the thread counts it switches among by
    measured speed (one: fixed; 0: the runtime's choice); per length bucket the sub-batch size.
    `sub_batches` holds (tokens, size) by ascending tokens: a text goes to the bucket nearest its
    length (midpoints on a log scale)."""

    backend: str
    threads: tuple[int, ...]
    sub_batches: tuple[tuple[int, int], ...]

    def bucket(self, tokens: int) -> int:
        """The index in `sub_batches` of the bucket for texts of `tokens` tokens."""
        for index, ((low, _), (high, _)) in enumerate(zip(self.sub_batches, self.sub_batches[1:])):
            if tokens <= math.sqrt(low * high):
                return index
        return len(self.sub_batches) - 1

    def sub_batch(self, tokens: int, threads: int = 1) -> int:
        """The sub-batch size for texts of `tokens` tokens run on `threads` threads: the measured
        size, raised for more threads to at least TOKENS_PER_THREAD tokens a thread (at most 64)."""
        typical, size = self.sub_batches[self.bucket(tokens)]
        if threads <= 1:
            return size
        enough = next((s for s in SIZES if s * typical >= TOKENS_PER_THREAD * threads), SIZES[-1])
        return max(size, enough)

    def describe(self) -> str:
        """One line for logs and the CLI, e.g. `onnx, 1 or 2 threads by speed, sub-batch 32 (20 tokens), 4 (160), 2 (256)`."""
        if self.threads == (0,):
            threads = "runtime's threads"
        else:
            counts = " or ".join(map(str, self.threads))
            threads = f"{counts} thread{'s' * (self.threads != (1,))}" + (" by speed" * (len(self.threads) > 1))
        sizes = ", ".join(f"{size} ({tokens}{' tokens' * (i == 0)})" for i, (tokens, size) in enumerate(self.sub_batches))
        return f"{self.backend}, {threads}, sub-batch {sizes}"

    def as_json(self) -> dict:
        """The plan as JSON-ready data (`from_json` reads it back)."""
        return {"backend": self.backend, "threads": list(self.threads),
                "sub_batches": [list(p) for p in self.sub_batches]}

    @classmethod
    def from_json(cls, data: dict) -> Plan:
        """Read `as_json` back; ValueError if it is not a plan."""
        try:
            pairs = tuple((int(t), int(s)) for t, s in data["sub_batches"])
            plan = cls(str(data["backend"]), tuple(int(t) for t in data["threads"]), pairs)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a calibration plan: {exc}") from exc
        if not pairs or any(s < 1 for _, s in pairs) or [t for t, _ in pairs] != sorted({t for t, _ in pairs}):
            raise ValueError(f"not a calibration plan: sub-batches {pairs}")
        if not plan.threads or any(t < 0 for t in plan.threads):
            raise ValueError(f"not a calibration plan: threads {plan.threads}")
        return plan


@dataclass
class Calibration:
    """A plan and how it was reached: `source` "measured", "cache <file>", "pinned" or "defaults";
    `complete` False when the budget cut the measurements short."""

    plan: Plan
    source: str
    seconds: float = 0.0
    complete: bool = True
    measurements: list[Measurement] = field(default_factory=list)
    #: CPU time the measurements took (on an idle machine, about their wall-clock time)
    cpu_seconds: float = 0.0


def measurements_table(measurements: Sequence[Measurement]) -> list[str]:
    """The measurements as fixed-width lines, in the order they were taken, for the CLI and bench/."""
    lines = [f"{'engine':10} {'threads':>7} {'tokens':>6} {'sub-batch':>9} {'texts/s':>8} {'clock':5} {'took':>6}"]
    lines += [f"{m.backend:10} {m.threads:>7} {m.tokens:>6} {m.size:>9} {m.rate:>8.1f} {m.clock:5} {m.seconds:>5.2f}s"
              for m in measurements]
    return lines


@dataclass(frozen=True)
class Options:
    """What a calibration may choose from: each setting that is pinned leaves one value."""

    backends: tuple[str, ...]
    threads: tuple[int, ...]
    sizes: tuple[int, ...]

    @classmethod
    def from_pins(cls, backend: str | None, threads: int, sub_batch: int, cpus: int) -> Options:
        """None/0 leaves a dimension to measure: engines `FP32_BACKENDS`, threads 1 up to `cpus`
        (powers of two and `cpus`), sizes `SIZES`."""
        return cls(
            (backend,) if backend else FP32_BACKENDS,
            (threads,) if threads > 0 else thread_counts(cpus),
            (sub_batch,) if sub_batch > 0 else SIZES,
        )

    @property
    def pinned(self) -> bool:
        """Nothing to measure: one engine and one size (several thread counts are chosen among
        while the embedder runs, not by a calibration)."""
        return len(self.backends) == len(self.sizes) == 1


def thread_counts(cpus: int) -> tuple[int, ...]:
    """1, 2, 4, ... below `cpus`, and `cpus` itself."""
    counts = {cpus} | {2**k for k in range(cpus.bit_length()) if 2**k < cpus}
    return tuple(sorted(c for c in counts if c >= 1))


def buckets(window: int) -> tuple[int, ...]:
    """The representative lengths in tokens of a model reading `window` tokens."""
    return tuple(sorted({min(t, window) for t in TYPICAL_TOKENS} | {window}))


def fallback_plan(options: Options, window: int, measured: dict[int, int] | None = None) -> Plan:
    """The first engine and every thread count of `options`; per bucket the `measured` size, else
    that of the nearest measured bucket, else `DEFAULT_SUB_BATCH` (or the one pinned size)."""
    measured = measured or {}
    default = options.sizes[0] if len(options.sizes) == 1 else DEFAULT_SUB_BATCH
    pairs = []
    for tokens in buckets(window):
        nearest = min(measured, key=lambda t: abs(math.log(t / tokens)), default=None)
        pairs.append((tokens, measured[nearest] if nearest is not None else default))
    return Plan(options.backends[0], options.threads, tuple(pairs))


def choose(rates: dict[Candidate, dict[int, float]], preference: Sequence[Candidate], margin: float) -> Candidate:
    """The candidate whose worst bucket is closest to the best candidate in that bucket.

    `rates[c][tokens]` is c's best texts/s in a bucket; only candidates measured in every bucket
    any of them was measured in compete. A candidate within `margin` of the best score loses to
    one earlier in `preference` (a tie goes to the preferred engine)."""
    wanted = set().union(*(r.keys() for r in rates.values())) if rates else set()
    full = [c for c in preference if c in rates and set(rates[c]) == wanted and wanted]
    if not full:
        raise ValueError("no candidate was measured in every bucket")
    best = {t: max(rates[c][t] for c in full) for t in wanted}
    score = {c: min(rates[c][t] / best[t] for t in wanted) for c in full}
    top = max(score.values())
    return next(c for c in full if score[c] >= top - margin)


def climb(rate_of: Callable[[int], float | None], sizes: Sequence[int], start: int) -> int | None:
    """The size with the best rate, by hill-climbing from `start`: up while the rate improves,
    and down if the first step up did not. `rate_of` returns None once the budget is spent:
    then the best size so far (None if not even `start` was measured)."""
    index = sizes.index(start) if start in sizes else len(sizes) // 2
    best_index, best = index, rate_of(sizes[index])
    if best is None:
        return None
    for step in (1, -1):
        moved, probe = False, best_index + step
        while 0 <= probe < len(sizes):
            rate = rate_of(sizes[probe])
            if rate is None:
                return sizes[best_index]
            if rate <= best:
                break
            best_index, best, moved = probe, rate, True
            probe += step
        if moved:
            break
    return sizes[best_index]


class Search:
    """The measurements of one calibration (see the module doc), within a deadline.

    `encoder(candidate)` loads the candidate if needed and returns a function embedding one
    sub-batch; `texts(tokens, count)` gives `count` texts of `tokens` tokens; `rate(encode,
    texts, clock)` times one cell (`measure`) and `clock()` tells the time the deadline is in
    (`time.monotonic`)."""

    def __init__(self, encoder: Callable[[Candidate], Callable[[list[str]], object]],
                 texts: Callable[[int, int], list[str]], window: int, options: Options, budget: float,
                 *, rate: Callable[[Callable, list[str], str], float] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.encoder = encoder
        self.texts = texts
        self.buckets = buckets(window)
        self.window = window
        self.options = options
        self.rate = rate or measure
        self.clock = clock
        self.deadline = clock() + budget
        self.exhausted = False
        self.measurements: list[Measurement] = []
        self._warm: set[tuple[Candidate, int]] = set()
        self._samples: dict[int, list[str]] = {}

    def run(self) -> Plan:
        """Measure and return the best plan found (`exhausted` says whether the budget cut it short)."""
        base_threads = self.options.threads[0]
        clock = "cpu" if base_threads == 1 else "wall"
        first, *others = (Candidate(backend, base_threads) for backend in self.options.backends)
        sizes: dict[Candidate, dict[int, int]] = {}
        rates: dict[Candidate, dict[int, float]] = {}
        sizes[first], rates[first] = self._climb_all(first, clock, {}, {})
        if len(rates[first]) < len(self.buckets):
            return self._plan(first, sizes[first])
        for other in others:
            screen = self._screen(other, sizes[first], rates[first], clock, ENGINE_SCREEN)
            if screen is not None:
                sizes[other], rates[other] = self._climb_all(other, clock, sizes[first], screen)
        complete = {c: r for c, r in rates.items() if len(r) == len(self.buckets)}
        chosen = choose(complete, list(complete), ENGINE_MARGIN)
        return self._plan(chosen, sizes[chosen])

    def _sizes_for(self, tokens: int) -> tuple[int, ...]:
        """The sizes tried for a bucket: a forward pass of at most TOKENS_PER_CELL tokens (the
        smallest size in any case), so a cell of long texts stays short."""
        allowed = tuple(s for s in self.options.sizes if s * tokens <= TOKENS_PER_CELL)
        return allowed or self.options.sizes[:1]

    def _climb_all(self, candidate: Candidate, clock: str, starts: dict[int, int], known: dict[int, float],
                   ) -> tuple[dict[int, int], dict[int, float]]:
        """Per bucket, the best size and its rate; a climb starts at `starts[tokens]` (rates already
        measured there in `known`), else at the size the shorter bucket chose (capped)."""
        sizes: dict[int, int] = {}
        rates: dict[int, float] = {}
        previous = CLIMB_START
        for tokens in self.buckets:
            allowed = self._sizes_for(tokens)
            start = starts.get(tokens) or max((s for s in allowed if s <= previous), default=allowed[0])
            memo: dict[int, float | None] = {start: known[tokens]} if tokens in known else {}

            def rate_of(size: int, tokens: int = tokens, memo: dict = memo) -> float | None:
                if size not in memo:
                    memo[size] = self._measure(candidate, tokens, size, clock)
                return memo[size]

            best = climb(rate_of, allowed, start)
            if best is None:
                break
            sizes[tokens], rates[tokens], previous = best, memo[best], best
        return sizes, rates

    def _screen(self, candidate: Candidate, sizes: dict[int, int], rates: dict[int, float], clock: str,
                floor: float) -> dict[int, float] | None:
        """`candidate`'s rates at `sizes`, bucket by bucket; None as soon as one is below `floor`
        times `rates` there (it cannot plausibly win), or the budget is spent."""
        found: dict[int, float] = {}
        for tokens in self.buckets:
            rate = self._measure(candidate, tokens, sizes[tokens], clock)
            if rate is None or rate < floor * rates[tokens]:
                return None
            found[tokens] = rate
        return found

    def _measure(self, candidate: Candidate, tokens: int, size: int, clock: str) -> float | None:
        if self._spent():
            return None
        started = self.clock()
        encode = self.encoder(candidate)
        texts = self._sample(tokens)[:size]
        if (candidate, tokens) not in self._warm:  # first run of a shape allocates: not timed
            encode(texts[:1])
            self._warm.add((candidate, tokens))
        rate = self.rate(encode, texts, clock)
        self.measurements.append(Measurement(candidate.backend, candidate.threads, tokens, size, rate, clock,
                                             self.clock() - started))
        return rate

    def _sample(self, tokens: int) -> list[str]:
        if tokens not in self._samples:
            self._samples[tokens] = self.texts(tokens, max(self._sizes_for(tokens)))
        return self._samples[tokens]

    def _spent(self) -> bool:
        self.exhausted = self.exhausted or self.clock() >= self.deadline
        return self.exhausted

    def _plan(self, candidate: Candidate, sizes: dict[int, int]) -> Plan:
        options = Options((candidate.backend,), self.options.threads, self.options.sizes)
        return fallback_plan(options, self.window, sizes)


def measure(encode: Callable[[list[str]], object], texts: list[str], clock: str) -> float:
    """Texts per second of `encode(texts)`, called until MIN_CELL_SECONDS[clock] passed on `clock`:
    "cpu" is this thread's CPU time (right for one intra-op thread, which runs in the caller)."""
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    done, started = 0, timer()
    while True:
        encode(texts)
        done += len(texts)
        elapsed = timer() - started
        if elapsed >= MIN_CELL_SECONDS[clock]:
            return done / elapsed


def sample_texts(tokenizer, tokens: int, count: int) -> list[str]:
    """`count` texts of `tokens` tokens (special tokens included) by `tokenizer`, alternately English
    and Korean, each starting at another word."""
    special = len(tokenizer("", add_special_tokens=True)["input_ids"])
    wanted = max(tokens - special, 1)
    texts = []
    for i in range(count):
        words = (ENGLISH if i % 2 == 0 else KOREAN).split()
        start = (i * 7) % len(words)
        words = words[start:] + words[:start]
        text = " ".join(words)
        while len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]) < wanted:
            text = f"{text} {text}"
        texts.append(_cut(tokenizer, text, wanted))
    return texts


def _cut(tokenizer, text: str, wanted: int) -> str:
    """The longest prefix of `text` of at most `wanted` tokens (a Hangul syllable is several)."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    cut = text[: offsets[wanted - 1][1]]
    while len(tokenizer(cut, add_special_tokens=False, verbose=False)["input_ids"]) > wanted:
        cut = cut[:-1]
    return cut


# -- the cache -----------------------------------------------------------------------------------
def cache_key(model: str, options: Options) -> dict:
    """What a calibration's result depends on: model, candidates, the machine, library versions."""
    return {
        "format": FORMAT,
        "model": model,
        "backends": sorted(options.backends),
        "threads": list(options.threads),
        "sizes": list(options.sizes),
        "cpu": cpu_model(),
        "cpus": usable_cpus(),
        "libraries": library_versions(),
    }


def cache_file(cache_dir: Path, key: dict) -> Path:
    """Where the calibration for `key` is kept: one file per key, named by model and key digest."""
    from autoembed.embedders.models import safe_dir_name

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / "calibration" / f"{safe_dir_name(key['model'])}-{digest}.json"


def read_cached(path: Path, key: dict) -> Calibration | None:
    """The calibration kept in `path` for exactly `key`; None if there is none, or it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        plan = Plan.from_json(data["plan"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Calibration(plan, f"cache {path}", seconds=float(data.get("seconds", 0.0)),
                       measurements=[Measurement(**m) for m in data.get("measurements", [])],
                       cpu_seconds=float(data.get("cpu_seconds", 0.0)))


def write_cached(path: Path, key: dict, calibration: Calibration) -> None:
    """Keep a calibration in `path` (written whole, then renamed into place)."""
    data = {"key": key, "plan": calibration.plan.as_json(), "seconds": round(calibration.seconds, 3),
            "cpu_seconds": round(calibration.cpu_seconds, 3),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_average": os.getloadavg()[0],
            "measurements": [asdict(m) for m in calibration.measurements]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}-", delete=False,
                                     encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(f.name, path)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; elsewhere what platform knows)."""
    import platform

    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity, capped by a cgroup v2 CPU quota."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    return count


def library_versions() -> dict[str, str | None]:
    """The installed versions of `LIBRARIES` (None for one not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


# -- putting it together -------------------------------------------------------------------------
def configure(engines, options: Options, *, budget: float, cache_dir: Path, refresh: bool = False) -> Calibration:
    """The plan for the model of `engines` (models.Engines) within `options`: what is pinned, else
    the cached calibration for this machine, else one measured now within `budget` seconds (kept
    when it finished). `budget` 0 skips measuring: the first engine, the runtime's threads,
    `DEFAULT_SUB_BATCH`. Leaves loaded only the engines the plan runs."""
    if options.pinned or budget <= 0:
        if not options.pinned and len(options.threads) > 1:
            options = Options(options.backends, (0,), options.sizes)
        model = engines.model(options.backends[0], options.threads[0])
        plan = fallback_plan(options, model.max_seq_length or 512)
        return Calibration(plan, "pinned" if options.pinned else "defaults")
    key = cache_key(engines.files.name, options)
    path = cache_file(cache_dir, key)
    cached = None if refresh else read_cached(path, key)
    if cached is not None:
        engines.model(cached.plan.backend, cached.plan.threads[0])
        return cached
    first = engines.model(options.backends[0], options.threads[0])
    started, cpu_started = time.monotonic(), time.process_time()  # the cost on top of loading the model
    search = Search(lambda c: engines.encoder(c.backend, c.threads),
                    lambda tokens, count: sample_texts(first.tokenizer, tokens, count),
                    first.max_seq_length or 512, options, budget)
    plan = search.run()
    calibration = Calibration(plan, "measured", time.monotonic() - started, not search.exhausted,
                              search.measurements, time.process_time() - cpu_started)
    engines.keep_only(plan.backend, plan.threads)
    extra = {"model": engines.files.model, "plan": plan.describe(), "seconds": round(calibration.seconds, 2),
             "cpu_seconds": round(calibration.cpu_seconds, 2), "cells": len(search.measurements)}
    if calibration.complete:
        try:
            write_cached(path, key, calibration)
        except OSError as exc:
            logger.warning("could not keep the local model's calibration: %s", exc, extra={"path": str(path)})
        logger.info("calibrated the local model: %s", plan.describe(), extra=extra)
    else:
        logger.warning("the local model's calibration ran out of its %.0f s budget: using the best "
                       "found so far (%s), not kept; run `autoembed calibrate` to finish it",
                       budget, plan.describe(), extra=extra)
    return calibration
