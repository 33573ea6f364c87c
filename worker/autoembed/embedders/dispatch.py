"""One `embed` call to a remote endpoint: request-sized chunks sent concurrently under the pacing
controls (embedders/pacing.py), answers put back in input order.

What happens to a chunk whose request did not succeed:

- refused for overload (429, 503): the concurrency limit halves, and the chunk goes again no
  sooner than the endpoint's Retry-After. New requests wait for it too, unless another request
  succeeds meanwhile (the endpoint is serving again: it limits concurrency, not a time window);
  once a request sent after the refusal succeeds, the refused chunk may go at once too.
  A probe above the known level (pacing.py) duplicates a chunk in flight: its refusal only
  postpones the next probe;
- timed out: the request is abandoned (the server may still be computing it), the limit halves,
  the chunk is cut in halves and the halves go with a timeout fitted to their size. A single text
  that times out `MAX_TIMEOUTS_AT_ONE` times is an error;
- failed in transit (5xx, connection reset, a garbled body): sent again after a short backoff, at
  most `MAX_TRANSIENT_RETRIES` times (`MAX_OVERLOADS` times for refusals);
- rejected (4xx, wrong shape): the call fails with that error; at once if nothing of it was
  answered yet, else once its other requests are in.

A chunk is only sent again once another request of the same call has succeeded: when every
request fails, the endpoint is down or the input is bad, and the error goes to the worker, whose
backoff and attempt counting handle it, after exactly one request per chunk.

The whole call is bounded by `call_seconds` (half the worker's visibility timeout): past it, the
call fails with a retryable error instead of holding its jobs while they become visible again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import Enum

from autoembed.embedders.pacing import ConcurrencyLimiter, RequestSizer, TokenBucket, per_minute_bucket
from autoembed.errors import EmbeddingError

#: a call is cut into at least as many requests as there are free slots, down to this many texts each
MIN_SPREAD_TEXTS = 8
#: OpenAI's cap on the tokens of all inputs of one request (estimated)
MAX_REQUEST_TOKENS = 300_000
#: times one chunk is sent again after an overload, and after a transient failure
MAX_OVERLOADS = 6
MAX_TRANSIENT_RETRIES = 2
#: timeouts of a one-text request before it is an error
MAX_TIMEOUTS_AT_ONE = 2
#: seconds of an RPM or TPM limit that may be spent at once
BURST_SECONDS = 1.0
#: requests each slot carries in one call, once the endpoint's pace is known
CALL_ROUNDS = 8


class Kind(Enum):
    """How a request ended."""

    OK = "ok"
    OVERLOAD = "overload"
    TIMEOUT = "timeout"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass
class Outcome:
    """One request's result, as the sender classified it. `error` is set unless `kind` is OK."""

    kind: Kind
    vectors: list | None = None
    error: EmbeddingError | None = None
    retry_after: float | None = None
    latency: float = 0.0


#: sends texts [start, stop) with a read timeout, never raises
Send = Callable[[int, int, float], Outcome]


