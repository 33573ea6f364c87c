"""Job messages: parse a queue message into a job, and turn a batch of jobs into work (grouped by
source, one entry per row).

A message is a job only if autoembed could have written it; the rules are those of
db/idempotent/050_job_messages.sql (autoembed.job_is_valid), which the read budget and the
autoembed.jobs view apply, here with the reason a message breaks them. Anything else is poison:
the worker archives it, saying why."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

#: the most rows one message names (autoembed.enqueue and enqueue_range write at most this many)
MAX_JOB_ROWS = 1000
#: the longest key a message may name: a longer one could not be claimed (autoembed.claims indexes it)
MAX_KEY_BYTES = 2000
#: the most attempts a message may say were made
MAX_ATTEMPT = 1_000_000
_SOURCE_IDS = range(1, 2**31)
_BIGINT = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Job:
    """One queue message: embed rows `pks` of source `source_id`. `attempt` counts the attempts
    made so far, this read included."""

    msg_id: int
    attempt: int
    source_id: int
    pks: tuple[str, ...]


def decode_message(text: str | None) -> object:
    """A message body as stored (JSON text) decoded, or None when it cannot be: not JSON, or nested
    deeper than Python's parser goes (a message nested thousands deep raised RecursionError on every
    read and crashed the worker)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def job_defect(body: object) -> str | None:
    """Why a decoded message body is not a job autoembed could have written; None when it is one."""
    if not isinstance(body, dict):
        return "the message is not a JSON object" if body is not None else "the message is empty or not JSON"
    if not _is_int(body.get("source_id"), _SOURCE_IDS):
        return "source_id is missing or not an integer from 1 to 2147483647"
    if "attempt" in body and not _is_int(body["attempt"], range(MAX_ATTEMPT + 1)):
        return f"attempt is not an integer from 0 to {MAX_ATTEMPT}"
    if "pk_range" in body:
        return _range_defect(body["pk_range"])
    if "pks" in body:
        return _keys_defect(body["pks"])
    if "pk" in body:
        return _keys_defect([body["pk"]])
    return "the message names no rows (no pk_range, pks or pk)"


def parse_job(msg_id: int, read_ct: int, body: object) -> Job | None:
    """The job in a decoded message body ({source_id, pk_range: [first, last], attempt?}, {source_id,
    pks, attempt?}, or the older {source_id, pk}), or None when it is not one (job_defect says why)."""
    if job_defect(body) is not None:
        return None
    if "pk_range" in body:
        first, last = body["pk_range"]
        pks = [str(key) for key in range(first, last + 1)]
    else:
        pks = body["pks"] if "pks" in body else [body["pk"]]
    return Job(msg_id, body.get("attempt", 0) + read_ct, body["source_id"], tuple(pks))


def _is_int(value: object, allowed: range) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in allowed


def _range_defect(pk_range: object) -> str | None:
    if not (isinstance(pk_range, list) and len(pk_range) == 2 and all(_is_int(v, _BIGINT) for v in pk_range)):
        return "pk_range is not [first, last] with two integers within bigint"
    first, last = pk_range
    if not 0 <= last - first < MAX_JOB_ROWS:
        return f"pk_range [{first}, {last}] does not name 1 to {MAX_JOB_ROWS} keys"
    return None


def _keys_defect(pks: object) -> str | None:
    if not isinstance(pks, list) or not pks:
        return "pks is not a list of keys"
    if len(pks) > MAX_JOB_ROWS:
        return f"the message names {len(pks)} rows, more than the {MAX_JOB_ROWS} of a job"
    if not all(isinstance(pk, str) for pk in pks):
        return "a key is not a string"
    if any(len(pk.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES for pk in pks):
        return f"a key is longer than {MAX_KEY_BYTES} bytes"
    return None


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
