"""Stage 1 of a batch: read jobs naming up to `rows` rows (Settings.read_size), claim the rows, load their current
content (one query per source) and plan each row: skip it, fail it, drop it, or embed it.

Poison never stops a batch: a malformed message, a job for a source that is not watched and a key
that cannot be one of the table's are archived with a log line saying why; the rest of the batch
goes on."""

from __future__ import annotations

import logging

import psycopg

from autoembed import metrics
from autoembed.batch import Batch, Item, Write
from autoembed.jobs import RowJobs, group_jobs
from autoembed.passages import load_previous_chunks
from autoembed.retry import park_delay
from autoembed.settings import Settings
from autoembed.store import Content, Source, Store

log = logging.getLogger(__name__)

CLAIM_WAIT = 2  # seconds a job waits when another batch is embedding its row right now


def fetch(store: Store, settings: Settings, rows: int) -> Batch:
    """A new batch of the queue's visible jobs naming up to `rows` rows (of settings.watches only,
    when it names some), with the content of the rows it claimed."""
    batch = Batch()
    with store.connection() as conn:
        jobs, malformed = store.read_jobs(conn, rows, settings.visibility_timeout)
        batch.msg_ids = [job.msg_id for job in jobs] + [msg_id for msg_id, _ in malformed]
        for msg_id, why in malformed:
            batch.archived.add(msg_id)
            log.warning("archiving malformed job message %s: %s", msg_id, why, extra={"msg_id": msg_id})
        if jobs:  # read every batch: a re-watch (new model, new column) applies at once
            batch.sources = store.sources(conn)
        for source_id, rows in group_jobs(jobs).items():
            source = batch.sources.get(source_id)
            if source is None:  # unwatched since, or never watched
                batch.drop(list(rows.values()), f"source {source_id} is not watched")
                continue
            rows = _claim(store, conn, source_id, rows, batch, settings.visibility_timeout)
            try:
                loaded = store.load_content(conn, source_id, list(rows))
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                source_broken(store, conn, source, rows, exc, batch, settings)
                continue
            _plan_rows(source, rows, loaded, batch)
            load_previous_chunks(store, conn, source, batch)  # a chunked source's vectors to keep
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
    """Skip rows that are gone or up to date, drop jobs whose key cannot exist, fail rows without
    content, keep the rest to embed."""
    current = {content.pk: content for content in loaded}
    poison: list[tuple[RowJobs, str]] = []
    for pk, row in rows.items():
        found = current.get(pk)
        if found is None or found.up_to_date:  # deleted, or its vector already embeds this content
            metrics.ROWS.labels("skipped").inc()
        elif found.error_kind == "key":
            poison.append((row, found.error))
        elif found.error is not None:
            batch.fail(source, row, None, "ContentError", f"the content of this row cannot be read: {found.error}")
            if found.error_kind == "source":
                batch.report(source, f"broken: the content cannot be read: {found.error}")
        elif found.content is None or not found.content.strip():
            reason = "content is NULL" if found.content is None else "content is empty or whitespace only"
            batch.writes[source.id].append(Write(row, found.content_hash, None))
            batch.fail(source, row, found.content_hash, "EmptyContent", f"{reason}: nothing to embed")
        else:
            batch.items.append(Item(source, row, found.content, found.content_hash))
    if poison:
        more = f" (and {len(poison) - 1} more)" if len(poison) > 1 else ""
        batch.drop([row for row, _ in poison], f"{poison[0][1]}{more}")


def source_broken(store: Store, conn: psycopg.Connection, source: Source, rows: dict[str, RowJobs],
                  exc: psycopg.Error, batch: Batch, settings: Settings) -> None:
    """The source's table, a column or its content function went away (found on load, or on
    write-back): report it, keep serving the others. When the table is gone its jobs are dropped;
    otherwise its rows wait in the queue, attempts untouched, until it is watched again."""
    reason = str(exc).strip().splitlines()[0]
    log.error("source %s (%s) is broken: %s", source.id, source.table_name, reason,
              extra={"source_id": source.id, "table": source.table_name})
    if not store.table_exists(conn, source.id):
        batch.drop(list(rows.values()), f"the table of source {source.id} ({source.table_name}) was dropped")
        return
    batch.report(source, f"broken: {reason}")
    for row in rows.values():
        batch.park(source.id, row, park_delay(settings.backoff_max))
