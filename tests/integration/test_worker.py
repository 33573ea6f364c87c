"""The worker draining real queues: embedding, dedup, stale-write protection, deletes, retries,
failures, an embedder that stops answering, sources that cannot be served, honest status."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid

import numpy as np
import psycopg
import pytest
from support import DIMS, FixedEmbedders, RecordingEmbedder, create_docs, drain, expected, queue_depth, watch
from support.running import running_worker

from autoembed import metrics
from autoembed.embedders import EmbedderCache, build_embedder
from autoembed.embedders.hashing import HashingEmbedder
from autoembed.errors import ConfigError
from support.openai_stub import OpenAIStub
from autoembed.worker import SourcesNotServed, Worker


def vectors(conn) -> dict[int, np.ndarray | None]:
    return {i: (None if e is None else e.to_numpy()) for i, e in conn.execute("select id, embedding from docs order by id")}


def test_drain_embeds_every_row_with_its_content_including_korean_and_emoji(conn, dsn, settings):
    create_docs(conn)
    texts = ["hello world", "안녕하세요, 세계! 한국어 검색", "🎉🚀 emoji only", "Mixed 한국어 and English 텍스트",
             "tab\tand\nnewline \x01 control"]
    with conn.cursor() as cur:
        cur.executemany("insert into docs (body) values (%s)", [(t,) for t in texts])
    watch(conn)
    drain(dsn, settings)
    stored = vectors(conn)
    for i, text in enumerate(texts, start=1):
        np.testing.assert_allclose(stored[i], expected(text), atol=1e-6)
    assert queue_depth(conn) == 0
    status = conn.execute("select rows, embedded, pending, failed, last_success_at is not null from autoembed.status").fetchone()
    assert status == (5, 5, 0, 0, True)
    assert conn.execute("select body from docs where id = 2").fetchone()[0] == texts[1]


def test_duplicate_jobs_for_a_row_embed_it_once(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('v1')")
    for version in ("v2", "v3", "v4"):
        conn.execute("update docs set body = %s", (version,))
    assert queue_depth(conn) == 4
    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS))
    drain(dsn, settings, FixedEmbedders(settings, recorder))
    assert recorder.texts == ["v4"]
    np.testing.assert_allclose(vectors(conn)[1], expected("v4"), atol=1e-6)


def test_rows_whose_content_is_already_embedded_are_skipped(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('A')")
    drain(dsn, settings)
    conn.execute("update docs set body = 'B'")
    conn.execute("update docs set body = 'A'")  # back to the embedded content before the worker ran
    conn.execute("select autoembed.backfill('docs', only_missing => false)")
    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS))
    drain(dsn, settings, FixedEmbedders(settings, recorder))
    # the clear-on-change trigger emptied the column, so 'A' is embedded once more, then never again
    assert recorder.texts == ["A"]
    conn.execute("select autoembed.backfill('docs', only_missing => false)")
    recorder.calls.clear()
    drain(dsn, settings, FixedEmbedders(settings, recorder))
    assert recorder.texts == []
    np.testing.assert_allclose(vectors(conn)[1], expected("A"), atol=1e-6)


@pytest.mark.parametrize("clear_on_change", [True, False])
def test_a_concurrent_update_during_the_model_call_wins(conn, dsn, settings, clear_on_change):
    create_docs(conn)
    watch(conn, clear_on_change=clear_on_change)
    conn.execute("insert into docs (body) values ('first version')")

    def change_row_while_embedding(texts):
        if "first version" in texts:
            with psycopg.connect(dsn, autocommit=True) as other:
                other.execute("update docs set body = 'second version'")

    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS), before=change_row_while_embedding)
    drain(dsn, settings, FixedEmbedders(settings, recorder))
    assert recorder.texts == ["first version", "second version"]
    np.testing.assert_allclose(vectors(conn)[1], expected("second version"), atol=1e-6)
    assert queue_depth(conn) == 0


@pytest.mark.parametrize("clear_on_change", [True, False])
def test_a_row_whose_key_changed_is_embedded_by_its_new_key_and_the_old_key_forgotten(conn, dsn, settings,
                                                                                     clear_on_change):
    """A vector moves with its row when the key changes; what the worker knew about the old key must
    not vouch for whichever row takes that key next."""
    create_docs(conn, pk="int")
    watch(conn, clear_on_change=clear_on_change)
    conn.execute("insert into docs (id, body) values (1, 'apple'), (2, 'banana')")
    drain(dsn, settings)
    for old, new in ((1, 10), (2, 1), (10, 2)):  # the rows swap keys: 1 is 'banana' now, 2 'apple'
        conn.execute("update docs set id = %s where id = %s", (new, old))
    conn.execute("update docs set body = 'apple' where id = 1")  # key 1 holds 'apple' again, in another row
    drain(dsn, settings)
    stored = vectors(conn)
    np.testing.assert_allclose(stored[1], expected("apple"), atol=1e-6)
    np.testing.assert_allclose(stored[2], expected("apple"), atol=1e-6)
    conn.execute("update docs set id = 5 where id = 2")
    drain(dsn, settings)
    assert conn.execute("select array_agg(pk order by pk) from autoembed.row_state").fetchone()[0] == ["1", "5"]


def test_jobs_for_deleted_rows_are_dropped(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) select 'r' || g from generate_series(1, 10) g")
    conn.execute("delete from docs where id % 2 = 0")
    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS))
    drain(dsn, settings, FixedEmbedders(settings, recorder))
    assert sorted(recorder.texts) == sorted(f"r{i}" for i in range(1, 11, 2))
    assert queue_depth(conn) == 0


def test_null_and_empty_content_end_in_a_failure_record_and_no_vector(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values (null), (''), ('   '), ('fine')")
    drain(dsn, settings)
    failures = dict(conn.execute("select pk, error_message from autoembed.failures order by pk").fetchall())
    assert failures == {"1": "content is NULL: nothing to embed",
                        "2": "content is empty or whitespace only: nothing to embed",
                        "3": "content is empty or whitespace only: nothing to embed"}
    stored = vectors(conn)
    assert stored[1] is None and stored[2] is None and stored[3] is None and stored[4] is not None
    conn.execute("update docs set body = 'now there is text' where id = 1")
    drain(dsn, settings)
    assert vectors(conn)[1] is not None
    assert conn.execute("select count(*) from autoembed.failures where pk = '1'").fetchone()[0] == 0


def openai_watch(conn, **options):
    return watch(conn, embedder="openai", model="stub-model", **options)


def stub_settings(settings, stub, **changes):
    return settings.replace(**{"openai_base_url": stub.base_url, "openai_timeout": 2.0, **changes})


def test_transient_provider_errors_are_retried_until_success(conn, dsn, settings):
    create_docs(conn)
    openai_watch(conn)
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 20) g")
    with OpenAIStub(dimensions=DIMS, faults={"500": 0.3, "429": 0.2}, seed=3) as stub:
        drain(dsn, stub_settings(settings, stub))
        assert stub.counts["500"] + stub.counts["429"] > 0
    stored = vectors(conn)
    for i in range(1, 21):
        np.testing.assert_allclose(stored[i], expected(f"doc {i}"), atol=1e-6)
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0


@pytest.mark.parametrize("max_batch_size", [10, 1000])
def test_a_worker_reads_as_many_rows_as_a_remote_endpoint_keeps_busy(conn, dsn, settings, max_batch_size):
    """Batches of 10 rows are 2 requests of 5 texts: with AUTOEMBED_MAX_BATCH_SIZE above that, the
    worker reads what the endpoint's free request slots take, and more requests go at once."""
    create_docs(conn)
    openai_watch(conn)
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 600) g")
    with OpenAIStub(dimensions=DIMS, latency=0.05, capacity=16) as stub:
        drain(dsn, stub_settings(settings, stub, batch_size=10, openai_batch_size=5, max_batch_size=max_batch_size))
        most_at_once = stub.max_concurrent
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 600
    if max_batch_size == 10:
        assert most_at_once <= 2, most_at_once
    else:
        assert most_at_once >= 8, most_at_once


