"""Retry policy: exponential backoff, honouring a provider's Retry-After; how long the rows of a
source that cannot be served wait before they are looked at again."""

from __future__ import annotations

#: the longest the rows of a source that cannot be served wait before they are looked at again (s)
PARK_MAX = 60.0


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> int:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 1).

    base * 2**(attempt-1), capped at `cap`, never shorter than the provider's `retry_after`.
    """
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(1, int(round(delay)))


def park_delay(cap: float) -> int:
    """Seconds the rows of a source that cannot be served (a model that does not load, a dropped
    column) wait in the queue before the worker looks at them again: `cap`, at most PARK_MAX."""
    return max(1, int(round(min(cap, PARK_MAX))))
