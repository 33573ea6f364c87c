"""Which thread count runs the next sub-batch: chosen while the worker works, by measured speed.

On a machine shared with other work, whether a second intra-op thread helps changes by the
minute: with a core to spare it runs a sub-batch ~1.6x faster; when other processes want both
cores it runs it 2-3x slower than one thread, since every pass waits for its slowest thread.
A calibration at start-up sees one moment, so the local embedder keeps one engine per thread
count (the same model, the same vectors) and lets `ThreadSwitch` pick for each sub-batch.

Per length bucket, the switch keeps each thread count's wall-clock seconds per padded token
(`len(sub-batch) x longest`) over its recent sub-batches, each weighing by its tokens (a small
remainder sub-batch runs less efficiently, and should not decide alone); the first sub-batch of each is not counted (a session's
first run of a shape allocates). It runs the faster one; the other is tried again once its figure
is `explore_after` seconds old, an interval that doubles (up to `explore_max`) each time the try
confirms it slower, so trying costs at most a few percent, and resets when it wins; or at once
when the one running has become slower than the other's last figure. A thread count must be
faster by `hysteresis` to take over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class _Figure:
    seconds: float  # decayed sums over recent sub-batches
    tokens: float
    measured_at: float

    @property
    def seconds_per_token(self) -> float:
        return self.seconds / self.tokens


class ThreadSwitch:
    """Picks one of `threads` per sub-batch of a length bucket (module doc); `threads[0]` first."""

    def __init__(self, threads: Sequence[int], *, explore_after: float = 10.0, explore_max: float = 120.0,
                 hysteresis: float = 0.1, smoothing: float = 0.5, clock: Callable[[], float] = time.monotonic):
        if not threads:
            raise ValueError("a switch needs at least one thread count")
        self.threads = tuple(threads)
        self.explore_after = explore_after
        self.explore_max = explore_max
        self.hysteresis = hysteresis
        self.smoothing = smoothing
        self.clock = clock
        self._figures: dict[tuple[int, int], _Figure] = {}
        self._warm: set[tuple[int, int]] = set()
        self._current: dict[int, int] = {}
        self._interval: dict[tuple[int, int], float] = {}

    def pick(self, bucket: int) -> int:
        """The thread count for the next sub-batch of `bucket`."""
        current = self._current.setdefault(bucket, self.threads[0])
        ours = self._figures.get((bucket, current))
        if ours is None:
            return current
        now = self.clock()
        for threads in self.threads:
            if threads == current:
                continue
            figure = self._figures.get((bucket, threads))
            if (figure is None  # never measured in this bucket
                    or now - figure.measured_at >= self._interval.get((bucket, threads), self.explore_after)
                    or figure.seconds_per_token * (1 + self.hysteresis) < ours.seconds_per_token):
                return threads
        return current

    def record(self, bucket: int, threads: int, tokens: int, seconds: float) -> None:
        """A sub-batch of `bucket` ran on `threads` threads: `tokens` padded tokens in `seconds` (wall clock)."""
        if tokens <= 0 or seconds <= 0:
            return
        now = self.clock()
        key = (bucket, threads)
        if key not in self._warm:  # a first run allocates: not a fair figure
            self._warm.add(key)
            return
        old = self._figures.get(key)
        fresh = old is None or now - old.measured_at >= self.explore_after  # an old figure says little now
        if fresh:
            figure = _Figure(seconds, tokens, now)
        else:
            keep = 1 - self.smoothing
            figure = _Figure(keep * old.seconds + seconds, keep * old.tokens + tokens, now)
        self._figures[key] = figure
        value = figure.seconds_per_token
        current = self._current.setdefault(bucket, self.threads[0])
        if threads == current:
            return
        ours = self._figures.get((bucket, current))
        if ours is None or value * (1 + self.hysteresis) < ours.seconds_per_token:
            self._current[bucket] = threads  # the tried one is faster: run it
            self._interval[(bucket, current)] = self.explore_after
        elif fresh:  # a new try confirms it slower: try it again later, and less often
            self._interval[key] = min(2 * self._interval.get(key, self.explore_after), self.explore_max)

    def current(self, bucket: int) -> int:
        """The thread count `bucket` runs on now (before any sub-batch: the first)."""
        return self._current.get(bucket, self.threads[0])
