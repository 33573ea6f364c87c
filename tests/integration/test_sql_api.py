"""The SQL API as a psql-only client uses it: watch, unwatch, backfill, retry, status, search."""

from __future__ import annotations

import psycopg
import pytest
from support import DIMS, create_docs, queue_depth, watch


def test_watch_registers_and_backfills_existing_rows(conn):
    create_docs(conn)
    conn.execute("insert into docs (body) values ('one'), ('two'), ('three')")
    source_id = watch(conn)
    row = conn.execute("select table_name, pk_column, content_column, dimensions, embedder from autoembed.sources "
                       "where id = %s", (source_id,)).fetchone()
    assert row == ("docs", "id", "body", DIMS, "hashing")
    messages = conn.execute("select message from pgmq.q_autoembed_jobs order by msg_id").fetchall()
    assert [m[0] for m in messages] == [{"source_id": source_id, "pks": ["1", "2", "3"]}]


def test_watch_without_backfill_enqueues_nothing(conn):
    create_docs(conn)
    conn.execute("insert into docs (body) values ('one')")
    watch(conn, backfill=False)
    assert queue_depth(conn) == 0


@pytest.mark.parametrize("pk", ["bigint generated always as identity", "uuid default gen_random_uuid()",
                                "text default md5(random()::text)"])
def test_any_single_column_key_type(conn, pk):
    create_docs(conn, pk=pk)
    watch(conn)
    conn.execute("insert into docs (body) values ('x')")
    key = conn.execute("select id::text from docs").fetchone()[0]
    assert conn.execute("select pk from autoembed.jobs").fetchone()[0] == key


def test_content_function_and_halfvec_column(conn):
    create_docs(conn, vector_type="halfvec")
    conn.execute("create function doc_input(d docs) returns text language sql immutable "
                 "as $$ select coalesce(d.title, '') || E'\\n\\n' || coalesce(d.body, '') $$")
    source_id = watch(conn, content="doc_input")
    assert conn.execute("select content_function::text from autoembed.sources where id = %s",
                        (source_id,)).fetchone()[0] == "public.doc_input"  # by name: pg_upgrade keeps it
    conn.execute("insert into docs (title, body) values ('t', 'b')")
    content = conn.execute("select content from autoembed.load_content(%s, array['1'])", (source_id,)).fetchone()[0]
    assert content == "t\n\nb"


def test_watch_again_updates_the_registration_and_reembeds_on_model_change(conn):
    create_docs(conn)
    first = watch(conn)
    conn.execute("insert into docs (body) values ('x')")
    conn.execute("insert into autoembed.row_state (source_id, pk, content_hash) values (%s, '1', md5('x')::uuid)", (first,))
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    second = watch(conn, model="another-model", max_attempts=2)
    assert second == first
    assert conn.execute("select model, max_attempts from autoembed.sources").fetchone() == ("another-model", 2)
    assert conn.execute("select count(*) from autoembed.row_state").fetchone()[0] == 0
    assert queue_depth(conn) == 1  # every row again, embedded or not


BAD_WATCH = [
    ("missing table", "create table ok (id int primary key, body text, embedding vector(16))",
     "select autoembed.watch('nope', 'body')", 'relation "nope" does not exist'),
    ("missing content column", "create table t1 (id int primary key, body text, embedding vector(16))",
     "select autoembed.watch('t1', 'bodyy')", "is neither a column of t1 nor a function"),
    ("missing embedding column", "create table t2 (id int primary key, body text)",
     "select autoembed.watch('t2', 'body')", "table t2 has no column embedding"),
    ("embedding column not a vector", "create table t3 (id int primary key, body text, embedding text)",
     "select autoembed.watch('t3', 'body')", "is text, not a vector or halfvec column"),
    ("vector without dimension", "create table t4 (id int primary key, body text, embedding vector)",
     "select autoembed.watch('t4', 'body')", "must have a fixed dimension"),
    ("composite key", "create table t5 (a int, b int, body text, embedding vector(16), primary key (a, b))",
     "select autoembed.watch('t5', 'body')", "composite primary key (a, b)"),
    ("no key", "create table t6 (body text, embedding vector(16))",
     "select autoembed.watch('t6', 'body')", "has no primary key"),
    ("a view", "create table t7 (id int primary key, body text, embedding vector(16)); create view v7 as select * from t7",
     "select autoembed.watch('v7', 'body')", "is not a table"),
    ("content is the embedding", "create table t8 (id int primary key, body text, embedding vector(16))",
     "select autoembed.watch('t8', 'embedding')", "cannot be the same column"),
    ("unknown embedder", "create table t9 (id int primary key, body text, embedding vector(16))",
     "select autoembed.watch('t9', 'body', embedder => 'magic')", "unknown embedder 'magic'"),
    ("unknown distance", "create table t10 (id int primary key, body text, embedding vector(16))",
     "select autoembed.watch('t10', 'body', distance => 'manhattan')", "unknown distance 'manhattan'"),
    ("max_attempts 0", "create table t11 (id int primary key, body text, embedding vector(16))",
     "select autoembed.watch('t11', 'body', max_attempts => 0)", "max_attempts must be at least 1"),
    ("function returning int", "create table t12 (id int primary key, body text, embedding vector(16)); "
     "create function t12_len(r t12) returns int language sql as $$ select 1 $$",
     "select autoembed.watch('t12', 't12_len')", "must return text"),
    ("injection in content", "create table t13 (id int primary key, body text, embedding vector(16))",
     "select autoembed.watch('t13', 'body; drop table t13; --')", "is neither a column of t13"),
]