def test_a_bad_row_fails_alone_and_its_batch_mates_are_embedded(conn, dsn, settings):
    create_docs(conn)
    openai_watch(conn)
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 9) g")
    conn.execute("insert into docs (body) values ('this one is POISON')")
    with OpenAIStub(dimensions=DIMS, fail_texts=["POISON"]) as stub:
        drain(dsn, stub_settings(settings, stub))
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 9
    cls, message, attempts = conn.execute("select error_class, error_message, attempts from autoembed.failures "
                                          "where pk = '10'").fetchone()
    assert cls == "EmbeddingError" and "HTTP 400" in message and "POISON" in message and attempts == 1
    assert queue_depth(conn) == 0


def test_a_row_the_embedder_fails_on_while_it_answers_others_goes_to_failures_after_max_attempts(conn, dsn,
                                                                                                settings):
    create_docs(conn)
    openai_watch(conn, max_attempts=3)
    conn.execute("insert into docs (body) values ('always hangs'), ('fine')")
    with OpenAIStub(dimensions=DIMS, hang_texts=["always hangs"], hang_seconds=5) as stub:
        drain(dsn, stub_settings(settings, stub, openai_timeout=0.3))
    cls, message, attempts = conn.execute("select error_class, error_message, attempts from autoembed.failures "
                                          "where pk = '1'").fetchone()
    assert attempts == 3 and ("timed out" in message or "closed the connection" in message), message
    assert vectors(conn)[2] is not None
    assert conn.execute("select count(*) from pgmq.a_autoembed_jobs").fetchone()[0] == 1
    assert queue_depth(conn) == 0
    conn.execute("select autoembed.retry_failures('docs')")
    with OpenAIStub(dimensions=DIMS) as stub:
        drain(dsn, stub_settings(settings, stub))
    np.testing.assert_allclose(vectors(conn)[1], expected("always hangs"), atol=1e-6)
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)
    return value


