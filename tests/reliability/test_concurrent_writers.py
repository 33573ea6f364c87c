"""Concurrent writers against a running worker, as a property: whatever interleaving of inserts,
content updates, unrelated-column updates, key changes and deletes several connections make, once
the queue drains every row holds the vector of its current content or a failure record, written
once, and nothing is recorded for a key that no row has. The same holds for a partitioned table
whose writers also name its partitions directly, one of them created after `watch`."""

from __future__ import annotations

import itertools
import threading
import time

import psycopg
import pytest
from harness import DIMS, check, install_audit, report, scaled, slow_writeback, wait_settled, wait_until
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg import sql
from support import FixedEmbedders, RecordingEmbedder, create_docs, watch

from autoembed.embedders.hashing import HashingEmbedder
from autoembed.worker import Worker

TEXTS = st.one_of(
    st.sampled_from([None, "", "   ", "hello", "hello world", "안녕 세계", "🎉 party", "Mixed 한국어 and English",
                     "tab\tnew\nline"]),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30),
)
ROW = st.integers(0, 40)  # which existing row, by position (modulo the row count)
SIMPLE = st.one_of(
    st.tuples(st.just("insert"), TEXTS),
    st.tuples(st.just("insert_many"), st.integers(2, 6), TEXTS),
    st.tuples(st.just("update_content"), ROW, TEXTS),
    st.tuples(st.just("update_other"), ROW),
    st.tuples(st.just("rekey"), ROW),
    st.tuples(st.just("delete"), ROW),
    st.tuples(st.just("bulk_update"), st.integers(2, 4), TEXTS),
    st.tuples(st.just("pause"), st.floats(0, 0.03)),
)
OPS = st.one_of(SIMPLE, st.tuples(st.just("transaction"), st.lists(SIMPLE, min_size=2, max_size=4)))
STREAMS = st.lists(st.lists(OPS, min_size=1, max_size=12), min_size=2, max_size=4)
# Statements naming a partition of the partitioned variant ("low": there at watch time; "high":
# created after it), beside the statements above, which name the partitioned table.
PARTITION = st.sampled_from(["low", "high"])
DIRECT = st.one_of(
    st.tuples(st.just("direct_insert"), TEXTS),
    st.tuples(st.just("direct_update_content"), PARTITION, ROW, TEXTS),
    st.tuples(st.just("direct_update_other"), PARTITION, ROW),
    st.tuples(st.just("direct_delete"), PARTITION, ROW),
)
PARTITIONED_STREAMS = st.lists(st.lists(st.one_of(SIMPLE, DIRECT), min_size=1, max_size=12), min_size=2, max_size=4)

PICK = "(select id from {t} order by id offset ({n} %% greatest(1, (select count(*) from {t}))) limit 1)"


def apply(conn: psycopg.Connection, name: str, op: tuple) -> None:
    kind, *args = op
    table = sql.Identifier(name)
    pick = sql.SQL(PICK).format(t=table, n=sql.Placeholder())
    if kind == "insert":
        conn.execute(sql.SQL("insert into {} (body) values (%s)").format(table), args)
    elif kind == "insert_many":
        n, text = args
        conn.execute(sql.SQL("insert into {} (body) select %s from generate_series(1, %s)").format(table), (text, n))
    elif kind == "update_content":
        row, text = args
        conn.execute(sql.SQL("update {} set body = %s where id = {}").format(table, pick), (text, row))
    elif kind == "update_other":
        conn.execute(sql.SQL("update {} set views = views + 1 where id = {}").format(table, pick), args)
    elif kind == "rekey":  # the row takes the identity's next key; its content stays
        conn.execute(sql.SQL("update {} set id = default where id = {}").format(table, pick), args)
    elif kind == "delete":
        conn.execute(sql.SQL("delete from {} where id = {}").format(table, pick), args)
    elif kind == "bulk_update":
        k, text = args
        conn.execute(sql.SQL("update {} set body = coalesce(body, '') || coalesce(%s, '') where id %% %s = 0")
                     .format(table), (text, k))
    elif kind == "direct_insert":  # keys from 1,000,000 up: always the high partition's
        conn.execute(sql.SQL("insert into {} (id, body) overriding system value "
                             "values (1000000 + nextval('direct_keys'), %s)").format(partition(name, "high")), args)
    elif kind in ("direct_update_content", "direct_update_other", "direct_delete"):
        part, row, *text = args
        target = partition(name, part)
        pick_there = sql.SQL(PICK).format(t=target, n=sql.Placeholder())
        if kind == "direct_update_content":
            conn.execute(sql.SQL("update {} set body = %s where id = {}").format(target, pick_there), (text[0], row))
        elif kind == "direct_update_other":
            conn.execute(sql.SQL("update {} set views = views + 1 where id = {}").format(target, pick_there), (row,))
        else:
            conn.execute(sql.SQL("delete from {} where id = {}").format(target, pick_there), (row,))
    elif kind == "pause":
        threading.Event().wait(args[0])
    elif kind == "transaction":
        with conn.transaction():
            for inner in args[0]:
                apply(conn, name, inner)


