"""Circuit breakers, one per embedder: an embedder that stopped answering costs the rows neither
attempts nor a request each.

A call that fails with an error that may pass (a 5xx, a timeout, a refused connection, a 429) is
followed by one probe: a request for one short text. If the embedder answers it, it works, and the
failure belongs to the rows (or was a blip): they are retried as before and the attempt counts.
If not, the breaker opens: the embedder is taken to be down, its rows go back to the queue with
their attempts untouched, and one probe goes out at growing intervals (backoff_base, doubling, at
most PROBE_MAX s and backoff_max, never sooner than a Retry-After) until one is answered. So an
outage of any length ends with every row embedded, and autoembed.failures only holds rows whose
content the embedder rejected, or kept failing on while it answered probes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: what a probe embeds
PROBE_TEXT = "autoembed probe"
#: the longest wait between probes (s)
PROBE_MAX = 30.0


@dataclass
class Breaker:
    """Whether an embedder is down, since when (time.monotonic()), and when to probe it next."""

    first_wait: float
    max_wait: float
    down_since: float | None = None
    reason: str = ""
    needs_a_human: bool = False  # the last unanswered probe was refused until someone acts (a bad key)
    wait: float = 0.0
    next_probe: float = 0.0

    @property
    def is_open(self) -> bool:
        """True while the embedder is taken to be down."""
        return self.down_since is not None

    def probe_due(self, now: float) -> bool:
        """True when the breaker is open and its next probe may go."""
        return self.is_open and now >= self.next_probe

    def seconds_to_probe(self, now: float) -> int:
        """Whole seconds until the next probe may go (at least 1): how long its rows wait."""
        return max(1, math.ceil(self.next_probe - now))

    def trip(self, reason: str, retry_after: float | None, now: float, needs_a_human: bool = False) -> bool:
        """A probe went unanswered: open the breaker, or double its wait. True when it just opened."""
        self.needs_a_human = needs_a_human
        opened = not self.is_open
        self.wait = self.first_wait if opened else min(self.max_wait, self.wait * 2)
        self.next_probe = now + max(self.wait, retry_after or 0.0)
        self.reason = reason
        if opened:
            self.down_since = now
        return opened

    def close(self, now: float) -> float | None:
        """A probe was answered: close the breaker. Returns how long the embedder was down, if it was."""
        down = None if self.down_since is None else now - self.down_since
        self.down_since = None
        self.reason = ""
        self.needs_a_human = False
        return down


class Breakers:
    """The breaker of each embedder (kind, model, dimensions), made on first use."""

    def __init__(self, backoff_base: float, backoff_max: float):
        self.first_wait = backoff_base
        self.max_wait = max(backoff_base, min(PROBE_MAX, backoff_max))
        self._breakers: dict[tuple[str, str, int], Breaker] = {}

    def get(self, key: tuple[str, str, int]) -> Breaker:
        """The breaker of the embedder `key`."""
        if key not in self._breakers:
            self._breakers[key] = Breaker(self.first_wait, self.max_wait)
        return self._breakers[key]
