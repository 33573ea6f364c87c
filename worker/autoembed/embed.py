"""Stage 2 of a batch, with no database transaction open: embed the rows grouped by embedder, in
request-sized calls.

- A permanent error splits a call until the bad row fails alone.
- A transient one is followed by a probe (breaker.py). Answered, the embedder works: the call is
  split the same way while the batch has time, and a row failing alone is retried later (the
  attempt counts) or, once it had its attempts, recorded. Unanswered, the embedder is down: its
  rows wait in the queue, attempts untouched, until a probe is answered. An embedder that refuses
  every request until someone acts (a rejected API key) is down the same way, and a drain ends
  (SourcesNotServed) instead of waiting for it.
- A source whose embedder cannot be built, or makes vectors of another dimension than its column's,
  cannot be served: its rows wait in the queue, and the problem is reported for autoembed.status;
  the other sources are served as usual. The same check runs for every source at start-up.
- Every vector is checked: one of the wrong length, with a value that is not finite, or all zeros
  (its cosine distance to anything is NaN) fails its row and is not written.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from autoembed import metrics
from autoembed.batch import Batch, Item, Write, error_class
from autoembed.breaker import PROBE_TEXT, Breaker, Breakers
from autoembed.embedders import EmbedderCache
from autoembed.embedders.base import Embedder
from autoembed.errors import ConfigError, EmbeddingError
from autoembed.passages import embed_items
from autoembed.retry import park_delay, retry_delay
from autoembed.settings import Settings
from autoembed.store import Source

log = logging.getLogger(__name__)


def embed(batch: Batch, embedders: EmbedderCache, breakers: Breakers, settings: Settings) -> None:
    """Embed the batch's rows, grouped by embedder, in calls of at most its max_batch_size."""
    started = time.perf_counter()
    groups: dict[tuple[str, str, int], list[Item]] = defaultdict(list)
    for item in batch.items:
        groups[(item.source.embedder, item.source.model, item.source.dimensions)].append(item)
    for key, group in groups.items():
        embedder, problem = embedder_for(key, embedders)
        if problem is not None:
            log.error("cannot embed with %s model %s: %s", key[0], key[1], problem,
                      extra={"sources": sorted({item.source.id for item in group})})
            _park(group, batch, park_delay(settings.backoff_max), f"broken: {problem}", lasting=True)
            continue
        calls = _Calls(embedder, breakers.get(key), batch, settings,
                       deadline=batch.started + settings.visibility_timeout / 2)
        step = max(1, embedder.max_batch_size)
        for start in range(0, len(group), step):  # one call per request-sized chunk: a failed
            calls.embed(group[start:start + step])  # call loses only its own
    batch.embed_seconds = time.perf_counter() - started


def embedder_for(key: tuple[str, str, int], embedders: EmbedderCache) -> tuple[Embedder | None, str | None]:
    """The embedder (kind, model, dimensions) and None, or None and why it cannot fill such a column."""
    kind, model, dimensions = key
    try:
        embedder = embedders.get(kind, model, dimensions)
    except ConfigError as exc:
        return None, str(exc)
    if embedder.dimensions != dimensions:
        return None, f"model {model} makes {embedder.dimensions}-dimensional vectors, the column holds {dimensions}"
    return embedder, None


def source_problems(sources: Iterable[Source], embedders: EmbedderCache) -> dict[Source, str]:
    """Each source whose embedder cannot be built or cannot fill its column, with why."""
    problems = {}
    for source in sources:
        _, problem = embedder_for((source.embedder, source.model, source.dimensions), embedders)
        if problem is not None:
            problems[source] = problem
    return problems


def check_sources(sources: Iterable[Source], embedders: EmbedderCache) -> None:
    """Raise ConfigError naming every source whose embedder cannot be built or cannot fill its column."""
    problems = source_problems(sources, embedders)
    if problems:
        raise ConfigError("cannot embed these sources:\n  " + "\n  ".join(
            f"{source.table_name}: {problem}" for source, problem in problems.items()))


def _park(items: list[Item], batch: Batch, delay: int, problem: str, lasting: bool) -> None:
    """Send the items' rows back to the queue, attempts untouched, and report why for their sources."""
    for item in items:
        batch.park(item.source.id, item.row, delay)
        batch.report(item.source, problem, lasting)


