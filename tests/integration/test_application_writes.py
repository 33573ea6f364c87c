"""Application writes never fail, stall or change meaning because of autoembed: whatever the content
function does, whatever the column types become, whatever constraints the vector column gains."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql
from support import DIMS, create_docs, drain, expected, queue_depth, watch
from support.roles import as_role, make_role  # noqa: F401 (a fixture)
from support.written import queued_keys


@pytest.fixture
def app_writer(conn, make_role):  # noqa: F811
    """`app_writer()`: a login role that may read and write docs, nothing else (no rights on
    autoembed, pgmq or any other table)."""
    def writer() -> str:
        role = make_role("app_writer")
        conn.execute(sql.SQL("grant select, insert, update, delete on docs to {}").format(sql.Identifier(role)))
        return role
    return writer


def embed_everything(conn, dsn, settings) -> None:
    drain(dsn, settings)
    assert queue_depth(conn) == 0


# A content function that fails for some rows, in the ways content functions fail.
MISBEHAVING = {
    "raises for some content": "begin if d.body = 'bad' then raise exception 'boom in row %', d.id; end if; "
                               "return d.body; end",
    "reads a table the application cannot read": "begin return d.body || (select coalesce(string_agg(t.tag, ','), '') "
                                                 "from public.tags t where d.body = 'bad'); end",
    "divides by zero": "begin return d.body || (1 / (case when d.body = 'bad' then 0 else 1 end))::text; end",
    "names a table without its schema": "begin if d.body = 'bad' then return (select count(*) from tags)::text; end if; "
                                        "return d.body; end",
}


@pytest.mark.parametrize("behaviour", list(MISBEHAVING))
def test_a_failing_content_function_never_fails_the_applications_update(conn, dsn, app_writer, behaviour):
    create_docs(conn)
    conn.execute("create table tags (tag text)")
    conn.execute(f"create function doc_input(d docs) returns text language plpgsql as $$ {MISBEHAVING[behaviour]} $$")
    watch(conn, content="doc_input", backfill=False)
    with as_role(dsn, app_writer()) as app:
        app.execute("insert into docs (body) values ('good'), ('fine'), ('bad')")
        app.execute("update docs set body = 'bad' where id = 1")  # the old content is fine, the new one fails
        app.execute("update docs set title = 'edited'")  # a statement that also touches the failing rows
        app.execute("update docs set body = 'good again' where id = 3")
    assert {"1", "2", "3"} <= set(queued_keys(conn))


def test_a_failing_content_function_still_clears_the_changed_rows_vector(conn, dsn, settings):
    create_docs(conn)
    conn.execute("create function doc_input(d docs) returns text language plpgsql as $$ "
                 "begin if d.body = 'bad' then raise exception 'boom'; end if; return d.body; end $$")
    watch(conn, content="doc_input", backfill=False)
    conn.execute("insert into docs (body) values ('good'), ('other')")
    embed_everything(conn, dsn, settings)
    conn.execute("update docs set body = 'bad' where id = 1")
    assert conn.execute("select id, embedding is null from docs order by id").fetchall() == [(1, True), (2, False)]
    assert queued_keys(conn) == ["1"]


def test_a_content_function_runs_as_the_owner_inside_the_applications_update(conn, dsn, app_writer):
    """The function reads a table the writing role cannot read: only the owner's rights make it work."""
    create_docs(conn)
    conn.execute("create table tags (doc_id bigint, tag text)")
    conn.execute("insert into tags values (1, 'alpha')")
    conn.execute("create function doc_input(d docs) returns text language sql stable as $$ "
                 "select d.body || ' ' || coalesce((select string_agg(t.tag, ' ') from public.tags t "
                 "where t.doc_id = d.id), '') $$")
    watch(conn, content="doc_input", backfill=False)
    with as_role(dsn, app_writer()) as app:
        app.execute("insert into docs (body) values ('one')")
        conn.execute("select pgmq.purge_queue('autoembed_jobs')")
        app.execute("update docs set views = views + 1")  # the content is the same: nothing to do
        assert queue_depth(conn) == 0
        app.execute("update docs set body = 'two'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("select * from tags")
    assert queued_keys(conn) == ["1"]


def content_function_calls(conn) -> int:
    return conn.execute("select count(*) from calls").fetchone()[0]


def test_a_content_function_runs_at_most_twice_per_changed_row_and_never_on_insert(conn, dsn, settings):
    """It ran six times per row of a one-row UPDATE (WHEN clauses on the old and the new row, per
    trigger): a one-second function made it take three seconds."""
    create_docs(conn)
    conn.execute("create table calls (at timestamptz default clock_timestamp())")
    conn.execute("create function doc_input(d docs) returns text language plpgsql volatile as $$ "
                 "begin insert into public.calls default values; return d.body; end $$")
    watch(conn, content="doc_input", backfill=False)
    conn.execute("insert into docs (body) select 'row ' || g from generate_series(1, 10) g")
    assert content_function_calls(conn) == 0
    conn.execute("update docs set title = 'x' where id = 1")  # not embedded yet: old and new content
    assert content_function_calls(conn) == 2
    embed_everything(conn, dsn, settings)
    conn.execute("truncate calls")
    conn.execute("update docs set title = 'y' where id = 2")  # embedded: the new content against its hash
    assert content_function_calls(conn) == 1
    conn.execute("update docs set embedding = embedding where id <= 5")  # only the vector column: never
    assert content_function_calls(conn) == 1


ALTERATIONS = {
    "content column to varchar": "alter table docs alter column body type varchar(200)",
    "content column to a domain": "create domain short_text as text; alter table docs alter column body type short_text",
    "key column to int": "alter table docs alter column id type int",
    "an unrelated column": "alter table docs alter column views type bigint",
    "vector column to halfvec": f"alter table docs alter column embedding type halfvec({DIMS})",
}


@pytest.mark.parametrize("alteration", list(ALTERATIONS))
def test_any_column_can_change_type_and_the_table_stays_watched(conn, dsn, settings, alteration):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('before'), ('other')")
    embed_everything(conn, dsn, settings)
    conn.execute(ALTERATIONS[alteration])
    conn.execute("update docs set body = 'after' where id = 1")
    assert conn.execute("select id, embedding is null from docs order by id").fetchall() == [(1, True), (2, False)]
    assert queued_keys(conn) == ["1"]
    drain(dsn, settings)
    vector = conn.execute("select embedding from docs where id = 1").fetchone()[0]
    assert vector is not None
    assert abs(vector.to_list()[0] - expected("after")[0]) < 1e-2


def test_a_column_read_by_a_content_function_can_change_type(conn):
    create_docs(conn)
    conn.execute("create function doc_input(d docs) returns text language sql immutable "
                 "as $$ select d.title || ': ' || d.body $$")
    watch(conn, content="doc_input", backfill=False)
    conn.execute("alter table docs alter column title type varchar(50)")
    conn.execute("insert into docs (title, body) values ('t', 'b')")
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    conn.execute("update docs set title = 'T'")
    assert queued_keys(conn) == ["1"]


@pytest.mark.parametrize("column", [f"embedding vector({DIMS}) not null",
                                    f"embedding vector({DIMS}) not null default array_fill(0, array[{DIMS}])::vector"])
def test_watch_refuses_a_not_null_vector_column_saying_what_to_change(conn, column):
    """Django's VectorField(dimensions=..., editable=False) makes one: every INSERT failed after watch."""
    conn.execute(f"create table docs (id bigint generated always as identity primary key, body text, {column})")
    with pytest.raises(psycopg.errors.RaiseException) as refused:
        conn.execute("select autoembed.watch('docs', 'body', embedder => 'hashing', model => 'h')")
    assert "NOT NULL" in str(refused.value)
    assert "alter table docs alter column embedding drop not null" in refused.value.diag.message_hint
    assert "null=True" in refused.value.diag.message_hint
    assert conn.execute("select count(*) from autoembed.sources").fetchone()[0] == 0
    assert conn.execute("select count(*) from pg_trigger where tgrelid = 'docs'::regclass").fetchone()[0] == 0


RESTRICTIONS = {
    "NOT NULL": "alter table docs alter column embedding set not null",
    "a CHECK constraint": "alter table docs add constraint has_vector check (embedding is not null)",
    "a trigger of the application": (
        "create function keep_vectors() returns trigger language plpgsql as $$ begin "
        "if new.embedding is null and old.embedding is not null then raise exception 'vectors are kept'; end if; "
        "return new; end $$; "
        "create trigger keep_vectors before update on docs for each row execute function keep_vectors()"),
}


@pytest.mark.parametrize("restriction", list(RESTRICTIONS))
def test_a_vector_that_cannot_be_cleared_never_fails_the_applications_update(conn, dsn, settings, app_writer,
                                                                            restriction):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('one'), ('two')")
    embed_everything(conn, dsn, settings)
    conn.execute(RESTRICTIONS[restriction])
    with as_role(dsn, app_writer()) as app:
        app.execute("update docs set body = 'changed' where id = 1")
    assert conn.execute("select body from docs where id = 1").fetchone()[0] == "changed"
    assert queued_keys(conn) == ["1"]  # the worker replaces the vector it could not clear
    drain(dsn, settings)
    vector = conn.execute("select embedding from docs where id = 1").fetchone()[0]
    assert vector.to_list() == pytest.approx(expected("changed").tolist(), abs=1e-6)


def test_watch_refuses_a_generated_vector_column(conn):
    conn.execute(f"create table docs (id int primary key, body text, "
                 f"embedding vector({DIMS}) generated always as (array_fill(0, array[{DIMS}])::vector) stored)")
    with pytest.raises(psycopg.errors.RaiseException, match="is a generated column"):
        conn.execute("select autoembed.watch('docs', 'body', embedder => 'hashing', model => 'h')")


GENERATED = {
    "a generated column": ("content", "content"),
    "a function reading a generated column": ("content", "doc_input"),
}


@pytest.mark.parametrize("case", list(GENERATED))
def test_a_generated_column_can_be_the_content(conn, dsn, settings, case):
    """watch failed with PostgreSQL's `BEFORE trigger's WHEN condition cannot reference NEW generated columns`."""
    conn.execute(f"create table docs (id bigint generated always as identity primary key, title text, body text, "
                 f"views int default 0, content text generated always as (coalesce(title, '') || ': ' || "
                 f"coalesce(body, '')) stored, embedding vector({DIMS}))")
    conn.execute("create function doc_input(d docs) returns text language sql immutable as $$ select upper(d.content) $$")
    content = GENERATED[case][1]
    watch(conn, content=content)
    text = (lambda title, body: f"{title}: {body}") if content == "content" else (lambda t, b: f"{t}: {b}".upper())
    conn.execute("insert into docs (title, body) values ('a', 'one'), ('b', 'two')")
    embed_everything(conn, dsn, settings)
    conn.execute("update docs set views = 1")
    assert queue_depth(conn) == 0
    conn.execute("update docs set title = 'c' where id = 1")  # changes the generated content
    assert conn.execute("select id, embedding is null from docs order by id").fetchall() == [(1, True), (2, False)]
    assert queued_keys(conn) == ["1"]
    drain(dsn, settings)
    rows = conn.execute("select title, body, embedding from docs order by id").fetchall()
    for title, body, vector in rows:
        assert vector.to_list() == pytest.approx(expected(text(title, body)).tolist(), abs=1e-6)
