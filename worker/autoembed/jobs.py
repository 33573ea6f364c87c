"""Turn a batch of queue jobs into work: group by source, one entry per row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from autoembed.queue import Job


@dataclass
class RowJobs:
    """All jobs of one row in a batch: duplicates collapse into one unit of work."""

    pk: str
    msg_ids: list[int] = field(default_factory=list)
    attempt: int = 0  # the most reads any of its jobs has had


def group_jobs(jobs: Iterable[Job]) -> dict[int, dict[str, RowJobs]]:
    """source_id -> pk -> RowJobs, keeping first-seen order."""
    grouped: dict[int, dict[str, RowJobs]] = {}
    for job in jobs:
        row = grouped.setdefault(job.source_id, {}).setdefault(job.pk, RowJobs(job.pk))
        row.msg_ids.append(job.msg_id)
        row.attempt = max(row.attempt, job.attempt)
    return grouped
