"""The job queue: reads by row budget and requeues through autoembed's SQL (read_jobs, enqueue);
finishes, delays and archives through pgmq-py. Every call runs on a connection the caller owns."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from pgmq import PGMQueue
from psycopg_pool import ConnectionPool

from autoembed.queries import QUERIES

log = logging.getLogger(__name__)

QUEUE_NAME = "autoembed_jobs"
NOTIFY_CHANNEL = "autoembed"


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


class JobQueue:
    """Read, finish, requeue, delay and archive autoembed jobs."""

    def __init__(self, pool: ConnectionPool):
        self._pgmq = PGMQueue(pool=pool, init_extension=False)  # the migrations own the schema

    def read(self, conn: psycopg.Connection, max_rows: int, visibility_timeout: int) -> tuple[list[Job], list[int]]:
        """Read visible jobs naming up to `max_rows` rows, hiding them for `visibility_timeout` seconds.

        Returns the jobs and the ids of malformed messages (not written by autoembed).
        """
        jobs, malformed = [], []
        for msg_id, read_ct, body in conn.execute(QUERIES["read_jobs"], (max_rows, visibility_timeout)):
            job = parse_job(msg_id, read_ct, body)
            if job is None:
                malformed.append(msg_id)
            else:
                jobs.append(job)
        return jobs, malformed

    def requeue(self, conn: psycopg.Connection, source_id: int, pks: list[str], attempt: int, delay: int) -> None:
        """Queue rows again as a new job that has had `attempt` attempts, visible in `delay` seconds."""
        if pks:
            conn.execute(QUERIES["enqueue"], (source_id, pks, attempt, delay))

    def delete(self, conn: psycopg.Connection, msg_ids: list[int]) -> None:
        """Remove finished jobs."""
        if msg_ids:
            self._pgmq.delete_batch(QUEUE_NAME, msg_ids, conn=conn)

    def archive(self, conn: psycopg.Connection, msg_ids: list[int]) -> None:
        """Move jobs that will not be retried to the archive (kept 7 days by the sweep)."""
        if msg_ids:
            self._pgmq.archive_batch(QUEUE_NAME, msg_ids, conn=conn)

    def delay(self, conn: psycopg.Connection, msg_ids: list[int], seconds: int) -> None:
        """Hide jobs for `seconds` more (0 makes them visible at once)."""
        if msg_ids:
            self._pgmq.set_vt(QUEUE_NAME, list(msg_ids), int(seconds), conn=conn)