def status(conn) -> tuple:
    return conn.execute("select state, rows, embedded, pending, failed, unaccounted from autoembed.status "
                        "order by source_id").fetchone()


@pytest.mark.parametrize("fault", ["503", "500", "close"])
def test_an_endpoint_that_stops_answering_costs_no_attempt_and_every_row_is_embedded_once_it_answers(
        conn, dsn, settings, fault):
    create_docs(conn)
    openai_watch(conn, max_attempts=1)
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 30) g")
    with OpenAIStub(dimensions=DIMS, faults={fault: 1.0}) as down:
        port = down.port
        with running_worker(dsn, stub_settings(settings, down)):
            wait_for(lambda: status(conn)[0].startswith("embedder unavailable: "), 10, "the outage in status")
            time.sleep(3)
            assert status(conn)[1:] == (30, 0, 30, 0, 0)  # nothing failed: the rows wait in the queue
            # The first call failed and so did the probe after it; since then one probe at a time, at
            # intervals of a second or more here (0.2 s doubling to 1 s, rows wait whole seconds).
            calls = [r for r in down.request_log if r.inputs > 1]
            probes = [r.arrived for r in down.request_log if r.inputs == 1]
            assert len(calls) <= 4 and calls[-1].arrived < probes[0], down.request_log
            assert 2 <= len(probes) <= 6 and all(gap >= 0.5 for gap in np.diff(probes)), np.diff(probes)
            down.stop()
            with OpenAIStub(dimensions=DIMS, port=port):  # the endpoint answers again, at the same address
                wait_for(lambda: status(conn)[2] == 30, 15, "every row embedded after the outage")
    assert status(conn) == ("ok", 30, 30, 0, 0, 0)
    stored = vectors(conn)
    for i in range(1, 31):
        np.testing.assert_allclose(stored[i], expected(f"doc {i}"), atol=1e-6)


def test_wrong_dimension_from_the_model_is_a_clear_failure(conn, dsn, settings):
    create_docs(conn)
    openai_watch(conn)
    conn.execute("insert into docs (body) values ('x')")
    with OpenAIStub(dimensions=DIMS + 4) as stub:
        drain(dsn, stub_settings(settings, stub))
    message = conn.execute("select error_message from autoembed.failures").fetchone()[0]
    assert f"{DIMS + 4}-dimensional" in message and f"holds {DIMS}" in message


class LocalLike(EmbedderCache):
    """`local` sources get a 384-dimensional model (like MiniLM), or, for model `no/such-model`, a
    model that does not load; the others their own embedder."""

    def get(self, kind, model, dimensions):
        if kind != "local":
            return super().get(kind, model, dimensions)
        if model == "no/such-model":
            raise ConfigError("could not load local model 'no/such-model'; tried the hub: not found")
        return build_embedder("hashing", model, 384, self._settings)


