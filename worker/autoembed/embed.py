"""Stage 2 of a batch, with no database transaction open: embed the rows grouped by embedder, in
request-sized calls; a permanent error splits a call until the bad row fails alone; a transient
one is retried later or, once the row had its attempts, recorded. Every vector's dimension is
checked against its column, here and, for every source, when the worker starts."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable

from autoembed import metrics
from autoembed.batch import Batch, Item, Write, error_class
from autoembed.embedders import EmbedderCache
from autoembed.embedders.base import Embedder
from autoembed.errors import ConfigError, EmbeddingError
from autoembed.retry import retry_delay
from autoembed.settings import Settings
from autoembed.store import Source

log = logging.getLogger(__name__)


def embed(batch: Batch, embedders: EmbedderCache, settings: Settings) -> None:
    """Embed the batch's rows, grouped by embedder, in calls of at most its max_batch_size."""
    groups: dict[tuple[str, str, int], list[Item]] = defaultdict(list)
    for item in batch.items:
        groups[(item.source.embedder, item.source.model, item.source.dimensions)].append(item)
    for (kind, model, dimensions), group in groups.items():
        try:
            embedder = embedders.get(kind, model, dimensions)
        except ConfigError as exc:
            for item in group:
                batch.fail(item.source, item.row, item.content_hash, "ConfigError", str(exc))
            continue
        step = max(1, embedder.max_batch_size)
        for start in range(0, len(group), step):  # one call per request-sized chunk: a failed
            _embed_group(embedder, group[start:start + step], batch, settings)  # call loses only its own


def _embed_group(embedder: Embedder, group: list[Item], batch: Batch, settings: Settings) -> None:
    """Embed a group; a permanent error splits it in halves so one bad row fails alone."""
    started = time.perf_counter()
    try:
        vectors = embedder.embed([item.content for item in group])
    except EmbeddingError as exc:
        if not exc.retryable and len(group) > 1:
            half = len(group) // 2
            _embed_group(embedder, group[:half], batch, settings)
            _embed_group(embedder, group[half:], batch, settings)
            return
        for item in group:
            retry_or_fail(item, exc, batch, settings)
        return
    metrics.EMBED_SECONDS.observe(time.perf_counter() - started)
    for item, vector in zip(group, vectors, strict=True):
        if len(vector) != item.source.dimensions:
            message = (f"model {item.source.model} returned a {len(vector)}-dimensional vector, "
                       f"the column holds {item.source.dimensions}")
            batch.fail(item.source, item.row, item.content_hash, "DimensionMismatch", message)
            continue
        batch.writes[item.source.id].append(Write(item.row, item.content_hash, vector))


def retry_or_fail(item: Item, exc: EmbeddingError, batch: Batch, settings: Settings) -> None:
    """A retryable error with attempts left queues the row again after a backoff (at least the
    provider's Retry-After); anything else fails it for good."""
    if exc.retryable and item.row.attempt < item.source.max_attempts:
        delay = retry_delay(item.row.attempt, settings.backoff_base, settings.backoff_max, exc.retry_after)
        batch.requeue(item.source.id, item.row, item.row.attempt, delay)
        metrics.ROWS.labels("retried").inc()
        log.info("embedding failed, retrying in %ss: %s", delay, exc,
                 extra={"source_id": item.source.id, "pk": item.row.pk, "attempt": item.row.attempt})
    else:
        batch.fail(item.source, item.row, item.content_hash, error_class(exc), str(exc))


def check_sources(sources: Iterable[Source], embedders: EmbedderCache) -> None:
    """Raise ConfigError naming every source whose embedder cannot be built or cannot fill its column."""
    problems = []
    for source in sources:
        try:
            embedder = embedders.get(source.embedder, source.model, source.dimensions)
        except ConfigError as exc:
            problems.append(f"{source.table_name}: {exc}")
            continue
        if embedder.dimensions != source.dimensions:
            problems.append(
                f"{source.table_name}: model {source.model} makes {embedder.dimensions}-dimensional vectors, "
                f"the column holds {source.dimensions}"
            )
    if problems:
        raise ConfigError("cannot embed these sources:\n  " + "\n  ".join(problems))
