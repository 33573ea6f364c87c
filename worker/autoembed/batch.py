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
from autoembed.store import Failure, Source, StoredChunk

log = logging.getLogger(__name__)


@dataclass
class Item:
    """One row to embed: its current content and the hash the write will be guarded by."""

    source: Source
    row: RowJobs
    content: str
    content_hash: UUID
    #: of a chunked source: the vectors the row's chunks have now, by chunk text hash (reused)
    previous_chunks: dict[UUID, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Write:
    """A vector to write for a row (None clears it), guarded by the content hash it embeds."""

    row: RowJobs
    content_hash: UUID | None
    vector: np.ndarray | None
    #: of a chunked source: the row's chunks, which replace those it has (None: not chunked)
    chunks: tuple[StoredChunk, ...] | None = None


@dataclass
class Batch:
    """A batch in flight: rows still to embed, and everything decided so far.

    Its commit removes every message it read: deleted, or archived when it names a row that failed
    for good or is poison. Rows that need another attempt, or wait for their source or embedder to
    work again, go back as new messages (`requeued`). `problems`: what the batch found wrong with a
    source (source_id -> state for autoembed.status).
    """

    msg_ids: list[int] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    archived: set[int] = field(default_factory=set)
    requeued: dict[tuple[int, int, int], list[str]] = field(default_factory=lambda: defaultdict(list))
    writes: dict[int, list[Write]] = field(default_factory=lambda: defaultdict(list))
    sources: dict[int, Source] = field(default_factory=dict)
    claimed: dict[int, list[str]] = field(default_factory=dict)  # source_id -> rows this batch claimed
    failures: dict[int, list[Failure]] = field(default_factory=lambda: defaultdict(list))
    problems: dict[int, str] = field(default_factory=dict)
    unservable: set[int] = field(default_factory=set)  # sources with a lasting problem
    started: float = field(default_factory=time.perf_counter)
    embed_seconds: float = 0.0  # how long its embedding stage took (embed.py)

    @property
    def size(self) -> int:
        """How many queue messages the batch holds."""
        return len(self.msg_ids)

    def requeue(self, source_id: int, row: RowJobs, attempts: int, delay: int) -> None:
        """Queue `row` again, visible in `delay` seconds, as a job that has had `attempts` attempts."""
        self.requeued[(source_id, attempts, delay)].append(row.pk)

    def fail(self, source: Source, row: RowJobs, content_hash: UUID | None, cls: str, message: str) -> None:
        """Record that `row` failed for good: a failure record, and its messages archived."""
        self.failures[source.id].append(Failure(row.pk, content_hash, storable(cls), storable(message), row.attempt))
        self.archived.update(row.msg_ids)
        metrics.ROWS.labels("failed").inc()
        log.warning("row failed: %s: %s", cls, message,
                    extra={"source_id": source.id, "table": source.table_name, "pk": row.pk})

    def park(self, source_id: int, row: RowJobs, delay: int) -> None:
        """Queue `row` again, visible in `delay` seconds, without counting this attempt: its source
        cannot be served or its embedder is down, which says nothing about the row."""
        self.requeue(source_id, row, row.attempt - 1, delay)
        metrics.ROWS.labels("parked").inc()

    def drop(self, rows: list[RowJobs], why: str) -> None:
        """Give `rows` up without a failure record (their table is gone, their source is not watched,
        their keys name no row that can exist): their messages are archived, with one log line."""
        for row in rows:
            self.archived.update(row.msg_ids)
        metrics.ROWS.labels("dropped").inc(len(rows))
        log.warning("%d queued row(s) dropped: %s", len(rows), why,
                    extra={"pks": [row.pk for row in rows[:20]]})

    def report(self, source: Source, problem: str, lasting: bool = True) -> None:
        """Record what is wrong with `source`, for autoembed.status (which shows it until a write
        succeeds); the first problem a batch finds with a source is the one reported. `lasting`: it
        stays until someone changes something (a model that does not load), unlike an outage."""
        self.problems.setdefault(source.id, storable(problem))
        if lasting:
            self.unservable.add(source.id)

    def without_writes(self) -> Batch:
        """The rest of the batch once its writes are committed one by one."""
        return replace(self, items=[], writes=defaultdict(list), archived=set(self.archived),
                       requeued=defaultdict(list, {k: list(pks) for k, pks in self.requeued.items()}),
                       failures=defaultdict(list, {s: list(f) for s, f in self.failures.items()}))


def storable(text: str) -> str:
    """`text` as PostgreSQL can store it: without NUL characters (a provider's error message may hold
    one, and a failure record that cannot be written would fail its whole batch, every time)."""
    return text.replace("\x00", "\\x00")


def error_class(error: BaseException) -> str:
    """A short name for an error: the underlying cause's class where there is one."""
    cause = error.__cause__
    return type(cause).__name__ if cause is not None else type(error).__name__
