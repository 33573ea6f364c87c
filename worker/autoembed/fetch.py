"""Stage 1 of a batch: read jobs naming up to batch_size rows, claim the rows, load their current
content (one query per source) and plan each row: skip it, fail it, or embed it."""

from __future__ import annotations

import logging

import psycopg

from autoembed import metrics
from autoembed.batch import Batch, Item, Write
from autoembed.jobs import RowJobs, group_jobs
from autoembed.retry import retry_delay
from autoembed.settings import Settings
from autoembed.store import Content, Source, Store

log = logging.getLogger(__name__)

CLAIM_WAIT = 2  # seconds a job waits when another batch is embedding its row right now


def fetch(store: Store, settings: Settings) -> Batch:
    """A new batch of the queue's visible jobs, with the content of the rows it claimed."""
    batch = Batch()
    with store.connection() as conn:
        jobs, malformed = store.read_jobs(conn, settings.batch_size, settings.visibility_timeout)
        batch.msg_ids = [job.msg_id for job in jobs] + malformed
        batch.archived.update(malformed)
        if malformed:
            log.warning("archiving %d malformed messages", len(malformed))
        if jobs:  # read every batch: a re-watch (new model, new column) applies at once
            batch.sources = store.sources(conn)
        for source_id, rows in group_jobs(jobs).items():
            source = batch.sources.get(source_id)
            if source is None:  # unwatched since: nothing to do
                continue
            rows = _claim(store, conn, source_id, rows, batch, settings.visibility_timeout)
            try:
                loaded = store.load_content(conn, source_id, list(rows))
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                source_broken(source, rows, exc, batch, settings)
                continue
            _plan_rows(source, rows, loaded, batch)
    return batch


def _claim(store: Store, conn: psycopg.Connection, source_id: int, rows: dict[str, RowJobs], batch: Batch,
           visibility_timeout: int) -> dict[str, RowJobs]:
    """Claim the rows for this batch; rows another batch is embedding are requeued for CLAIM_WAIT s
    (by then that batch has written the vector, and the job finds its row up to date). Waiting
    is not an attempt."""
    claimed = store.claim_rows(conn, source_id, list(rows), visibility_timeout)
    batch.claimed[source_id] = sorted(claimed)
    for pk, row in rows.items():
        if pk not in claimed:
            batch.requeue(source_id, row, row.attempt - 1, CLAIM_WAIT)
    return {pk: row for pk, row in rows.items() if pk in claimed}


def _plan_rows(source: Source, rows: dict[str, RowJobs], loaded: list[Content], batch: Batch) -> None:
    """Skip rows that are gone or up to date, fail those without content, keep the rest to embed."""
    current = {content.pk: content for content in loaded}
    for pk, row in rows.items():
        found = current.get(pk)
        if found is None or found.up_to_date:  # deleted, or its vector already embeds this content
            metrics.ROWS.labels("skipped").inc()
            continue
        if found.error is not None:
            batch.fail(source, row, None, "ContentError", f"the content of this row cannot be read: {found.error}")
            continue
        if found.content is None or not found.content.strip():
            reason = "content is NULL" if found.content is None else "content is empty or whitespace only"
            batch.writes[source.id].append(Write(row, found.content_hash, None))
            batch.fail(source, row, found.content_hash, "EmptyContent", f"{reason}: nothing to embed")
            continue
        batch.items.append(Item(source, row, found.content, found.content_hash))


def source_broken(source: Source, rows: dict[str, RowJobs], exc: psycopg.Error, batch: Batch,
                  settings: Settings) -> None:
    """The source's table or columns changed under it (found on load, or on write-back): report it,
    keep serving the others. Its rows are dropped when the table is gone or they had their attempts,
    else retried after a backoff."""
    dropped = isinstance(exc, psycopg.errors.UndefinedTable)
    log.error("source %s (%s) is broken: %s", source.id, source.table_name, str(exc).strip(),
              extra={"source_id": source.id, "table": source.table_name})
    for row in rows.values():
        if dropped or row.attempt >= source.max_attempts:
            batch.drop(row)
        else:
            delay = retry_delay(row.attempt, settings.backoff_base, settings.backoff_max)
            batch.requeue(source.id, row, row.attempt, delay)
