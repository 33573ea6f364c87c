"""Several watches of one table, each named, each with its own vector column, embedder settings,
triggers and jobs; a worker limited to some of them."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from support import create_docs, drain, expected, queue_depth, watch

from autoembed import api
from autoembed.errors import ConfigError


def two_watches(conn: psycopg.Connection) -> tuple[int, int]:
    """docs watched twice: body into `embedding` (16 dimensions), title into `title_embedding` (8)."""
    create_docs(conn)
    conn.execute("alter table docs add column title_embedding vector(8)")
    conn.execute("insert into docs (title, body) values ('first title', 'first body'), ('second title', 'second body')")
    body = watch(conn, model="hashing-body")
    title = watch(conn, content="title", embedding_column="title_embedding", model="hashing-title")
    return body, title


def vectors(conn: psycopg.Connection, column: str) -> dict[int, np.ndarray | None]:
    return {pk: (v.to_numpy() if v is not None else None)
            for pk, v in conn.execute(f"select id, {column} from docs order by id")}


def test_two_watches_of_a_table_are_embedded_by_one_worker(conn, dsn, settings):
    body, title = two_watches(conn)
    assert body != title
    assert conn.execute("select name, model from autoembed.sources order by id").fetchall() == \
        [("embedding", "hashing-body"), ("title_embedding", "hashing-title")]
    drain(dsn, settings)
    for pk, text in conn.execute("select id, body from docs"):
        np.testing.assert_allclose(vectors(conn, "embedding")[pk], expected(text), atol=1e-6)
    for pk, text in conn.execute("select id, title from docs"):
        np.testing.assert_allclose(vectors(conn, "title_embedding")[pk], expected(text, dims=8), atol=1e-6)
    rows = conn.execute("select source, watch, rows, embedded, pending, state from autoembed.status order by source_id").fetchall()
    assert rows == [("public.docs", "embedding", 2, 2, 0, "ok"), ("public.docs", "title_embedding", 2, 2, 0, "ok")]


def test_a_content_change_re_embeds_only_its_own_watch(conn, dsn, settings):
    two_watches(conn)
    drain(dsn, settings)
    title_before = vectors(conn, "title_embedding")
    conn.execute("update docs set body = 'a new body' where id = 1")
    assert conn.execute("select source_id, pk from autoembed.jobs").fetchall() == [(1, "1")]
    assert vectors(conn, "embedding")[1] is None  # cleared at once, as before
    assert vectors(conn, "title_embedding")[1] is not None
    drain(dsn, settings)
    np.testing.assert_allclose(vectors(conn, "embedding")[1], expected("a new body"), atol=1e-6)
    np.testing.assert_allclose(vectors(conn, "title_embedding")[1], title_before[1])
    conn.execute("update docs set title = 'a new title' where id = 2")
    assert conn.execute("select source_id, pk from autoembed.jobs").fetchall() == [(2, "2")]


def test_re_watching_under_the_same_name_changes_that_watch(conn, dsn, settings):
    body, title = two_watches(conn)
    drain(dsn, settings)
    assert watch(conn, content="title", embedding_column="title_embedding", model="hashing-title-2") == title
    assert conn.execute("select count(*) from autoembed.sources").fetchone()[0] == 2
    # a new model makes every stored vector of that watch stale: re-embedded, the other watch's are not
    assert conn.execute("select distinct source_id from autoembed.jobs").fetchall() == [(title,)]


def test_two_watches_cannot_share_a_vector_column(conn):
    two_watches(conn)
    with pytest.raises(psycopg.Error, match="already the embedding column of the watch 'embedding'") as caught:
        watch(conn, content="title", name="other")
    assert "name => 'embedding'" in caught.value.diag.message_hint
    assert conn.execute("select count(*) from autoembed.sources").fetchone()[0] == 2


def test_calls_without_a_name_on_a_table_watched_twice_list_the_watches(conn, settings):
    two_watches(conn)
    statements = ["select autoembed.unwatch('docs')", "select autoembed.backfill('docs')",
                  "select autoembed.retry_failures('docs')", "select * from autoembed.search_settings('docs')",
                  "select * from autoembed.search('docs', array_fill(0.1, array[16])::vector)",
                  "select * from autoembed.chunks_of('docs')"]
    for statement in statements:
        with pytest.raises(psycopg.Error, match=r"table public\.docs has 2 watches \('embedding', 'title_embedding'\)") as caught:
            conn.execute(statement)
        assert "watch => " in caught.value.diag.message_hint
    with pytest.raises(psycopg.Error, match="has 2 watches"):
        api.search(conn, "docs", "first", settings=settings)
    with pytest.raises(psycopg.Error, match=r"no watch named 'nope': its watches are 'embedding', 'title_embedding'"):
        conn.execute("select autoembed.backfill('docs', watch => 'nope')")
    conn.execute("delete from pgmq.q_autoembed_jobs")  # the jobs both watches' backfills made
    assert api.backfill(conn, "docs", only_missing=False, watch="title_embedding") == 2
    assert conn.execute("select distinct source_id from autoembed.jobs").fetchall() == [(2,)]


def test_search_and_its_settings_follow_the_named_watch(conn, dsn, settings):
    two_watches(conn)
    drain(dsn, settings)
    assert conn.execute("select dimensions from autoembed.search_settings('docs', watch => 'title_embedding')").fetchone() == (8,)
    hits = api.search(conn, "docs", "second title", k=1, settings=settings, watch="title_embedding")
    assert (hits[0].pk, hits[0].content) == ("2", "second title")
    hits = api.search(conn, "docs", "first body", k=1, settings=settings, watch="embedding")
    assert (hits[0].pk, hits[0].content) == ("1", "first body")


def test_unwatching_one_watch_leaves_the_other_working(conn, dsn, settings):
    two_watches(conn)
    drain(dsn, settings)
    said = api.unwatch(conn, "docs", watch="embedding")
    assert said.startswith("the watch 'embedding' of public.docs is no longer watched")
    triggers = {name for (name,) in conn.execute("select tgname from pg_trigger where tgrelid = 'docs'::regclass")}
    assert triggers and all(name.endswith("_2") for name in triggers), triggers
    conn.execute("insert into docs (title, body) values ('third title', 'third body')")
    conn.execute("update docs set title = 'first title, edited', body = 'edited body' where id = 1")
    drain(dsn, settings)
    np.testing.assert_allclose(vectors(conn, "title_embedding")[3], expected("third title", dims=8), atol=1e-6)
    np.testing.assert_allclose(vectors(conn, "title_embedding")[1], expected("first title, edited", dims=8), atol=1e-6)
    assert vectors(conn, "embedding")[3] is None  # nobody watches the body any more
    # one watch left: no name needed
    assert api.unwatch(conn, "docs").startswith("public.docs is no longer watched")
    assert conn.execute("select count(*) from pg_trigger where tgrelid = 'docs'::regclass").fetchone()[0] == 0


def test_chunked_and_plain_watches_of_one_table_keep_their_own_chunk_tables(conn, dsn, settings):
    create_docs(conn)
    conn.execute("alter table docs add column passages vector(16)")
    conn.execute("insert into docs (title, body) values ('t', 'one two three four five six seven eight nine ten')")
    watch(conn)
    chunked = watch(conn, embedding_column="passages", chunks=True, chunk_tokens=16, chunk_overlap=2)
    assert conn.execute("select name, chunk_table::text from autoembed.sources order by id").fetchall() == \
        [("embedding", None), ("passages", f"autoembed.chunks_{chunked}")]
    drain(dsn, settings)
    assert conn.execute("select count(*) from autoembed.chunks_of('docs', watch => 'passages')").fetchone()[0] >= 1
    with pytest.raises(psycopg.Error, match=r"the watch 'embedding' of public\.docs is not watched with chunks"):
        conn.execute("select * from autoembed.chunks_of('docs', watch => 'embedding')")
    conn.execute("delete from docs")
    assert conn.execute(f"select count(*) from autoembed.chunks_{chunked}").fetchone()[0] == 0
    api.unwatch(conn, "docs", watch="passages")
    assert conn.execute(f"select to_regclass('autoembed.chunks_{chunked}')").fetchone()[0] is None
    assert {name for (name,) in conn.execute("select tgname from pg_trigger where tgrelid = 'docs'::regclass")} == \
        {f"autoembed_{kind}_1" for kind in ("mark_changed", "enqueue_insert", "enqueue_update", "forget_delete",
                                            "forget_truncate")}


def test_a_worker_limited_to_one_watch_leaves_the_others_jobs_untouched(conn, dsn, settings):
    two_watches(conn)
    before = conn.execute("select msg_id, read_ct, vt from pgmq.q_autoembed_jobs where message ->> 'source_id' = '1'").fetchall()
    worker = drain(dsn, settings.replace(watches=("docs.title_embedding",)))  # returns: its own watch is done
    assert worker.unservable == {}
    assert all(v is not None for v in vectors(conn, "title_embedding").values())
    assert all(v is None for v in vectors(conn, "embedding").values())
    # the other watch's jobs were not read: not delayed, no attempt counted, no failure
    assert conn.execute("select msg_id, read_ct, vt from pgmq.q_autoembed_jobs").fetchall() == before
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0
    assert queue_depth(conn) == 2
    drain(dsn, settings.replace(watches=("docs",)))  # `table`: every watch of it
    assert queue_depth(conn) == 0
    assert all(v is not None for v in vectors(conn, "embedding").values())


def test_unknown_watches_are_a_config_error(conn):
    two_watches(conn)
    assert api.check_watches(conn, ["docs.embedding", "public.docs.title_embedding", "docs"]) == [1, 2, 1, 2]
    for unknown in ("docs.nope", "nope", "nope.embedding"):
        with pytest.raises(ConfigError, match=f"'{unknown}' names no watch"):
            api.check_watches(conn, [unknown])
