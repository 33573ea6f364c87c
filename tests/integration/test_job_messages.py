"""Job messages name chunks of rows (a key range, or a list of keys): reads by row budget, splits,
per-row retries inside a chunk, messages of the older one-row shape, and poison: messages no
autoembed wrote, which are archived, saying why, while their batch-mates are embedded."""

from __future__ import annotations

import json
import logging

import psycopg
import pytest
from support import DIMS, FixedEmbedders, RecordingEmbedder, create_docs, drain, expected, queue_depth, watch
from support.poison import POISON, send

from autoembed.breaker import PROBE_TEXT
from autoembed.embedders.hashing import HashingEmbedder
from autoembed.errors import EmbeddingError
from autoembed.jobs import decode_message, parse_job


def read(conn, max_rows: int, vt: int = 60) -> list[tuple[int, int, dict]]:
    return conn.execute("select msg_id, read_ct, message from autoembed.read_jobs(%s, %s)", (max_rows, vt)).fetchall()


def pks_of(message: dict) -> list[str]:
    """The rows a message names, as the worker reads them."""
    return list(parse_job(0, 0, message).pks)


def named_rows(messages) -> list[str]:
    return [pk for _, _, message in messages for pk in pks_of(message)]


#: key type -> an INSERT of rows 'row 1'..'row 2500' with keys 1..2500: consecutive integer keys are
#: enqueued as ranges, any other keys as lists; both are read and split the same way
KEYS = {
    "identity": ("bigint generated always as identity",
                 "insert into docs (body) select 'row ' || g from generate_series(1, 2500) g"),
    "text": ("text", "insert into docs (id, body) select g::text, 'row ' || g from generate_series(1, 2500) g"),
}


@pytest.mark.parametrize("keys", KEYS)
def test_read_jobs_takes_whole_messages_up_to_the_budget_and_splits_the_last(conn, keys):
    pk_type, insert = KEYS[keys]
    create_docs(conn, pk=pk_type)
    watch(conn, backfill=False)
    conn.execute(insert)  # messages of 1000, 1000, 500 rows
    crashed = read(conn, 1000, vt=0)  # a worker read the first message and died: it is visible again
    assert [(read_ct, len(pks_of(m))) for _, read_ct, m in crashed] == [(1, 1000)]
    first = read(conn, 300)
    assert [(read_ct, len(pks_of(m))) for _, read_ct, m in first] == [(2, 300)]
    assert named_rows(first) == [str(i) for i in range(1, 301)]
    # The other 700 rows of that message went back as a visible message that remembers the earlier attempt.
    assert conn.execute("select count(*), min(attempts), max(attempts) from autoembed.jobs "
                        "where pk::int between 301 and 1000 and visible_at <= clock_timestamp()").fetchone() == (700, 1, 1)
    second = read(conn, 1600)
    assert [len(pks_of(m)) for _, _, m in second] == [1000, 500, 100]
    rest = read(conn, 10000)
    every = named_rows(first) + named_rows(second) + named_rows(rest)
    assert sorted(every, key=int) == [str(i) for i in range(1, 2501)]  # each row read exactly once
    assert read(conn, 10) == []  # everything read is hidden for its visibility timeout
    assert queue_depth(conn) == 2500  # ... and still queued until a worker finishes it


def test_a_reader_locks_only_the_messages_it_takes(conn, dsn):
    """A concurrent reader must find the next message, not an empty queue: otherwise a worker goes
    idle while work is waiting (4 workers on one 6,000-row INSERT made 2.4x, not 3.8x, one)."""
    create_docs(conn)
    watch(conn, backfill=False)
    for first in (1, 6, 11):
        conn.execute("insert into docs (body) select 'row ' || g from generate_series(%s::int, %s::int) g", (first, first + 4))
    with psycopg.connect(dsn) as slow_reader:  # its read transaction stays open
        taken = slow_reader.execute("select message from autoembed.read_jobs(3, 60)").fetchall()
        assert [pks_of(m) for (m,) in taken] == [["1", "2", "3"]]
        assert [pks_of(m) for _, _, m in read(conn, 3)] == [["6", "7", "8"]]
        slow_reader.commit()
    assert sorted(named_rows(read(conn, 100)), key=int) == ["4", "5", "9", "10", "11", "12", "13", "14", "15"]


def test_read_jobs_rejects_a_budget_below_one_and_keeps_the_queue(conn):
    create_docs(conn)
    watch(conn, backfill=False)
    conn.execute("insert into docs (body) values ('kept')")
    with pytest.raises(psycopg.Error, match="max_rows must be at least 1, got 0"):
        read(conn, 0)
    with pytest.raises(psycopg.Error, match="vt_seconds must not be negative"):
        read(conn, 5, -1)
    assert conn.execute("select count(*) from autoembed.jobs where visible_at <= clock_timestamp()").fetchone()[0] == 1