@pytest.mark.parametrize("setup, call, message", [case[1:] for case in BAD_WATCH], ids=[c[0] for c in BAD_WATCH])
def test_watch_rejects_bad_arguments_with_a_clear_error_and_changes_nothing(conn, setup, call, message):
    conn.execute(setup)
    with pytest.raises(psycopg.Error, match=message.replace("(", r"\(").replace(")", r"\)")):
        conn.execute(call)
    assert conn.execute("select count(*) from autoembed.sources").fetchone()[0] == 0
    assert conn.execute("select count(*) from pg_trigger where tgname like 'autoembed%'").fetchone()[0] == 0
    assert conn.execute("select count(*) from pg_class where relname like 't1_'").fetchone()[0] in (0, 1)


def test_identifiers_with_quotes_spaces_and_sql_are_quoted(conn):
    table, column, emb = 'we"ird ta; ble', 'bo"dy; drop table x', "emb ed"
    conn.execute(psycopg.sql.SQL("create table {} (id int primary key, {} text, {} vector(16))").format(
        psycopg.sql.Identifier(table), psycopg.sql.Identifier(column), psycopg.sql.Identifier(emb)))
    conn.execute("select autoembed.watch(%s::regclass, %s, %s, embedder => 'hashing', model => 'h')",
                 (psycopg.sql.Identifier(table).as_string(conn), column, emb))
    conn.execute(psycopg.sql.SQL("insert into {} values (1, 'hello', null)").format(psycopg.sql.Identifier(table)))
    assert queue_depth(conn) == 1
    source_id = conn.execute("select id from autoembed.sources").fetchone()[0]
    assert conn.execute("select content from autoembed.load_content(%s, array['1'])", (source_id,)).fetchone()[0] == "hello"


def test_unwatch_drops_triggers_and_pending_jobs_but_keeps_vectors(conn):
    create_docs(conn)
    conn.execute("insert into docs (body, embedding) values ('x', array_fill(0.5, array[16])::vector)")
    watch(conn, backfill=False)
    conn.execute("insert into docs (body) values ('y')")
    assert queue_depth(conn) == 1
    conn.execute("select autoembed.unwatch('docs')")
    assert queue_depth(conn) == 0
    conn.execute("insert into docs (body) values ('z')")
    assert queue_depth(conn) == 0
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 1
    with pytest.raises(psycopg.Error, match="table public.docs is not watched"):
        conn.execute("select autoembed.unwatch('docs')")


def test_backfill_only_missing_or_all_in_chunks(conn):
    create_docs(conn)
    watch(conn, backfill=False)
    conn.execute("alter table docs disable trigger user")
    conn.execute("insert into docs (body) select 'row ' || g from generate_series(1, 25) g")
    conn.execute("update docs set embedding = array_fill(0.1, array[16])::vector where id <= 5")
    conn.execute("alter table docs enable trigger user")
    assert conn.execute("select autoembed.backfill('docs', chunk_size => 7)").fetchone()[0] == 20
    assert conn.execute("select count(distinct pk) from autoembed.jobs").fetchone()[0] == 20
    assert conn.execute("select autoembed.backfill('docs', only_missing => false, chunk_size => 4)").fetchone()[0] == 25
    with pytest.raises(psycopg.Error, match="chunk_size must be at least 1"):
        conn.execute("select autoembed.backfill('docs', chunk_size => 0)")


def test_retry_failures_reenqueues_and_clears(conn):
    create_docs(conn)
    source_id = watch(conn, backfill=False)
    conn.execute("insert into autoembed.failures (source_id, pk, error_class, error_message, attempts) "
                 "values (%s, '1', 'X', 'boom', 5), (%s, '2', 'X', 'boom', 5)", (source_id, source_id))
    assert conn.execute("select autoembed.retry_failures('docs')").fetchone()[0] == 2
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0
    assert queue_depth(conn) == 2
    assert conn.execute("select autoembed.retry_failures()").fetchone()[0] == 0


