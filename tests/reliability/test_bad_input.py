"""Bad input: every odd text ends in an embedding or a failure record with a clear message; none
blocks the queue or crashes the worker; text PostgreSQL cannot store is refused at the insert."""

from __future__ import annotations

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


def test_odd_texts_end_in_an_embedding_or_a_clear_failure(conn, dsn, settings):
    create_docs(conn)
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
