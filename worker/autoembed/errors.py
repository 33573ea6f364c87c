"""One exception hierarchy for the whole project."""

from __future__ import annotations


class AutoembedError(Exception):
    """Root of every error autoembed raises on purpose."""


class ConfigError(AutoembedError):
    """Settings, flags or registrations that cannot work (bad DSN, dimension mismatch, ...)."""


class DatabaseUnavailable(AutoembedError):
    """No database could be reached (no DSN given and no dev database running, or it is down)."""


class MigrationError(AutoembedError):
    """A migration file could not be applied, or an applied file was edited afterwards."""


class EmbeddingError(AutoembedError):
    """An embedder failed. `retryable` says whether the same input may succeed later.

    `retry_after` (seconds) is the provider's own hint (HTTP Retry-After), when it gave one.
    `needs_a_human`: the embedder refuses every request until someone changes something (a rejected
    API key); the input is not to blame, so it is retryable, but a drain does not wait for it.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 needs_a_human: bool = False):
        super().__init__(message)
        self.retryable = retryable or needs_a_human
        self.needs_a_human = needs_a_human
        self.retry_after = retry_after
