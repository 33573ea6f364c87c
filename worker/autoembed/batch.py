"""A batch in flight, as the stages pass it along: fetch.py fills it, embed.py adds vectors and
decisions, commit.py applies it. The worker loop runs the stages of consecutive batches concurrently."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from uuid import UUID

import numpy as np

from autoembed import metrics
from autoembed.jobs import RowJobs
from autoembed.store import Failure, Source

log = logging.getLogger(__name__)


@dataclass
class Item:
    """One row to embed: its current content and the hash the write will be guarded by."""

    source: Source
    row: RowJobs
    content: str
    content_hash: UUID


@dataclass(frozen=True)
class Write:
    """A vector to write for a row (None clears it), guarded by the content hash it embeds."""

    row: RowJobs
    content_hash: UUID | None
    vector: np.ndarray | None


@dataclass
class Batch:
    """A batch in flight: rows still to embed, and everything decided so far.

    Its commit removes every message it read: deleted, or archived when it names a row that failed
    for good. Rows that need another attempt go back as new messages (`requeued`).
    """

    msg_ids: list[int] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    archived: set[int] = field(default_factory=set)
    requeued: dict[tuple[int, int, int], list[str]] = field(default_factory=lambda: defaultdict(list))
    writes: dict[int, list[Write]] = field(default_factory=lambda: defaultdict(list))
    sources: dict[int, Source] = field(default_factory=dict)
    claimed: dict[int, list[str]] = field(default_factory=dict)  # source_id -> rows this batch claimed
    failures: dict[int, list[Failure]] = field(default_factory=lambda: defaultdict(list))
    started: float = field(default_factory=time.perf_counter)

    @property
    def size(self) -> int:
        """How many queue messages the batch holds."""
        return len(self.msg_ids)

    def requeue(self, source_id: int, row: RowJobs, attempts: int, delay: int) -> None:
        """Queue `row` again, visible in `delay` seconds, as a job that has had `attempts` attempts."""
        self.requeued[(source_id, attempts, delay)].append(row.pk)

    def fail(self, source: Source, row: RowJobs, content_hash: UUID | None, cls: str, message: str) -> None:
        """Record that `row` failed for good: a failure record, and its messages archived."""
        self.failures[source.id].append(Failure(row.pk, content_hash, cls, message, row.attempt))
        self.archived.update(row.msg_ids)
        metrics.ROWS.labels("failed").inc()
        log.warning("row failed: %s: %s", cls, message, extra={"source_id": source.id, "pk": row.pk})

    def drop(self, row: RowJobs) -> None:
        """Give `row` up without a failure record (its table is gone, or stayed broken): its messages
        are archived."""
        self.archived.update(row.msg_ids)
        metrics.ROWS.labels("dropped").inc()

    def without_writes(self) -> Batch:
        """The rest of the batch once its writes are committed one by one."""
        return replace(self, items=[], writes=defaultdict(list), archived=set(self.archived),
                       requeued=defaultdict(list, {k: list(pks) for k, pks in self.requeued.items()}),
                       failures=defaultdict(list, {s: list(f) for s, f in self.failures.items()}))


def error_class(error: BaseException) -> str:
    """A short name for an error: the underlying cause's class where there is one."""
    cause = error.__cause__
    return type(cause).__name__ if cause is not None else type(error).__name__
