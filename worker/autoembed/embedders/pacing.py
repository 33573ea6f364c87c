"""How hard to drive a remote embedding endpoint: requests in flight, texts per request, request
timeouts, and requests/tokens per minute. Pure state machines over a caller-supplied clock; the
dispatcher (embedders/dispatch.py) consults them and reports every outcome back.

- `ConcurrencyLimiter`: AIMD. The limit grows by one per answer to a request sent while at least
  half of it was in use, so it about doubles per round trip until the endpoint first pushes
  back (slow start), is halved when it does (429, 503, a timeout), and climbs straight back to the
  highest level that worked. Above that level it probes, `PROBE_BASE_S` after the push-back: one
  extra request that duplicates texts already in flight, so a refused probe delays nothing; once
  `PROBE_CONFIRMATIONS` probes succeeded, the level is raised by one and the next is probed.
  After a refused probe the next waits twice as long.
- `RequestSizer`: requests start at `INITIAL_REQUEST_TEXTS` texts and double while they answer
  within `TARGET_REQUEST_S`; from the measured seconds per text it sizes requests to take about that
  long (a CPU server at 1 s per text gets ~5 texts a request, a fast API the configured maximum).
  The timeout is derived from the same estimate with a generous floor; a timed-out size is halved.
- `TokenBucket`: requests-per-minute and tokens-per-minute limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: requests in flight before the endpoint has answered anything
INITIAL_CONCURRENCY = 2
#: a request that took longer than this does not let the concurrency limit grow
GROWTH_LATENCY_S = 10.0
#: first wait before probing above the highest concurrency that worked; doubles per refused probe
PROBE_BASE_S = 5.0
PROBE_MAX_S = 600.0
#: answered probes that confirm a level (one probe is in flight at a time: about one a round trip)
PROBE_CONFIRMATIONS = 2
#: texts in the first request to an endpoint
INITIAL_REQUEST_TEXTS = 8
#: requests are sized to take about this long
TARGET_REQUEST_S = 5.0
#: a request's timeout is at least this many times its expected duration
TIMEOUT_FACTOR = 4.0
#: weight of the newest measurement in the seconds-per-text average
EWMA_WEIGHT = 0.3


class ConcurrencyLimiter:
    """The number of requests allowed in flight, adapted from what the endpoint answers."""

    def __init__(self, max_limit: int, *, initial: int = INITIAL_CONCURRENCY):
        """`max_limit` is the hard ceiling (AUTOEMBED_OPENAI_MAX_CONCURRENCY)."""
        self.max_limit = max_limit
        self._limit = float(min(initial, max_limit))
        self._ceiling: int | None = None  # highest level known to work, once the endpoint pushed back
        self._probe_after = 0.0
        self._probe_wait = PROBE_BASE_S
        self._probe_successes = 0
        self._episode_end = -math.inf  # overloads before this belong to the last decrease

    @property
    def limit(self) -> int:
        """Requests (probes aside) that may be in flight now."""
        limit = max(1, int(self._limit))
        return limit if self._ceiling is None else min(limit, self._ceiling)

    @property
    def ceiling(self) -> int | None:
        """The highest concurrency known to work since the endpoint pushed back (None: it never did)."""
        return self._ceiling

    def probing(self, now: float) -> bool:
        """Whether one probe may go above the known level now (the limit is back up to it)."""
        return (self._ceiling is not None and self._ceiling < self.max_limit and now >= self._probe_after
                and int(self._limit) >= self._ceiling)

    def on_success(self, level: int, latency: float, now: float, *, probe: bool = False) -> None:
        """A request sent with `level` requests in flight (itself included) answered after `latency` s.

        A probe's answer counts towards the next level: after `PROBE_CONFIRMATIONS` of them, that
        level is known to work and the one above is probed at once."""
        if probe:
            self._probe_successes += 1
            if self._ceiling is not None and self._probe_successes >= PROBE_CONFIRMATIONS:
                self._ceiling, self._probe_successes = self._ceiling + 1, 0
                self._limit = float(self._ceiling)
                self._probe_wait = PROBE_BASE_S
            return
        if latency > GROWTH_LATENCY_S or 2 * level < self.limit:
            return  # too slow to add load, or the limit was not half in use: nothing learned
        cap = self.max_limit if self._ceiling is None else self._ceiling
        self._limit = min(float(cap), self._limit + 1.0)

    def on_probe_refused(self, now: float) -> None:
        """A probe above the known level was refused: it stays the level; probe again later, each
        time twice as late."""
        self._probe_successes = 0
        self._probe_wait = min(PROBE_MAX_S, self._probe_wait * 2)
        self._probe_after = now + self._probe_wait

    def on_overload(self, level: int, now: float, round_trip: float) -> None:
        """The endpoint refused or dropped a request (429, 503, a timeout) while `level` requests,
        that one included, were in flight.

        The limit halves once per round trip, and never stays above the level the endpoint just
        showed it serves (the other refusals of the same burst only lower that level). Probing
        above it resumes after `PROBE_BASE_S`.
        """
        known_good = max(1, level - 1)
        if now < self._episode_end:
            self._ceiling = min(self._ceiling or known_good, known_good)
            return
        self._ceiling = known_good if self._ceiling is None else min(self._ceiling, known_good)
        self._limit = max(1.0, min(self._limit / 2, float(self._ceiling)))
        self._episode_end = now + max(round_trip, 0.05)
        self._probe_successes = 0
        self._probe_wait = PROBE_BASE_S
        self._probe_after = now + PROBE_BASE_S


class RequestSizer:
    """Texts per request and the timeout of each request, from the seconds per text measured."""

    def __init__(self, max_texts: int, timeout_floor: float, *, initial: int = INITIAL_REQUEST_TEXTS):
        """`max_texts` (AUTOEMBED_OPENAI_BATCH_SIZE) caps a request; `timeout_floor`
        (AUTOEMBED_OPENAI_TIMEOUT) is the shortest timeout ever used."""
        self.max_texts = max_texts
        self.timeout_floor = timeout_floor
        self._size = max(1, min(max_texts, initial))
        self._per_text: float | None = None

    @property
    def size(self) -> int:
        """Texts in the next request."""
        return self._size

    @property
    def seconds_per_text(self) -> float | None:
        """The running estimate, None before the first answer."""
        return self._per_text

    def expected_seconds(self, texts: int) -> float | None:
        """How long a request of `texts` should take, None while unknown."""
        return None if self._per_text is None else self._per_text * texts

    def timeout(self, texts: int) -> float:
        """The read timeout for a request of `texts`: the floor, or a multiple of its expected time."""
        expected = self.expected_seconds(texts)
        return self.timeout_floor if expected is None else max(self.timeout_floor, TIMEOUT_FACTOR * expected)

    def on_success(self, texts: int, latency: float) -> None:
        """A request of `texts` answered after `latency` s: update the estimate and the size."""
        per_text = max(latency, 1e-6) / texts
        self._per_text = per_text if self._per_text is None else (
            EWMA_WEIGHT * per_text + (1 - EWMA_WEIGHT) * self._per_text)
        fitting = max(1, int(TARGET_REQUEST_S / self._per_text))
        grown = self._size * 2 if texts >= self._size else self._size
        self._size = max(1, min(self.max_texts, fitting, grown))

    def on_timeout(self, texts: int, timeout: float) -> None:
        """A request of `texts` got no answer within `timeout` s: that size is too big for now."""
        self._size = max(1, min(self._size, texts // 2))
        floor_per_text = timeout / texts  # it took longer than this per text, at least
        self._per_text = max(self._per_text or 0.0, floor_per_text)


@dataclass
class TokenBucket:
    """`rate` units per second, at most `burst` saved up. A take larger than the burst waits for a
    full bucket and leaves it in debt, which the next take waits out."""

    rate: float
    burst: float
    level: float = math.nan
    updated: float = math.nan

    def __post_init__(self) -> None:
        if math.isnan(self.level):
            self.level = self.burst

    def _refill(self, now: float) -> None:
        if not math.isnan(self.updated):
            self.level = min(self.burst, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait(self, amount: float, now: float) -> float:
        """Seconds until `amount` units can be taken (0: now)."""
        self._refill(now)
        missing = min(amount, self.burst) - self.level
        return 0.0 if missing <= 1e-9 else missing / self.rate

    def take(self, amount: float, now: float) -> None:
        """Spend `amount` units."""
        self._refill(now)
        self.level -= amount


def per_minute_bucket(per_minute: float, burst_seconds: float) -> TokenBucket:
    """A bucket for a per-minute limit whose burst is `burst_seconds` of it (at least one unit)."""
    rate = per_minute / 60.0
    return TokenBucket(rate=rate, burst=max(1.0, rate * burst_seconds))
