"""Stage 3 of a batch, in one short transaction: the guarded write-back, failure records, the
batch's messages deleted or archived, new messages for the rows that need another attempt, and the
row claims released. A lock conflict is retried; a write the table rejects is isolated row by row.
Then, on their own, what the batch found wrong with its sources is reported for autoembed.status.
A batch that will not be processed (the worker is stopping) is given back instead."""

from __future__ import annotations

import logging
import time

import psycopg

from autoembed import metrics
from autoembed.activity import log_batch
from autoembed.batch import Batch, Write
from autoembed.fetch import source_broken
from autoembed.settings import Settings
from autoembed.store import Source, Store

log = logging.getLogger(__name__)

COMMIT_TRIES = 5  # a lock conflict (timeout, deadlock, serialization failure) is retried this many times
# The write-back gives up a row lock after 200 ms (Store.limit_lock_wait), well before PostgreSQL's
# deadlock check (deadlock_timeout, 1 s): in a lock cycle with an application transaction the
# worker backs off and retries, instead of the application's statement failing.
ROLLED_BACK = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
               psycopg.errors.LockNotAvailable,
               psycopg.errors.TransactionRollback)  # psycopg does not derive the first three from the last
STRUCTURAL = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedFunction)


def commit(store: Store, batch: Batch, settings: Settings) -> None:
    """Apply the batch in one transaction; a deadlock is retried at once, and a write the table
    rejects (a constraint, a trigger, a column renamed meanwhile) is isolated row by row."""
    for attempt in range(1, COMMIT_TRIES + 1):
        try:
            _apply(store, batch)
            break
        except ROLLED_BACK as exc:
            if attempt == COMMIT_TRIES:
                raise
            log.info("write-back rolled back (%s), retrying", str(exc).strip().splitlines()[0])
            time.sleep(0.05 * 2 ** attempt)
        except (psycopg.OperationalError, psycopg.errors.InsufficientPrivilege):
            raise  # the database, or the worker's grants on the queue: no row is to blame
        except psycopg.Error as exc:
            log.warning("write-back failed (%s): writing row by row", str(exc).strip().splitlines()[0])
            _apply_row_by_row(store, batch, settings)
            break
    _report_problems(store, batch)
    metrics.BATCH_SECONDS.observe(time.perf_counter() - batch.started)
    log_batch(batch)


def release(store: Store, batch: Batch) -> None:
    """Make a fetched batch's jobs visible again at once, and its rows free (the worker is stopping)."""
    with store.transaction() as conn:
        store.release_jobs(conn, batch.msg_ids)
        store.release_claims(conn, batch.claimed)


def _report_problems(store: Store, batch: Batch) -> None:
    """Record on each source what the batch found wrong with it. Outside the batch's transaction: a
    report locks its registration, which a concurrent write-back of another worker may hold."""
    if batch.problems:
        with store.connection() as conn:
            for source_id, problem in batch.problems.items():
                store.report_problem(conn, source_id, problem)


def _apply(store: Store, batch: Batch) -> None:
    """The whole batch in one transaction."""
    with store.transaction() as conn:
        store.limit_lock_wait(conn)
        for source_id, writes in batch.writes.items():
            _write(store, conn, batch.sources[source_id], writes)
        for source_id, failures in batch.failures.items():
            store.record_failures(conn, source_id, failures)
        store.delete_messages(conn, [m for m in batch.msg_ids if m not in batch.archived])
        store.archive_messages(conn, sorted(batch.archived))
        for (source_id, attempts, delay), pks in batch.requeued.items():
            store.requeue(conn, source_id, pks, attempts, delay)
        store.release_claims(conn, batch.claimed)


def _write(store: Store, conn: psycopg.Connection, source: Source, writes: list[Write]) -> None:
    """The guarded write of one source's vectors (and chunks), counted as embedded or stale."""
    columns = ([w.row.pk for w in writes], [w.content_hash for w in writes], [w.vector for w in writes])
    if source.chunked:
        settled = store.write_chunks(conn, source, *columns, [w.chunks or () for w in writes])
    else:
        settled = store.write_embeddings(conn, source, *columns)
    embedded = sum(1 for w in writes if w.vector is not None and w.row.pk in settled)
    metrics.ROWS.labels("embedded").inc(embedded)
    metrics.ROWS.labels("stale").inc(len(writes) - len(settled))


def _apply_row_by_row(store: Store, batch: Batch, settings: Settings) -> None:
    """Each write in its own transaction; a rejected one fails alone. The batch's messages go last,
    with the rest of the batch: a crash in between leaves them queued, and the rows written by
    then are found up to date."""
    rest = batch.without_writes()
    for source_id, writes in batch.writes.items():
        source = batch.sources[source_id]
        for write in writes:
            try:
                with store.transaction() as conn:
                    store.limit_lock_wait(conn)
                    _write(store, conn, source, [write])
            except psycopg.OperationalError:
                raise
            except STRUCTURAL as exc:
                with store.connection() as conn:
                    source_broken(store, conn, source, {write.row.pk: write.row}, exc, rest, settings)
            except psycopg.Error as exc:
                message = f"the table rejected the vector: {str(exc).strip().splitlines()[0]}"
                rest.fail(source, write.row, write.content_hash, type(exc).__name__, message)
    _apply(store, rest)
