"""Bad input: every odd text ends in an embedding or a failure record with a clear message; none
blocks the queue or crashes the worker; text PostgreSQL cannot store is refused at the insert."""

from __future__ import annotations

import logging

import psycopg
import pytest
from harness import DIMS, check, install_audit
from support import FixedEmbedders, RecordingEmbedder, create_docs, drain, queue_depth, watch

from autoembed.embedders.hashing import HashingEmbedder

EMBEDDED = {
    "one megabyte": "lorem ipsum dolor " * (1024 * 1024 // 18),
    "control characters": "bell\x07 escape\x1b[31mred\x1b[0m del\x7f unit\x1f sep\x1e",
    "emoji": "🎉🚀 family 👩‍👩‍👧 flag 🇰🇷 skin 👍🏽",
    "korean and english": "검색 search 한국어 Korean mixed 텍스트 text",
    "newlines and tabs": "line one\nline two\r\n\tindented",
    "right to left": "שלום עולם مرحبا",
}
EMPTY = {
    "NULL": (None, "content is NULL: nothing to embed"),
    "empty": ("", "content is empty or whitespace only: nothing to embed"),
    "whitespace only": (" \t\n\u00a0\u3000 ", "content is empty or whitespace only: nothing to embed"),
}


@pytest.mark.parametrize("vector_type", ["vector", "halfvec"])
def test_odd_texts_end_in_an_embedding_or_a_clear_failure(conn, dsn, settings, vector_type):
    create_docs(conn, vector_type=vector_type)
    install_audit(conn)
    watch(conn)
    rows = {**EMBEDDED, **{k: v for k, (v, _) in EMPTY.items()}, "neighbour": "plain text"}
    ids = {}
    for name, text in rows.items():
        ids[name] = str(conn.execute("insert into docs (title, body) values (%s, %s) returning id",
                                     (name, text)).fetchone()[0])
    recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS))
    drain(dsn, settings.replace(batch_size=4), FixedEmbedders(settings, recorder))

    verdict = check(conn)
    assert verdict.ok, verdict
    assert verdict.embedded == len(EMBEDDED) + 1
    for name, (_, message) in EMPTY.items():
        assert verdict.failures[ids[name]] == ("EmptyContent", message), name
    assert sorted(recorder.texts) == sorted([*EMBEDDED.values(), "plain text"])  # each embedded once
    assert conn.execute("select count(*) from docs where embedding is null").fetchone()[0] == len(EMPTY)


@pytest.mark.parametrize("text, error", [
    ("lone \ud800 surrogate", UnicodeEncodeError),
    ("trailing \udfff", UnicodeEncodeError),
    ("nul \x00 byte", psycopg.DataError),
])
def test_text_postgres_cannot_store_is_refused_at_the_insert_and_nothing_is_lost(conn, text, error):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('before')")
    with pytest.raises(error, match="surrogates not allowed|cannot contain NUL"):
        conn.execute("insert into docs (body) values (%s)", (text,))
    conn.execute("insert into docs (body) values ('after')")  # the connection is still usable
    assert [r[0] for r in conn.execute("select body from docs order by id")] == ["before", "after"]
    assert queue_depth(conn) == 2


@pytest.mark.parametrize("literal", [r"E'\uD800'", r"U&'\DFFF'"])
def test_a_surrogate_written_in_sql_is_refused_by_the_server(conn, literal):
    create_docs(conn)
    watch(conn)
    with pytest.raises(psycopg.errors.SyntaxError, match="invalid Unicode surrogate pair"):
        conn.execute(f"insert into docs (body) values ({literal})")
    assert queue_depth(conn) == 0


CONTENT_FUNCTION = """
create function doc_content(d docs) returns text language plpgsql stable as $$
begin
    if d.body like '%boom%' then
        raise exception 'cannot build the content of row %', d.id;
    end if;
    if d.body like '%nothing%' then
        return null;
    end if;
    return coalesce(d.title, '') || ': ' || d.body;
end $$
"""
#: the content as the invariant sees it: NULL for the row whose function raises
SAFE_CONTENT = "case when t.body like '%%boom%%' then null else doc_content(t) end"