def partition(name: str, which: str) -> sql.Identifier:
    """The partition `which` (low, high) of the partitioned variant's table `name`."""
    return sql.Identifier(f"{name}_{which}")


def create_partitioned_docs(conn: psycopg.Connection, name: str) -> None:
    """docs partitioned by key range, watched, with its high partition created after `watch`."""
    conn.execute(sql.SQL("create table {} (id bigint generated always as identity, title text, body text, "
                         "views int default 0, embedding vector({}), primary key (id)) partition by range (id)")
                 .format(sql.Identifier(name), sql.Literal(DIMS)))
    conn.execute(sql.SQL("create table {} partition of {} for values from (minvalue) to (20)")
                 .format(sql.Identifier(f"{name}_low"), sql.Identifier(name)))
    install_audit(conn, table=name)
    watch(conn, table=name, backfill=False)
    conn.execute(sql.SQL("create table {} partition of {} for values from (20) to (maxvalue)")
                 .format(sql.Identifier(f"{name}_high"), sql.Identifier(name)))
    conn.execute("create sequence if not exists direct_keys")


def run_stream(dsn: str, name: str, ops: list, start: threading.Barrier, errors: list) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            start.wait()
            for op in ops:
                try:
                    apply(conn, name, op)
                except psycopg.errors.DeadlockDetected:
                    pass  # two transactions updating rows in opposite orders: one is rolled back, as in real life
                except psycopg.errors.SerializationFailure:
                    pass  # a row another transaction moved to another partition meanwhile: PostgreSQL refuses
    except BaseException as exc:  # noqa: BLE001 - reported by the test thread
        errors.append(exc)


class LiveWorker:
    """An in-process worker running in a thread for the whole test; remembers how it died, if it did."""

    def __init__(self, dsn: str, settings):
        self.recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS))
        # A short visibility timeout: a batch lost to a deadlock (test below) comes back within seconds.
        self.worker = Worker(settings.replace(batch_size=20, visibility_timeout=3), dsn,
                             FixedEmbedders(settings, self.recorder))
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="live-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def assert_alive(self) -> None:
        if not self.thread.is_alive():
            raise AssertionError(f"the worker died: {self.error!r}")


@pytest.fixture
def live_worker(dsn, settings):
    live = LiveWorker(dsn, settings)
    live.thread.start()
    yield live
    live.worker.stop()
    live.thread.join(30)
    live.worker.close()


@pytest.fixture
def tables():
    return itertools.count(1)