@pytest.mark.parametrize("model, problem", [
    ("sentence-transformers/all-MiniLM-L6-v2",
     "model sentence-transformers/all-MiniLM-L6-v2 makes 384-dimensional vectors, the column holds 8"),
    ("no/such-model", "could not load local model 'no/such-model'; tried the hub: not found"),
])
def test_a_source_that_cannot_be_served_is_reported_and_the_others_are_embedded(conn, dsn, settings, model, problem):
    create_docs(conn, dims=8)
    create_docs(conn, table="notes")
    docs = watch(conn, embedder="local", model=model, backfill=False)  # through SQL: no check of the model
    watch(conn, table="notes")
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 3) g")
    conn.execute("insert into notes (body) select 'note ' || g from generate_series(1, 4) g")
    worker = Worker(settings, dsn, LocalLike(settings))
    try:
        worker.pool.open()
        assert worker.check_sources() == {docs: problem}  # reported, and the worker starts all the same
        with pytest.raises(SourcesNotServed, match="3 queued row\\(s\\) of sources this worker cannot serve are "
                                                   "left: docs: broken: "):
            worker.run(drain=True)
    finally:
        worker.close()
    assert conn.execute("select count(embedding) from notes").fetchone()[0] == 4
    rows = conn.execute("select source, state, pending, failed from autoembed.status order by source_id").fetchall()
    assert rows == [("public.docs", f"broken: {problem}", 3, 0), ("public.notes", "ok", 0, 0)]
    watch(conn, embedder="hashing", model="hashing-test")  # fixed: its waiting rows are embedded
    drain(dsn, settings)
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 3
    assert conn.execute("select state from autoembed.status order by source_id").fetchall() == [("ok",), ("ok",)]


def test_a_source_whose_model_does_not_load_does_not_keep_a_running_worker_from_the_others(conn, dsn, settings):
    create_docs(conn, dims=8)
    create_docs(conn, table="notes")
    watch(conn, embedder="local", model="no/such-model", backfill=False)
    watch(conn, table="notes")
    with running_worker(dsn, settings, LocalLike(settings)):
        conn.execute("insert into docs (body) values ('waits')")
        conn.execute("insert into notes (body) values ('embedded')")
        wait_for(lambda: conn.execute("select count(embedding) from notes").fetchone()[0] == 1, 10, "notes")
        wait_for(lambda: status(conn)[0].startswith("broken: could not load"), 10, "the broken source in status")
    assert conn.execute("select pending, failed from autoembed.status order by source_id").fetchone() == (1, 0)


@pytest.mark.parametrize("vector_type", ["vector", "halfvec"])
def test_the_write_back_knows_what_it_wrote_in_either_vector_type(conn, dsn, settings, vector_type):
    create_docs(conn, vector_type=vector_type)
    watch(conn)
    conn.execute("insert into docs (body) values (''), ('second')")
    drain(dsn, settings)
    assert conn.execute("select pk, error_class from autoembed.failures").fetchall() == [("1", "EmptyContent")]
    stale = metrics.ROWS.labels("stale")._value.get()
    conn.execute("update docs set body = 'first' where id = 1")
    drain(dsn, settings)
    md5 = {text: uuid.UUID(hashlib.md5(text.encode()).hexdigest()) for text in ("first", "second")}
    assert dict(conn.execute("select pk, content_hash from autoembed.row_state")) == {"1": md5["first"],
                                                                                       "2": md5["second"]}
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0  # the old failure is gone
    assert conn.execute("select last_success_at is not null from autoembed.status").fetchone()[0]
    assert status(conn) == ("ok", 2, 2, 0, 0, 0)
    assert metrics.ROWS.labels("stale")._value.get() == stale  # no write was counted as stale
    stored = vectors(conn)
    for i, text in ((1, "first"), (2, "second")):
        np.testing.assert_allclose(stored[i], expected(text), atol=1e-3 if vector_type == "halfvec" else 1e-6)
    conn.execute("select autoembed.backfill('docs', only_missing => false)")
    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS))
    drain(dsn, settings, FixedEmbedders(settings, recorder))
    assert recorder.texts == []  # content already embedded is not embedded again