def test_a_content_function_returning_null_is_a_clear_failure(conn, dsn, settings):
    create_docs(conn)
    conn.execute(CONTENT_FUNCTION)
    watch(conn, content="doc_content")
    conn.execute("insert into docs (title, body) values ('a', 'fine'), ('b', 'nothing here'), ('c', 'fine too')")
    drain(dsn, settings)
    verdict = check(conn, content_sql=SAFE_CONTENT, audited=False)
    assert verdict.ok and verdict.embedded == 2, verdict
    assert verdict.failures == {"2": ("EmptyContent", "content is NULL: nothing to embed")}


def test_a_content_function_that_raises_fails_its_row_alone(conn, dsn, settings):
    create_docs(conn)
    conn.execute(CONTENT_FUNCTION)
    watch(conn, content="doc_content", max_attempts=2)
    conn.execute("insert into docs (title, body) values ('a', 'fine'), ('b', 'boom'), ('c', 'fine too')")
    drain(dsn, settings)
    assert queue_depth(conn) == 0
    verdict = check(conn, content_sql=SAFE_CONTENT, audited=False)
    assert verdict.embedded == 2, verdict
    failure = conn.execute("select error_message from autoembed.failures where pk = '2'").fetchone()
    assert failure is not None and "cannot build the content of row 2" in failure[0]


def test_a_table_rejecting_one_rows_vector_fails_that_row_alone(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("""create function reject_poison() returns trigger language plpgsql as $$
        begin
            if new.body = 'poison' and new.embedding is not null then
                raise exception 'row % may not be embedded', new.id;
            end if;
            return new;
        end $$""")
    conn.execute("create trigger reject_poison before update of embedding on docs for each row "
                 "execute function reject_poison()")
    conn.execute("insert into docs (body) values ('fine'), ('poison'), ('fine too')")
    drain(dsn, settings)
    verdict = check(conn, audited=False)
    assert verdict.ok and verdict.embedded == 2, verdict
    cls, message = verdict.failures["2"]
    assert cls == "RaiseException" and "row 2 may not be embedded" in message, (cls, message)


TAGS = """
create table tags (doc_id bigint, tag text);
create function tagged(d docs) returns text language sql stable as $$
    select d.body || ' ' || coalesce((select string_agg(tag, ' ' order by tag) from tags where doc_id = d.id), '')
$$
"""


@pytest.mark.parametrize("unqualified, fixed", [
    ("tags", "public.tags"),                                   # a table: relation "tags" does not exist
    ("(select doc_id, initcap(tag) as tag from tags) t", "(select doc_id, initcap(tag) as tag from public.tags) t"),
])
def test_a_content_function_that_cannot_be_evaluated_is_a_failure_and_a_broken_source(conn, dsn, settings, caplog,
                                                                                        unqualified, fixed):
    """The content function names a table without its schema: the worker evaluates it with
    search_path = pg_catalog, pg_temp, where it is not found. That is no dropped table: the rows are
    recorded as failures saying why, status says the source is broken, and nothing repeats forever."""
    caplog.set_level(logging.INFO, logger="autoembed")
    create_docs(conn)
    conn.execute(TAGS.replace("from tags", f"from {unqualified}", 1))
    conn.execute("insert into docs (body) values ('one'), ('two')")
    conn.execute("insert into tags values (1, 'red'), (2, 'blue')")
    watch(conn, content="tagged")
    drain(dsn, settings)
    failures = conn.execute("select pk, error_class, error_message from autoembed.failures order by pk").fetchall()
    assert [(pk, cls) for pk, cls, _ in failures] == [("1", "ContentError"), ("2", "ContentError")]
    assert all('relation "tags" does not exist' in message and "qualify" in message for _, _, message in failures)
    state, rows, embedded, pending, failed, unaccounted = conn.execute(
        "select state, rows, embedded, pending, failed, unaccounted from autoembed.status").fetchone()
    assert state.startswith("broken: the content cannot be read: relation \"tags\" does not exist"), state
    assert (rows, embedded, pending, failed, unaccounted) == (2, 0, 0, 2, 0)
    assert conn.execute("select autoembed.sweep()").fetchone()[0] == 0  # nothing to repeat
    assert not [r for r in caplog.records if "dropped" in r.getMessage()]
    conn.execute(TAGS.split(";", 1)[1].replace("create function", "create or replace function")
                 .replace("from tags", f"from {fixed}", 1))
    conn.execute("select autoembed.retry_failures('docs')")
    drain(dsn, settings)
    verdict = check(conn, content_sql="tagged(t)", audited=False)
    assert verdict.ok and verdict.embedded == 2, verdict
    assert conn.execute("select state from autoembed.status").fetchone()[0] == "ok"