def test_worker_batches_hold_at_most_batch_size_rows_of_large_messages(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 1234) g")
    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS))
    drain(dsn, settings.replace(batch_size=50), FixedEmbedders(settings, recorder))
    assert max(len(call) for call in recorder.calls) <= 50
    assert sorted(recorder.texts) == sorted(f"doc {i}" for i in range(1, 1235))
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 1234
    assert queue_depth(conn) == 0


class OneByOne(RecordingEmbedder):
    """One text per call, failing (retryably) on texts that contain FLAKY: `flaky_failures` times in
    all, or always when None."""

    max_batch_size = 1

    def __init__(self, flaky_failures: int | None):
        super().__init__(HashingEmbedder("hashing-test", DIMS))
        self.flaky_left = flaky_failures

    def embed(self, texts):
        if "FLAKY" in texts[0] and (self.flaky_left is None or self.flaky_left > 0):
            self.calls.append(list(texts))
            if self.flaky_left is not None:
                self.flaky_left -= 1
            raise EmbeddingError("provider hiccup", retryable=True)
        return super().embed(texts)


def test_a_retried_row_goes_back_alone_and_its_chunk_mates_are_embedded_once(conn, dsn, settings):
    create_docs(conn)
    watch(conn, max_attempts=5)
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 9) g")
    conn.execute("update docs set body = 'doc 5 FLAKY' where id = 5")
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    conn.execute("select autoembed.backfill('docs', only_missing => false)")  # one message of 9 rows
    embedder = OneByOne(flaky_failures=2)
    drain(dsn, settings.replace(backoff_base=0.1), FixedEmbedders(settings, embedder))
    texts = [t for t in embedder.texts if t != PROBE_TEXT]  # each failure was followed by a probe, answered
    assert sorted(texts) == sorted([f"doc {i}" for i in range(1, 10) if i != 5] + ["doc 5 FLAKY"] * 3)
    stored = dict(conn.execute("select id, embedding from docs"))
    for i, vector in stored.items():
        assert vector is not None
        assert (vector.to_numpy() == expected("doc 5 FLAKY" if i == 5 else f"doc {i}")).all()
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0


def test_a_row_that_keeps_failing_stops_at_max_attempts_counted_across_requeues(conn, dsn, settings):
    create_docs(conn)
    watch(conn, max_attempts=3, backfill=False)
    conn.execute("insert into docs (body) values ('doc 1'), ('doc 2 FLAKY'), ('doc 3')")
    embedder = OneByOne(flaky_failures=None)
    drain(dsn, settings.replace(backoff_base=0.1), FixedEmbedders(settings, embedder))
    assert embedder.texts.count("doc 2 FLAKY") == 3
    assert conn.execute("select pk, attempts, error_message from autoembed.failures").fetchall() == [
        ("2", 3, "provider hiccup")]
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 2
    assert queue_depth(conn) == 0


def test_messages_of_the_older_one_row_shape_are_still_embedded(conn, dsn, settings):
    create_docs(conn)
    source_id = watch(conn, backfill=False)
    conn.execute("alter table docs disable trigger user")
    conn.execute("insert into docs (body) values ('queued before the upgrade')")
    conn.execute("alter table docs enable trigger user")
    conn.execute("select pgmq.send('autoembed_jobs', jsonb_build_object('source_id', %s, 'pk', '1'))", (source_id,))
    assert conn.execute("select pending from autoembed.status").fetchone()[0] == 1
    assert conn.execute("select pk, attempts from autoembed.jobs").fetchall() == [("1", 0)]
    drain(dsn, settings)
    assert (conn.execute("select embedding from docs").fetchone()[0].to_numpy()
            == expected("queued before the upgrade")).all()
    assert queue_depth(conn) == 0


