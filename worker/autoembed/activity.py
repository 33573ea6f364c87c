"""What the worker tells its log about the work it does: one INFO line per committed batch, counted
from the Batch itself, and a summary when a drain (`autoembed worker --drain`) ends, from the
process's row counters."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from autoembed import metrics
from autoembed.batch import Batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchCounts:
    """The rows of one batch by what became of them. `read`: rows its messages named that it took
    on (`waiting` of them were being embedded by another batch and wait their turn); `skipped`:
    deleted, up to date already, or given up because their table is gone."""

    read: int
    embedded: int
    skipped: int
    failed: int
    retried: int
    waiting: int


def batch_counts(batch: Batch) -> BatchCounts:
    """Count a batch's rows from what it decided: written vectors, failure records, requeued rows
    (claimed ones are retries, unclaimed ones wait for another batch) and the rest of its claims."""
    claimed = {(source_id, pk) for source_id, pks in batch.claimed.items() for pk in pks}
    requeued = {(source_id, pk) for (source_id, _attempts, _delay), pks in batch.requeued.items() for pk in pks}
    failed = {(source_id, f.pk) for source_id, failures in batch.failures.items() for f in failures}
    embedded = {(source_id, w.row.pk) for source_id, writes in batch.writes.items() for w in writes
                if w.vector is not None} - failed
    retried = requeued & claimed
    waiting = requeued - claimed
    return BatchCounts(read=len(claimed) + len(waiting), embedded=len(embedded),
                       skipped=len(claimed - embedded - failed - retried), failed=len(failed),
                       retried=len(retried), waiting=len(waiting))


def log_batch(batch: Batch) -> None:
    """One INFO line for a committed batch: its rows by outcome, its messages, the time its
    embedding took and its whole time (fetch to commit), as fields."""
    embed_ms = round(batch.embed_seconds * 1000)
    total_ms = round((time.perf_counter() - batch.started) * 1000)
    log.info("batch committed", extra={**asdict(batch_counts(batch)), "messages": batch.size,
                                       "embed_ms": embed_ms, "total_ms": total_ms})


def log_drain(seconds: float, stopped: bool = False) -> None:
    """The summary of a drain that took `seconds` (`stopped`: by a signal, before the queue was
    empty): this process's rows by outcome, its batches, its rate, and where to look when rows failed."""
    rows = metrics.row_counts()
    rate = round(rows["embedded"] / seconds, 1) if seconds > 0 else 0.0
    log.info(("drain stopped" if stopped else "drain finished")
             + ("; some rows failed: see `autoembed failures`" if rows["failed"] else ""),
             extra={**rows, "batches": metrics.batches(), "seconds": round(seconds, 3), "rows_per_second": rate})