def run_and_check(conn, dsn, live_worker, name: str, streams: list, scenario: str) -> None:
    """Run `streams` against the watched table `name` at once, let the worker settle, check the invariant."""
    began = time.monotonic()
    start, errors = threading.Barrier(len(streams)), []
    threads = [threading.Thread(target=run_stream, args=(dsn, name, ops, start, errors)) for ops in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors

    live_worker.assert_alive()
    wrote = time.monotonic()
    verdict = wait_settled(conn, timeout=30, table=name)
    live_worker.assert_alive()
    verdict = check(conn, table=name)
    report(scenario, rows=verdict.rows, faults={"ops": sum(len(s) for s in streams)},
           lost=len(verdict.lost), stale=len(verdict.stale), failed=verdict.failed,
           duplicate_writes=verdict.duplicate_writes, write_s=round(wrote - began, 2),
           settle_s=round(time.monotonic() - wrote, 2))
    assert verdict.ok, verdict
    assert all(cls == "EmptyContent" for cls, _ in verdict.failures.values()), verdict.failures


@hypothesis_settings(max_examples=scaled(20), deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(streams=STREAMS)
def test_concurrent_writers_leave_no_row_lost_stale_or_written_twice(conn, dsn, live_worker, tables, streams):
    name = f"docs_{next(tables)}"  # a fresh watched table per example; the worker serves them all
    create_docs(conn, table=name)
    install_audit(conn, table=name)
    watch(conn, table=name, backfill=False)
    run_and_check(conn, dsn, live_worker, name, streams, "concurrent writers")


@hypothesis_settings(max_examples=scaled(10), deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(streams=PARTITIONED_STREAMS)
def test_concurrent_writers_to_a_partitioned_table_and_its_partitions(conn, dsn, live_worker, tables, streams):
    name = f"docs_{next(tables)}"
    create_partitioned_docs(conn, name)
    run_and_check(conn, dsn, live_worker, name, streams, "concurrent writers, partitioned")


def test_a_deadlock_with_an_application_transaction_is_retried_at_once(conn, dsn, settings):
    create_docs(conn)
    watch(conn, backfill=False)
    conn.execute("insert into docs (body) values ('first'), ('second')")
    app = psycopg.connect(dsn)
    app.execute("set deadlock_timeout = '10s'")  # the worker's check (1 s) finds the cycle: it is the victim
    app.commit()
    locked = threading.Event()

    def lock_row_2_during_the_model_call(texts):
        if not locked.is_set():
            app.execute("update docs set views = views + 1 where id = 2")  # no content change: no job
            locked.set()

    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS), before=lock_row_2_during_the_model_call)
    worker = Worker(settings, dsn, FixedEmbedders(settings, recorder))  # visibility timeout 30 s
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert locked.wait(10)
        # The write-back has row 1 and waits for row 2; the application now wants row 1.
        wait_until(lambda: conn.execute("select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                                        "and query ilike '%%write_embeddings%%'").fetchone()[0], 10,
                   what="the write-back to wait for row 2")
        app.execute("update docs set views = views + 1 where id = 1")
        app.commit()
        wait_until(lambda: conn.execute("select count(embedding) = 2 from docs").fetchone()[0], 6,
                   what="the batch to be committed after the deadlock")  # VT is 30 s
    finally:
        worker.stop()
        thread.join(30)
        worker.close()
        app.close()
    assert check(conn, audited=False).ok


def _run_worker_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_the_worker_never_makes_an_application_transaction_lose_a_deadlock(conn, dsn, settings):
    create_docs(conn)
    watch(conn, backfill=False)
    conn.execute("insert into docs (body) values ('first'), ('second')")
    slow_writeback(conn, seconds=0.3)  # a slow trigger: the write-back holds row 1 a while before asking for row 2
    app = psycopg.connect(dsn)  # default deadlock_timeout (1 s), like any application
    app.execute("update docs set views = views + 1 where id = 2")  # holds row 2, no content change
    worker = Worker(settings, dsn)
    thread = _run_worker_in_thread(worker)
    try:
        wait_until(lambda: conn.execute("select count(*) from pg_stat_activity where wait_event = 'PgSleep' "
                                        "and query ilike '%%write_embeddings%%'").fetchone()[0], 10,
                   what="the write-back to hold row 1")
        app.execute("update docs set views = views + 1 where id = 1")  # the application now wants row 1
        app.commit()
        wait_until(lambda: conn.execute("select count(embedding) = 2 from docs").fetchone()[0], 10,
                   what="the write-back to finish after the application's commit")
    finally:
        app.close()
        worker.stop()
        thread.join(30)
        worker.close()