def batch_ranges(count: int, size: int, costs: Sequence[int] | None = None,
                 max_cost: int | None = None) -> list[tuple[int, int]]:
    """Split `count` items into consecutive `(start, stop)` ranges of at most `size` items and,
    when `costs` are given, at most `max_cost` summed cost (an item costlier than that alone)."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    ranges, start = [], 0
    while start < count:
        stop, spent = start, 0
        while stop < count and stop - start < size:
            cost = costs[stop] if costs is not None else 0
            if max_cost is not None and stop > start and spent + cost > max_cost:
                break
            spent += cost
            stop += 1
        ranges.append((start, stop))
        start = stop
    return ranges


def retry_backoff(retries: int) -> float:
    """Seconds before sending a chunk again after its `retries`-th failure."""
    return min(5.0, 0.25 * 2 ** max(0, retries - 1))


@dataclass
class _Chunk:
    start: int
    stop: int
    not_before: float = 0.0
    refused_at: float | None = None  # when the endpoint last refused it for overload
    overloads: int = 0
    transient: int = 0
    timeouts: int = 0

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass
class _Sent:
    chunk: _Chunk
    at: float
    level: int  # requests in flight when it was sent, itself included
    timeout: float
    cut_short: bool  # the timeout was shortened to fit the call's deadline
    probe: bool = False  # a duplicate of texts already in flight, sent above the known level


@dataclass
class _Call:
    """The state of one `run`: texts before `cursor` are cut into chunks, the rest not yet."""

    count: int
    deadline: float
    results: list
    cursor: int = 0
    pending: list[_Chunk] = field(default_factory=list)  # chunks to send again (halves, retries)
    in_flight: dict[Future, _Sent] = field(default_factory=dict)
    parked: list[tuple[_Chunk, Outcome]] = field(default_factory=list)
    answered: bool = False  # some request of this call succeeded
    failed: list[EmbeddingError] = field(default_factory=list)  # chunks given up while others were answered

    def done_texts(self) -> int:
        return sum(1 for vector in self.results if vector is not None)


class Dispatcher:
    """Sends the requests of `embed` calls concurrently; keeps what it learns between calls."""

    def __init__(self, *, max_concurrency: int, max_request_texts: int, timeout_floor: float,
                 call_seconds: float, rpm: int | None = None, tpm: int | None = None,
                 describe: Callable[[str], EmbeddingError] | None = None):
        """`describe(message)` builds the error for failures of the call itself (out of time)."""
        self.limiter = ConcurrencyLimiter(max_concurrency)
        self.sizer = RequestSizer(max_request_texts, timeout_floor)
        self.call_seconds = call_seconds
        self._requests: TokenBucket | None = per_minute_bucket(rpm, 0) if rpm else None
        self._tokens: TokenBucket | None = per_minute_bucket(tpm, BURST_SECONDS) if tpm else None
        self._describe = describe or (lambda message: EmbeddingError(message, retryable=True))
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="embed-request")
        self._lock = threading.Lock()
        self._stale: set[Future] = set()  # requests of a failed call that are still running
        self._pause_until = 0.0
        self._texts_per_second: float | None = None

    def call_size(self) -> int:
        """Texts per call that keep every allowed request slot busy for `CALL_ROUNDS` requests
        (a call waits for its slowest request: more rounds, less idle time at its end), and that
        the endpoint's measured pace gets through in well under `call_seconds`. Small until the
        endpoint has answered: a CPU server may take seconds per text."""
        size = self.limiter.limit * self.sizer.size * (CALL_ROUNDS if self._texts_per_second else 1)
        if self._texts_per_second is not None:
            size = min(size, max(self.sizer.size, int(self._texts_per_second * self.call_seconds / 2)))
        return max(1, size)

    def close(self) -> None:
        """Stop the request threads (requests in flight finish on their own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run(self, count: int, send: Send, costs: Sequence[int],
            keep: Callable[[int, object], None] | None = None) -> list:
        """The vectors of texts 0..count-1 in order; `costs[i]` is text i's estimated tokens.
        Raises the EmbeddingError that ended the call, after handing `keep(i, vector)` each vector
        the call got nonetheless (so that the texts its other requests had answered need not go again)."""
        with self._lock:
            started = time.monotonic()
            call = _Call(count, started + self.call_seconds, [None] * count)
            try:
                self._drive(call, send, costs)
            except EmbeddingError:
                for index, vector in enumerate(call.results):
                    if vector is not None and keep is not None:
                        keep(index, vector)
                raise
            finally:
                self._stale.update(call.in_flight)
                self._observe_pace(call.done_texts(), time.monotonic() - started)
            return call.results

    def _observe_pace(self, texts: int, seconds: float) -> None:
        """Texts per second over calls, failed ones included (a call that ran out of time tells
        how much less the next one should carry)."""
        if texts == 0 and seconds < 1.0:
            return  # failed at once: says nothing about the pace
        rate = texts / max(seconds, 1e-6)
        self._texts_per_second = rate if self._texts_per_second is None else (
            0.5 * rate + 0.5 * self._texts_per_second)

    # -- the loop ------------------------------------------------------------------------------

    def _drive(self, call: _Call, send: Send, costs: Sequence[int]) -> None:
        while call.pending or call.cursor < call.count or self._regular(call):
            now = time.monotonic()
            if now >= call.deadline and not call.in_flight:
                raise self._out_of_time(call, retry_after=None)
            wake = self._send_ready(call, send, costs, now)
            running = set(call.in_flight) | self._stale  # a failed call's requests still hold slots
            if not running:
                if wake is None or wake >= call.deadline:
                    raise self._out_of_time(call, retry_after=None if wake is None else wake - now)
                time.sleep(max(0.0, wake - now))
                continue
            if wake is None and not call.in_flight:
                wake = call.deadline  # only stale requests: wait for a slot, not past the deadline
            timeout = None if wake is None else max(0.0, wake - now)
            finished, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in finished:
                if future in call.in_flight:
                    self._settle(call, call.in_flight.pop(future), future.result())
        # A probe still out duplicates texts the call has: leave it to finish on its own.
        self._stale.update(call.in_flight)
        call.in_flight.clear()
        if call.parked:
            raise call.parked[0][1].error
        if call.failed:
            raise call.failed[0]

    def _send_ready(self, call: _Call, send: Send, costs: Sequence[int], now: float) -> float | None:
        """Send every chunk that may go now; returns when the next may go (None: a slot must free)."""
        self._stale = {future for future in self._stale if not future.done()}
        while call.pending or call.cursor < call.count:
            if self._regular(call) + len(self._stale) >= self.limiter.limit:
                self._probe(call, send, now)
                return None
            ready = [chunk for chunk in call.pending if chunk.not_before <= now]
            if now < self._pause_until or not (ready or call.cursor < call.count):
                return max(self._pause_until, min((chunk.not_before for chunk in call.pending), default=now))
            free = self.limiter.limit - self._regular(call) - len(self._stale)
            chunk = ready[0] if ready else self._cut(call, costs, free)
            tokens = sum(costs[chunk.start:chunk.stop])
            waits = [bucket.wait(amount, now) for bucket, amount in ((self._requests, 1), (self._tokens, tokens))
                     if bucket is not None]
            if max(waits, default=0.0) > 0:
                return now + max(waits)
            for bucket, amount in ((self._requests, 1), (self._tokens, tokens)):
                if bucket is not None:
                    bucket.take(amount, now)
            if ready:
                call.pending.remove(chunk)
            else:
                call.cursor = chunk.stop
            fitted = self.sizer.timeout(chunk.size)
            timeout = min(fitted, max(0.01, call.deadline - now))
            level = len(call.in_flight) + len(self._stale) + 1
            future = self._pool.submit(send, chunk.start, chunk.stop, timeout)
            call.in_flight[future] = _Sent(chunk, now, level, timeout, cut_short=timeout < fitted)
        return None

    @staticmethod
    def _regular(call: _Call) -> int:
        """Requests of the call in flight, probes aside."""
        return sum(not sent.probe for sent in call.in_flight.values())

    def _probe(self, call: _Call, send: Send, now: float) -> None:
        """Every regular slot is busy: if the limiter may probe above the known level, send one
        extra request duplicating the chunk sent last, so that its refusal costs nothing."""
        if not self.limiter.probing(now) or any(sent.probe for sent in call.in_flight.values()):
            return
        last = max((sent for sent in call.in_flight.values()), key=lambda sent: sent.at, default=None)
        if last is None:
            return
        chunk = _Chunk(last.chunk.start, last.chunk.stop)
        timeout = self.sizer.timeout(chunk.size)
        level = len(call.in_flight) + len(self._stale) + 1
        future = self._pool.submit(send, chunk.start, chunk.stop, timeout)
        call.in_flight[future] = _Sent(chunk, now, level, timeout, cut_short=False, probe=True)

    def _cut(self, call: _Call, costs: Sequence[int], free: int) -> _Chunk:
        """The next chunk of texts not sent yet, at the request size learnt so far; when fewer
        texts are left than the `free` request slots could carry, spread them over those slots
        (unless requests per minute are limited)."""
        left = call.count - call.cursor
        size = self.sizer.size
        if self._requests is None:
            size = min(size, max(MIN_SPREAD_TEXTS, -(-left // max(1, free))))
        start, stop = batch_ranges(left, size, costs[call.cursor:], MAX_REQUEST_TOKENS)[0]
        return _Chunk(call.cursor + start, call.cursor + stop)

    def _settle(self, call: _Call, sent: _Sent, outcome: Outcome) -> None:
        chunk, now = sent.chunk, time.monotonic()
        if sent.probe:  # its texts went in another request too: only what it says about the level counts
            if outcome.kind is Kind.OK:
                self.limiter.on_success(sent.level, outcome.latency, now, probe=True)
            else:
                self.limiter.on_probe_refused(now)
            return
        if outcome.kind is Kind.OK:
            call.results[chunk.start:chunk.stop] = outcome.vectors
            call.answered = True
            self._pause_until = 0.0
            self.limiter.on_success(sent.level, outcome.latency, now)
            self.sizer.on_success(chunk.size, outcome.latency)
            for waiting in call.pending:  # the endpoint took a request sent after it refused these
                if waiting.refused_at is not None and waiting.refused_at < sent.at:
                    waiting.not_before, waiting.refused_at = min(waiting.not_before, now), None
            for parked, _ in call.parked:
                parked.not_before = max(parked.not_before, now + retry_backoff(1))
                call.pending.append(parked)
            call.parked.clear()
        elif outcome.kind is Kind.PERMANENT:
            self._give_up(call, outcome.error)
        elif outcome.kind is Kind.OVERLOAD:
            self.limiter.on_overload(self._level_now(call), now, round_trip=now - sent.at)
            chunk.overloads += 1
            wait_s = outcome.retry_after if outcome.retry_after is not None else retry_backoff(chunk.overloads)
            chunk.not_before, chunk.refused_at = now + wait_s, now
            self._pause_until = max(self._pause_until, chunk.not_before)
            self._again(call, chunk, outcome, chunk.overloads > MAX_OVERLOADS)
        elif outcome.kind is Kind.TIMEOUT:
            if sent.cut_short:
                raise self._out_of_time(call, retry_after=None)
            self.limiter.on_overload(self._level_now(call), now, round_trip=sent.timeout)
            self.sizer.on_timeout(chunk.size, sent.timeout)
            if chunk.size > 1:
                middle = (chunk.start + chunk.stop) // 2
                call.pending[:0] = [_Chunk(chunk.start, middle), _Chunk(middle, chunk.stop)]
            else:
                chunk.timeouts += 1
                self._again(call, chunk, outcome, chunk.timeouts >= MAX_TIMEOUTS_AT_ONE)
        else:  # TRANSIENT
            chunk.transient += 1
            chunk.not_before = now + retry_backoff(chunk.transient)
            self._again(call, chunk, outcome, chunk.transient > MAX_TRANSIENT_RETRIES)

    def _level_now(self, call: _Call) -> int:
        """The requests in flight now, plus the one that just failed. Requests sent in a burst reach
        the endpoint in any order, so the level a refused one was sent at says less about the
        endpoint's capacity than how many others it is serving when it refuses one."""
        return len(call.in_flight) + sum(not future.done() for future in self._stale) + 1

    def _again(self, call: _Call, chunk: _Chunk, outcome: Outcome, exhausted: bool) -> None:
        """Send `chunk` again if the call is getting answers; park it until one comes otherwise."""
        if exhausted:
            self._give_up(call, outcome.error)
        elif call.answered:
            call.pending.append(chunk)
        else:
            call.parked.append((chunk, outcome))

    @staticmethod
    def _give_up(call: _Call, error: EmbeddingError) -> None:
        """A chunk failed for good. While the call is getting answers the fault is the chunk's
        (a text the endpoint rejects, bad luck): the call goes on, and raises `error` at its end,
        when every answer it could get is in. Otherwise the endpoint refuses everything: raise now."""
        if not call.answered:
            raise error
        call.failed.append(error)

    def _out_of_time(self, call: _Call, retry_after: float | None) -> EmbeddingError:
        error = self._describe(
            f"gave up after {self.call_seconds:g} s (half the visibility timeout) with "
            f"{call.done_texts()} of {call.count} texts embedded"
        )
        error.retry_after = retry_after
        return error