@dataclass
class _Calls:
    """The calls of one embedder for one batch."""

    embedder: Embedder
    breaker: Breaker
    batch: Batch
    settings: Settings
    deadline: float  # time.perf_counter(): past it, a transiently failing call is not split further

    def embed(self, items: list[Item]) -> None:
        """Embed `items` in one call; on an error, split it or retry its rows later (module doc)."""
        if self.breaker.is_open and not (self.breaker.probe_due(time.monotonic()) and self._probe()):
            self._wait(items)
            return
        started = time.perf_counter()
        try:
            embedded = embed_items(self.embedder, items)  # prompts, chunks, the model's window
        except EmbeddingError as exc:
            self._failed(items, exc)
            return
        metrics.EMBED_SECONDS.observe(time.perf_counter() - started)
        for item, done in zip(items, embedded, strict=True):
            problem = _vector_problem(done.vector, item.source)
            if problem is None:
                self.batch.writes[item.source.id].append(Write(item.row, item.content_hash, done.vector, done.chunks))
            else:  # not written, and the vector of the row's older content goes too
                self.batch.writes[item.source.id].append(Write(item.row, item.content_hash, None))
                self.batch.fail(item.source, item.row, item.content_hash, *problem)

    def _failed(self, items: list[Item], exc: EmbeddingError) -> None:
        if exc.retryable and not self._probe():  # the embedder is down: the rows are not to blame
            self._wait(items)
            return
        if len(items) > 1 and (not exc.retryable or time.perf_counter() < self.deadline):
            half = len(items) // 2
            self.embed(items[:half])
            self.embed(items[half:])
            return
        log.warning("embedding failed for %d row(s), each retried later or failed: %s", len(items), exc,
                    extra={"sources": sorted({item.source.id for item in items}), "retryable": exc.retryable})
        for item in items:
            retry_or_fail(item, exc, self.batch, self.settings)

    def _wait(self, items: list[Item]) -> None:
        """Park the rows until the next probe may go."""
        _park(items, self.batch, self.breaker.seconds_to_probe(time.monotonic()),
              f"embedder unavailable: {self.breaker.reason}", lasting=self.breaker.needs_a_human)

    def _probe(self) -> bool:
        """One probe request. Answered (even refused: the embedder is there), the breaker closes and
        True is returned; unanswered, the breaker opens, or its wait doubles, and False is returned."""
        try:
            self.embedder.embed([PROBE_TEXT])
            metrics.PROBES.labels("answered").inc()
        except EmbeddingError as exc:
            if exc.retryable:
                metrics.PROBES.labels("unanswered").inc()
                if self.breaker.trip(str(exc), exc.retry_after, time.monotonic(), exc.needs_a_human):
                    log.error("embedder %s/%s unavailable, its rows wait in the queue; probing: %s",
                              self.embedder.kind, self.embedder.model, exc)
                return False
            metrics.PROBES.labels("refused").inc()
        down = self.breaker.close(time.monotonic())
        if down is not None:
            log.warning("embedder %s/%s available again after %.1f s", self.embedder.kind, self.embedder.model, down)
        return True


def _vector_problem(vector: np.ndarray, source: Source) -> tuple[str, str] | None:
    """(error class, message) when `vector` must not be written to the source's column."""
    if len(vector) != source.dimensions:
        return "DimensionMismatch", (f"model {source.model} returned a {len(vector)}-dimensional vector, "
                                     f"the column holds {source.dimensions}")
    if not np.isfinite(vector).all():
        return "NonFiniteVector", f"model {source.model} returned a vector with NaN or infinite values"
    if not vector.any():
        return "ZeroVector", (f"model {source.model} returned a zero vector for this content: its distance "
                              "to any query would be undefined (NaN under cosine)")
    return None


def retry_or_fail(item: Item, exc: EmbeddingError, batch: Batch, settings: Settings) -> None:
    """A retryable error with attempts left queues the row again after a backoff (at least the
    provider's Retry-After); anything else fails it for good."""
    if exc.retryable and item.row.attempt < item.source.max_attempts:
        delay = retry_delay(item.row.attempt, settings.backoff_base, settings.backoff_max, exc.retry_after)
        batch.requeue(item.source.id, item.row, item.row.attempt, delay)
        metrics.ROWS.labels("retried").inc()
        log.debug("embedding failed, retrying in %ss: %s", delay, exc,
                 extra={"source_id": item.source.id, "pk": item.row.pk, "attempt": item.row.attempt})
    else:
        batch.fail(item.source, item.row, item.content_hash, error_class(exc), str(exc))
