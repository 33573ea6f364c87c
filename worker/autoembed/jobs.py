"""Job messages: parse a queue message into a job, and turn a batch of jobs into work (grouped by
source, one entry per row)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Job:
    """One queue message: embed rows `pks` of source `source_id`. `attempt` counts the attempts
    made so far, this read included."""

    msg_id: int
    attempt: int
    source_id: int
    pks: tuple[str, ...]


def parse_job(msg_id: int, read_ct: int, body: object) -> Job | None:
    """The job in a message body ({source_id, pk_range: [first, last], attempt?}, {source_id, pks,
    attempt?}, or the older {source_id, pk}), or None when the message was not written by autoembed."""
    if not isinstance(body, dict) or not _is_int(body.get("source_id")):
        return None
    attempt = body.get("attempt", 0)
    pks = _range_pks(body["pk_range"]) if "pk_range" in body else body.get("pks", [body["pk"]] if "pk" in body else None)
    if not isinstance(pks, list) or not pks or not all(isinstance(pk, str) for pk in pks) or not _is_int(attempt):
        return None
    return Job(msg_id, attempt + read_ct, body["source_id"], tuple(pks))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range_pks(pk_range: object) -> list[str] | None:
    """The keys first..last of a pk_range (consecutive bigint keys), or None when malformed. The
    bounds are autoembed.job_range's, so any range accepted here was cut to the read budget."""
    if not isinstance(pk_range, list) or len(pk_range) != 2 or not all(map(_is_int, pk_range)):
        return None
    first, last = pk_range
    if not -(2**63) <= first <= last < 2**63:
        return None
    return [str(key) for key in range(first, last + 1)]


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