@pytest.mark.parametrize("kind", POISON)
def test_a_poison_message_is_archived_saying_why_and_its_batch_mates_are_embedded(conn, dsn, settings, caplog, kind):
    caplog.set_level(logging.INFO, logger="autoembed")
    create_docs(conn)
    source_id = watch(conn, max_attempts=1, backfill=False)
    send(conn, POISON[kind].replace("SOURCE", str(source_id)))
    conn.execute("insert into docs (body) values ('good row'), ('good neighbour')")
    # Status and the sweep read the queue as it is (a source_id out of range once failed both); a
    # key that names no row counts as pending until the worker drops it.
    state, pending = conn.execute("select state, pending from autoembed.status").fetchone()
    assert state == "ok" and pending in (2, 3)
    assert conn.execute("select autoembed.sweep()").fetchone()[0] == 0
    drain(dsn, settings.replace(batch_size=1000))  # one batch: the poison and its mates together
    assert {i: v.to_numpy().tolist() for i, v in conn.execute("select id, embedding from docs")} == {
        1: expected("good row").tolist(), 2: expected("good neighbour").tolist()}
    assert queue_depth(conn) == 0 and conn.execute("select count(*) from pgmq.q_autoembed_jobs").fetchone()[0] == 0
    assert conn.execute("select count(*) from pgmq.a_autoembed_jobs").fetchone()[0] == 1
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0
    said = [r.getMessage() for r in caplog.records if "malformed job message" in r.getMessage()
            or "dropped:" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert conn.execute("select state, rows, embedded, pending, failed, unaccounted from autoembed.status").fetchone() \
        == ("ok", 2, 2, 0, 0, 0)


def test_a_message_naming_good_and_impossible_keys_embeds_the_good_ones(conn, dsn, settings, caplog):
    caplog.set_level(logging.INFO, logger="autoembed")
    create_docs(conn)
    source_id = watch(conn, backfill=False)
    conn.execute("alter table docs disable trigger user")
    conn.execute("insert into docs (body) values ('kept one'), ('kept two')")
    conn.execute("alter table docs enable trigger user")
    send(conn, json.dumps({"source_id": source_id, "pks": ["1", "abc", "2", "-1.5"]}))
    drain(dsn, settings)
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 2
    assert queue_depth(conn) == 0
    line, = [r.getMessage() for r in caplog.records if "dropped:" in r.getMessage()]
    assert line == ("2 queued row(s) dropped: 'abc' is not a valid key of public.docs (its key column id is bigint): "
                    'invalid input syntax for type bigint: "abc" (and 1 more)')


@pytest.mark.parametrize("pk_type, bad_key", [("uuid", "not-a-uuid"), ("int", "3000000000"), ("date", "yesterday-ish"),
                                              ("text", "k" * 2500)])
def test_keys_that_cannot_be_the_tables_are_dropped_whatever_the_key_type(conn, dsn, settings, pk_type, bad_key):
    create_docs(conn, pk=pk_type)
    source_id = watch(conn, backfill=False)
    key = {"uuid": "00000000-0000-0000-0000-000000000001", "int": "1", "date": "2026-01-01", "text": "a"}[pk_type]
    conn.execute("insert into docs (id, body) values (%s, 'good row')", (key,))
    send(conn, json.dumps({"source_id": source_id, "pks": [bad_key]}))
    drain(dsn, settings)
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 1
    assert queue_depth(conn) == 0
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0


#: message bodies the worker and SQL must judge alike (autoembed.job_is_valid, jobs.parse_job)
SHAPES = [*(text for kind, text in POISON.items() if kind != "nested 3,000 deep"),
          '{"source_id": SOURCE, "pks": ["1", "2"]}', '{"source_id": SOURCE, "pks": ["1"], "attempt": 4}',
          '{"source_id": SOURCE, "pk": "7"}', '{"source_id": SOURCE, "pk_range": [-1, 2], "attempt": 1}',
          '{"source_id": SOURCE, "pk_range": [9223372036854775807, 9223372036854775807]}',
          '{"source_id": SOURCE, "pk_range": [1, 1000]}', '{"source_id": SOURCE, "pk_range": [1, 1001]}',
          '{"source_id": SOURCE, "pks": ["1"], "attempt": 1000000}',
          '{"source_id": SOURCE, "pks": ["1"], "attempt": 1000001}',
          '{"source_id": 2147483647, "pks": ["x"]}', '{"source_id": 0, "pks": ["x"]}',
          '{"source_id": SOURCE, "pks": ["1"], "extra": {"any": "thing"}}', '{"source_id": 1e2, "pks": ["1"]}']


@pytest.mark.parametrize("text", SHAPES, ids=range(len(SHAPES)))
def test_sql_and_the_worker_agree_on_which_messages_are_jobs_and_what_they_name(conn, text):
    text = text.replace("SOURCE", "3")
    stored, valid, pks = conn.execute("select m::text, autoembed.job_is_valid(m), array(select autoembed.job_pks(m)) "
                                      "from (select %s::text::jsonb m) q", (text,)).fetchone()
    job = parse_job(0, 0, decode_message(stored))
    assert valid == (job is not None)
    assert pks == (list(job.pks) if job else [])
    assert conn.execute("select autoembed.job_size(%s::text::jsonb)", (text,)).fetchone()[0] == max(1, len(pks))
