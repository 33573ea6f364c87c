"""Schema changes under a watched table: the worker reports the broken source clearly and keeps
serving the other sources; nothing of the healthy source is lost. The broken source's rows wait
in the queue (a drain says so and exits non-zero), unless its table is gone."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest
from harness import DIMS, check, wait_until
from support import FixedEmbedders, RecordingEmbedder, create_docs, drain, queue_depth, watch

from autoembed.embedders import EmbedderCache
from autoembed.embedders.hashing import HashingEmbedder
from autoembed.worker import SourcesNotServed, Worker

COLUMN_DROPPED = "broken: autoembed: a column of source 1 (docs) was dropped"
BREAKS = {
    "content column dropped": ("alter table docs drop column body cascade", COLUMN_DROPPED),
    "embedding column dropped": ("alter table docs drop column embedding", COLUMN_DROPPED),
    "table dropped": ("drop table docs", "table dropped"),
}


def two_sources(conn) -> tuple[int, int]:
    create_docs(conn)
    create_docs(conn, table="notes")
    docs = watch(conn, max_attempts=2)
    notes = watch(conn, table="notes")
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 10) g")
    conn.execute("insert into notes (body) select 'note ' || g from generate_series(1, 10) g")
    return docs, notes


def broken_lines(caplog, source_id: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR and r.getMessage().startswith(f"source {source_id} (docs) is broken: ")]


@pytest.mark.parametrize("change", list(BREAKS))
def test_a_broken_source_is_reported_and_the_others_keep_being_served(conn, dsn, settings, caplog, change):
    caplog.set_level(logging.INFO, logger="autoembed")
    ddl, state = BREAKS[change]
    docs, notes = two_sources(conn)
    conn.execute(ddl)
    conn.execute("insert into notes (body) select 'late note ' || g from generate_series(1, 5) g")
    if change == "table dropped":  # its jobs go with it
        drain(dsn, settings)
    else:  # its rows wait, attempts untouched, until it is watched again
        with pytest.raises(SourcesNotServed, match="10 queued row\\(s\\) of sources this worker cannot serve are "
                                                   "left: docs: broken: autoembed: a column of source 1"):
            drain(dsn, settings)
    assert broken_lines(caplog, docs), [r.getMessage() for r in caplog.records]
    verdict = check(conn, table="notes", audited=False)  # its queue holds docs' waiting rows
    assert verdict.embedded == 15 and not (verdict.lost or verdict.stale or verdict.orphans), verdict
    assert queue_depth(conn) == (0 if change == "table dropped" else 10)
    assert conn.execute("select state, failed from autoembed.status where source_id = %s", (docs,)).fetchone() \
        == (state, 0)
    if change != "table dropped":  # the application's writes to the broken table still work
        conn.execute("update docs set views = views + 1")
        conn.execute("insert into docs (views) values (1)")


def test_a_dropped_table_is_reported_as_dropped_and_its_jobs_dropped_at_once(conn, dsn, settings, caplog):
    caplog.set_level(logging.INFO, logger="autoembed")
    docs, _ = two_sources(conn)
    conn.execute("drop table docs")
    drain(dsn, settings)
    lines = broken_lines(caplog, docs)
    assert len(lines) == 1 and ("does not exist" in lines[0] or "dropped" in lines[0]), lines


def test_a_renamed_table_keeps_being_embedded(conn, dsn, settings):
    two_sources(conn)
    conn.execute("alter table docs rename to papers")
    conn.execute("insert into papers (body) values ('after the rename')")
    conn.execute("update papers set body = 'changed after the rename' where id = 1")
    drain(dsn, settings)
    verdict = check(conn, table="papers", audited=False)
    assert verdict.ok and verdict.embedded == 11, verdict
    assert conn.execute("select source, state from autoembed.status order by source_id").fetchall() == \
        [("public.papers", "ok"), ("public.notes", "ok")]


def test_unwatch_during_the_model_call_drops_the_source_cleanly(conn, dsn, settings):
    docs, _ = two_sources(conn)

    def unwatch_docs(texts):
        if any(t.startswith("doc ") for t in texts):
            with psycopg.connect(dsn, autocommit=True) as other:
                other.execute("select autoembed.unwatch('docs')")

    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS), before=unwatch_docs)
    drain(dsn, settings, FixedEmbedders(settings, recorder))
    assert queue_depth(conn) == 0
    assert conn.execute("select count(*) from autoembed.sources where id = %s", (docs,)).fetchone()[0] == 0
    verdict = check(conn, table="notes", audited=False)
    assert verdict.ok and verdict.embedded == 10, verdict
    conn.execute("insert into docs (body) values ('no longer watched')")
    assert queue_depth(conn) == 0


def test_a_column_renamed_during_the_model_call_does_not_kill_the_worker(conn, dsn, settings, caplog):
    docs, _ = two_sources(conn)
    renamed = threading.Event()

    def rename_during_the_call(texts):
        if not renamed.is_set() and any(t.startswith("doc ") for t in texts):
            with psycopg.connect(dsn, autocommit=True) as other:
                other.execute("alter table docs rename column body to text_body")
            renamed.set()

    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS), before=rename_during_the_call)
    worker = Worker(settings.replace(batch_size=5), dsn, FixedEmbedders(settings, recorder))
    died: list[BaseException] = []

    def run():
        try:
            worker.run()
        except BaseException as exc:  # noqa: BLE001
            died.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert renamed.wait(10)
        conn.execute("insert into notes (body) values ('after the rename')")
        wait_until(lambda: died or conn.execute("select count(embedding) = 11 from notes").fetchone()[0], 15,
                   what="notes to be embedded")
        assert not died, f"the worker died: {died[0]!r}"
    finally:
        worker.stop()
        thread.join(30)
        worker.close()
    verdict = check(conn, table="notes", audited=False)  # docs' jobs wait out their visibility timeout
    assert verdict.embedded == 11 and not (verdict.lost or verdict.stale), verdict


def test_a_renamed_content_column_keeps_being_embedded(conn, dsn, settings):
    two_sources(conn)
    conn.execute("alter table docs rename column body to text_body")
    conn.execute("update docs set views = views + 1 where id = 1")
    conn.execute("update docs set text_body = 'edited after the rename' where id = 2")
    conn.execute("insert into docs (text_body) values ('inserted after the rename')")
    drain(dsn, settings)
    verdict = check(conn, content_sql="t.text_body", audited=False)
    assert verdict.ok and verdict.embedded == 11, verdict
    assert conn.execute("select state from autoembed.status order by source_id").fetchall() == [("ok",), ("ok",)]


class ModelRecorder(EmbedderCache):
    """Hashing embedders for every source, recording which model each text was embedded with."""

    def __init__(self, settings):
        super().__init__(settings)
        self.models: list[str] = []

    def get(self, kind: str, model: str, dimensions: int):
        recorder = self

        class Recording(HashingEmbedder):
            def embed(self, texts):
                recorder.models += [model] * len(texts)
                return super().embed(texts)

        return Recording(model, dimensions)


def test_a_model_change_is_picked_up_by_a_running_worker(conn, dsn, settings):
    create_docs(conn)
    watch(conn, model="model-a")
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 5) g")
    cache = ModelRecorder(settings)
    worker = Worker(settings, dsn, cache)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: conn.execute("select count(embedding) = 5 from docs").fetchone()[0], 10, what="model-a")
        before = len(cache.models)
        watch(conn, model="model-b")  # forgets every row's hash and re-queues every row
        wait_until(lambda: queue_depth(conn) == 0, 10, what="the re-queued rows")
        time.sleep(0.5)
    finally:
        worker.stop()
        thread.join(30)
        worker.close()
    assert cache.models[before:] == ["model-b"] * 5, cache.models[before:]
