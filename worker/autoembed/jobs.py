"""Turn a batch of queue jobs into work: group by source, one entry per row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from autoembed.queue import Job


@dataclass
class RowJobs:
    """All jobs naming one row in a batch: duplicates collapse into one unit of work."""

    pk: str
    msg_ids: list[int] = field(default_factory=list)
    attempt: int = 0  # the most attempts any of its jobs has had, this one included


def group_jobs(jobs: Iterable[Job]) -> dict[int, dict[str, RowJobs]]:
    """source_id -> pk -> RowJobs, keeping first-seen order."""
    grouped: dict[int, dict[str, RowJobs]] = {}
    for job in jobs:
        rows = grouped.setdefault(job.source_id, {})
        for pk in job.pks:
            row = rows.setdefault(pk, RowJobs(pk))
            if job.msg_id not in row.msg_ids:
                row.msg_ids.append(job.msg_id)
            row.attempt = max(row.attempt, job.attempt)
    return grouped