class Degenerate(HashingEmbedder):
    """The hashing embedder, but a zero vector for texts with ZERO and NaNs for texts with NAN."""

    def embed(self, texts):
        vectors = super().embed(texts)
        return [np.zeros(DIMS, np.float32) if "ZERO" in t else np.full(DIMS, np.nan, np.float32) if "NAN" in t
                else v for t, v in zip(texts, vectors)]


@pytest.mark.parametrize("clear_on_change", [True, False])
def test_a_zero_or_nan_vector_from_the_model_is_a_failure_not_written(conn, dsn, settings, clear_on_change):
    create_docs(conn)
    watch(conn, clear_on_change=clear_on_change)
    conn.execute("insert into docs (body) values ('fine'), ('was fine'), ('NAN here')")
    embedders = FixedEmbedders(settings, Degenerate("hashing-test", DIMS))
    drain(dsn, settings, embedders)
    conn.execute("update docs set body = 'ZERO now' where id = 2")  # its old vector describes gone content
    drain(dsn, settings, embedders)
    assert dict(conn.execute("select pk, error_class from autoembed.failures")) == {"2": "ZeroVector",
                                                                                   "3": "NonFiniteVector"}
    stored = vectors(conn)
    assert stored[1] is not None and stored[2] is None and stored[3] is None
    assert status(conn) == ("ok", 3, 1, 0, 2, 0)


def test_rows_neither_embedded_pending_nor_failed_are_counted_and_the_sweep_enqueues_them(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('a')")
    drain(dsn, settings)
    conn.execute("alter table docs disable trigger user")  # a path that enqueues nothing
    conn.execute("insert into docs (body) values ('b'), ('c')")
    conn.execute("alter table docs enable trigger user")
    assert status(conn) == ("2 rows unaccounted for (no embedding, job or failure): autoembed.sweep() re-enqueues "
                            "them", 3, 1, 0, 0, 2)
    assert conn.execute("select autoembed.sweep()").fetchone()[0] == 2
    assert status(conn) == ("ok", 3, 1, 2, 0, 0)
    drain(dsn, settings)
    assert status(conn) == ("ok", 3, 3, 0, 0, 0)


def test_unwatched_source_jobs_are_dropped(conn, dsn, settings):
    create_docs(conn)
    source_id = watch(conn)
    conn.execute("select autoembed.unwatch('docs')")
    conn.execute("select pgmq.send('autoembed_jobs', jsonb_build_object('source_id', %s, 'pk', '1'))", (source_id,))
    conn.execute("select pgmq.send('autoembed_jobs', '{\"something\": \"else\"}')")
    drain(dsn, settings)
    assert queue_depth(conn) == 0


def test_idle_worker_wakes_on_notify_fast(conn, dsn, settings):
    import time

    create_docs(conn)
    watch(conn)
    worker = Worker(settings.replace(poll_interval=30.0), dsn)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        conn.execute("insert into docs (body) values ('wake up')")
        started = time.monotonic()
        while conn.execute("select embedding is null from docs").fetchone()[0]:
            assert time.monotonic() - started < 5, "the worker did not wake on NOTIFY"
            time.sleep(0.01)
    finally:
        worker.stop()
        thread.join(10)
        worker.close()
    assert not thread.is_alive()


def test_duplicate_jobs_in_overlapping_batches_embed_each_content_once(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 40) g")
    conn.execute("select autoembed.backfill('docs', only_missing => false)")  # a second job for every row
    assert queue_depth(conn) == 80
    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS))
    drain(dsn, settings.replace(batch_size=5), FixedEmbedders(settings, recorder))
    assert sorted(recorder.texts) == sorted(f"doc {i}" for i in range(1, 41))
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 40


def test_stop_releases_the_prefetched_batch(conn, dsn, settings):
    conn.execute("drop function if exists pgmq.set_vt(text, bigint[], integer)")  # as pgmq 1.4.4 (Supabase) lacks it
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 30) g")
    worker = None

    def stop_during_first_embed(texts):
        worker.stop()

    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS), before=stop_during_first_embed)
    worker = Worker(settings.replace(batch_size=10), dsn, FixedEmbedders(settings, recorder))
    try:
        worker.run()
    finally:
        worker.close()
    assert len(recorder.calls) == 1  # the batch in hand was finished, nothing else started
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 10
    visible = conn.execute("select count(*) from autoembed.jobs where visible_at <= clock_timestamp()").fetchone()[0]
    assert visible == 20  # the prefetched batch went straight back to the queue
