"""Retry policy: exponential backoff, honouring a provider's Retry-After."""

from __future__ import annotations


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> int:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 1).

    base * 2**(attempt-1), capped at `cap`, never shorter than the provider's `retry_after`.
    """
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(1, int(round(delay)))