def test_status_view_counts_rows_embedded_pending_failed(conn):
    create_docs(conn)
    conn.execute("insert into docs (body) values ('a'), ('b'), ('c')")
    source_id = watch(conn)
    conn.execute("update docs set embedding = array_fill(0.1, array[16])::vector where id = 1")
    conn.execute("insert into autoembed.failures (source_id, pk, error_class, error_message, attempts) "
                 "values (%s, '3', 'X', 'boom', 5)", (source_id,))
    status = conn.execute("select source, state, rows, embedded, pending, failed, oldest_pending_age is not null "
                          "from autoembed.status").fetchone()
    assert status == ("public.docs", "ok", 3, 1, 3, 1, True)
    assert conn.execute("select queue_length, queue_rows from autoembed.queue_status").fetchone() == (1, 3)


def test_renamed_columns_keep_working_and_dropped_ones_are_reported(conn):
    create_docs(conn)
    source_id = watch(conn)
    conn.execute("alter table docs rename column body to text_body")
    conn.execute("alter table docs rename column id to doc_id")
    conn.execute("insert into docs (text_body) values ('after the rename')")
    conn.execute("update docs set text_body = 'changed' where doc_id = 1")
    assert conn.execute("select state, pending from autoembed.status").fetchone() == ("ok", 1)
    assert conn.execute("select content from autoembed.load_content(%s, array['1'])", (source_id,)).fetchone()[0] == "changed"
    conn.execute("alter table docs drop column text_body cascade")  # the clear-on-change trigger uses it
    state = conn.execute("select state from autoembed.status").fetchone()[0]
    assert state == "broken: autoembed: a column of source 1 (docs) was dropped"
    conn.execute("insert into docs (title) values ('the application still writes')")  # warns, never fails
    conn.execute("drop table docs")
    assert conn.execute("select source, state from autoembed.status").fetchone() == ("docs", "table dropped")


def test_search_orders_by_distance_and_validates(conn):
    create_docs(conn, dims=3)
    watch(conn, backfill=False)
    conn.execute("alter table docs disable trigger user")
    conn.execute("insert into docs (body, embedding) values ('x', '[1,0,0]'), ('y', '[0,1,0]'), ('z', '[0.9,0.1,0]')")
    hits = conn.execute("select pk, content from autoembed.search('docs', '[1,0,0]', 2)").fetchall()
    assert hits == [("1", "x"), ("3", "z")]
    with pytest.raises(psycopg.Error, match="query has 2 dimensions, docs.embedding holds 3"):
        conn.execute("select * from autoembed.search('docs', '[1,0]')")
    with pytest.raises(psycopg.Error, match="k must be at least 1"):
        conn.execute("select * from autoembed.search('docs', '[1,0,0]', 0)")


def test_capabilities_report_missing_optional_extensions(conn):
    caps = {f: (a, d) for f, a, d in conn.execute("select * from autoembed.capabilities()").fetchall()}
    assert caps["vector"][0] and caps["pgmq"][0]
    if not caps["pg_net"][0]:  # absent, or installed for another database: either way, what to run instead
        assert "run `autoembed worker`" in caps["pg_net"][1], caps["pg_net"]
    assert "sweep" in caps["pg_cron"][1]


def test_sweep_reenqueues_rows_missed_by_every_other_path(conn):
    create_docs(conn)
    source_id = watch(conn, backfill=False)
    conn.execute("alter table docs disable trigger user")  # writes that bypass the triggers
    conn.execute("insert into docs (body) select 'lost ' || g from generate_series(1, 5) g")
    conn.execute("insert into docs (body, embedding) values ('done', array_fill(0.1, array[16])::vector)")
    conn.execute("alter table docs enable trigger user")
    conn.execute("select autoembed.enqueue(%s, array['1'])", (source_id,))  # row 1 already has a job
    conn.execute("insert into autoembed.failures (source_id, pk, error_class, error_message, attempts) "
                 "values (%s, '2', 'X', 'boom', 5)", (source_id,))  # row 2 failed for good
    assert conn.execute("select autoembed.sweep()").fetchone()[0] == 3
    pks = sorted(r[0] for r in conn.execute("select pk from autoembed.jobs"))
    assert pks == ["1", "3", "4", "5"]
    assert conn.execute("select autoembed.sweep()").fetchone()[0] == 0  # nothing missed twice
