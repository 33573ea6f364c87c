"""The job queue: pgmq calls (through pgmq-py) on a connection the caller owns."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from pgmq import PGMQueue
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

QUEUE_NAME = "autoembed_jobs"
NOTIFY_CHANNEL = "autoembed"


@dataclass(frozen=True)
class Job:
    """One queue message: embed row `pk` of source `source_id`. `attempt` counts its reads."""

    msg_id: int
    attempt: int
    source_id: int
    pk: str


class JobQueue:
    """Read, finish, delay and archive autoembed jobs. Every call runs on the given connection,
    so the caller decides what shares a transaction."""

    def __init__(self, pool: ConnectionPool):
        self._pgmq = PGMQueue(pool=pool, init_extension=False)  # the migrations own the schema

    def read(self, conn: psycopg.Connection, qty: int, visibility_timeout: int) -> tuple[list[Job], list[int]]:
        """Read up to `qty` visible jobs, hiding them for `visibility_timeout` seconds.

        Returns the jobs and the ids of malformed messages (not written by autoembed).
        """
        jobs, malformed = [], []
        for msg in self._pgmq.read_batch(QUEUE_NAME, vt=visibility_timeout, batch_size=qty, conn=conn):
            body = msg.message if isinstance(msg.message, dict) else {}
            source_id, pk = body.get("source_id"), body.get("pk")
            if isinstance(source_id, int) and isinstance(pk, str):
                jobs.append(Job(msg.msg_id, msg.read_ct, source_id, pk))
            else:
                malformed.append(msg.msg_id)
        return jobs, malformed

    def delete(self, conn: psycopg.Connection, msg_ids: list[int]) -> None:
        """Remove finished jobs."""
        if msg_ids:
            self._pgmq.delete_batch(QUEUE_NAME, msg_ids, conn=conn)

    def archive(self, conn: psycopg.Connection, msg_ids: list[int]) -> None:
        """Move jobs that will not be retried to the archive (kept 7 days by the sweep)."""
        if msg_ids:
            self._pgmq.archive_batch(QUEUE_NAME, msg_ids, conn=conn)

    def delay(self, conn: psycopg.Connection, msg_ids: list[int], seconds: int) -> None:
        """Hide jobs for `seconds` more (retry later)."""
        if msg_ids:
            self._pgmq.set_vt(QUEUE_NAME, list(msg_ids), int(seconds), conn=conn)
