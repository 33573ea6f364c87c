"""What the triggers enqueue (and do not) when applications write rows."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql
from support import create_docs, drain, queue_depth, watch
from support.written import pretend_embedded, queued_keys


def messages(conn) -> list[dict]:
    return [m for (m,) in conn.execute("select message from pgmq.q_autoembed_jobs order by msg_id")]


def test_a_large_insert_of_consecutive_keys_enqueues_key_ranges_of_1000(conn):
    create_docs(conn)
    source_id = watch(conn)
    conn.execute("insert into docs (body) select 'row ' || g from generate_series(1, 10500) g")
    assert queue_depth(conn) == 10500
    assert conn.execute("select count(distinct pk) from autoembed.jobs").fetchone()[0] == 10500
    assert messages(conn) == [{"source_id": source_id, "pk_range": [first, min(first + 999, 10500)]}
                              for first in range(1, 10501, 1000)]


@pytest.mark.parametrize("pk_type, keys", [
    ("int", [1, 3, 4, 5]),                                # a gap: not one run
    ("bigint", [-2**63, 2**63 - 1]),                      # the extremes: their distance overflows bigint
    ("text", ["1", "2", "3"]),                            # consecutive, but not integers
    ("numeric", [1, 2, 3]),
])
def test_other_keys_are_listed_one_by_one(conn, pk_type, keys):
    create_docs(conn, pk=pk_type)
    source_id = watch(conn)
    conn.execute(sql.SQL("insert into docs (id, body) select k::{}, 'row' from unnest(%s::text[]) k").format(sql.SQL(pk_type)),
                 ([str(k) for k in keys],))
    assert messages(conn) == [{"source_id": source_id, "pks": [str(k) for k in keys]}]
    assert [pk for (pk,) in conn.execute("select pk from autoembed.jobs order by msg_id")] == [str(k) for k in keys]


def test_consecutive_keys_at_the_top_of_bigint_make_a_range(conn):
    create_docs(conn, pk="bigint")
    source_id = watch(conn)
    conn.execute("insert into docs (id, body) select 9223372036854775807 - g, 'row' from generate_series(0, 1001) g")
    top = 2**63 - 1
    assert messages(conn) == [{"source_id": source_id, "pk_range": [top - 1001, top - 2]},
                              {"source_id": source_id, "pk_range": [top - 1, top]}]
    assert conn.execute("select max(pk::numeric), count(*) from autoembed.jobs").fetchone() == (top, 1002)


def test_content_update_enqueues_and_clears_the_stale_vector(conn):
    create_docs(conn)
    watch(conn, backfill=False)
    conn.execute("alter table docs disable trigger user")
    conn.execute("insert into docs (body, embedding) values ('old', array_fill(0.1, array[16])::vector)")
    conn.execute("alter table docs enable trigger user")
    conn.execute("update docs set body = 'new' where id = 1")
    assert queue_depth(conn) == 1
    assert conn.execute("select embedding from docs").fetchone()[0] is None


def test_keep_stale_leaves_the_old_vector_until_the_new_one(conn):
    create_docs(conn)
    watch(conn, backfill=False, clear_on_change=False)
    conn.execute("alter table docs disable trigger user")
    conn.execute("insert into docs (body, embedding) values ('old', array_fill(0.1, array[16])::vector)")
    conn.execute("alter table docs enable trigger user")
    conn.execute("update docs set body = 'new'")
    assert queue_depth(conn) == 1
    assert conn.execute("select embedding is not null from docs").fetchone()[0]


def test_unrelated_update_enqueues_nothing_and_keeps_the_vector(conn):
    create_docs(conn)
    watch(conn, backfill=False)
    conn.execute("alter table docs disable trigger user")
    conn.execute("insert into docs (body, embedding) select 'b' || g, array_fill(0.1, array[16])::vector "
                 "from generate_series(1, 100) g")
    conn.execute("alter table docs enable trigger user")
    conn.execute("update docs set views = views + 1, title = 'renamed'")
    conn.execute("update docs set body = body")  # same content: nothing to do
    assert queue_depth(conn) == 0
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 100


def test_content_function_change_is_detected_through_any_input_column(conn):
    create_docs(conn)
    conn.execute("create function doc_input(d docs) returns text language sql immutable "
                 "as $$ select d.title || ': ' || d.body $$")
    watch(conn, content="doc_input", backfill=False)
    conn.execute("insert into docs (title, body) values ('t', 'b')")
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    conn.execute("update docs set views = 7")
    assert queue_depth(conn) == 0
    conn.execute("update docs set title = 'T'")
    assert queue_depth(conn) == 1


def test_delete_forgets_row_state_and_failures(conn):
    create_docs(conn)
    source_id = watch(conn, backfill=False)
    conn.execute("insert into docs (body) values ('a'), ('b')")
    conn.execute("insert into autoembed.row_state (source_id, pk, content_hash) values (%s, '1', md5('a')::uuid)", (source_id,))
    conn.execute("insert into autoembed.failures (source_id, pk, error_class, error_message, attempts) "
                 "values (%s, '2', 'X', 'boom', 1)", (source_id,))
    conn.execute("delete from docs")
    assert conn.execute("select count(*) from autoembed.row_state").fetchone()[0] == 0
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0


def test_notify_is_delivered_at_commit_not_before(dsn, conn):
    create_docs(conn)
    watch(conn, backfill=False)
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn) as writer:
        listener.execute("listen autoembed")
        writer.execute("insert into docs (body) values ('x')")
        assert list(listener.notifies(timeout=0.3, stop_after=1)) == []
        writer.commit()
        notes = list(listener.notifies(timeout=2, stop_after=1))
        assert [n.channel for n in notes] == ["autoembed"]


def test_rolled_back_insert_leaves_no_job(dsn, conn):
    create_docs(conn)
    watch(conn, backfill=False)
    with psycopg.connect(dsn) as writer:
        writer.execute("insert into docs (body) values ('x')")
        writer.rollback()
    assert queue_depth(conn) == 0


@pytest.mark.parametrize("pk_type, keys", [("bigint", "pk_range"), ("text", "pks")])
def test_job_messages_carry_only_source_id_and_keys(conn, pk_type, keys):
    create_docs(conn, pk=pk_type)
    watch(conn, backfill=False)
    conn.execute("insert into docs (id, title, body) values ('1', 'secret title', 'secret body')")
    assert [set(m) for m in messages(conn)] == [{"source_id", keys}]


def test_content_changed_by_another_before_trigger_is_still_enqueued(conn):
    """The content check runs AFTER the row is final: an application's BEFORE trigger that rewrites
    the content on an unrelated UPDATE still produces a job (and a cleared vector)."""
    create_docs(conn)
    watch(conn, backfill=False)
    conn.execute("insert into docs (title, body) values ('t', 'b')")
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    conn.execute("create function touch_body() returns trigger language plpgsql as "
                 "$$ begin new.body := new.body || ' (seen ' || new.views || ')'; return new; end $$")
    conn.execute("create trigger zz_touch_body before update on docs for each row execute function touch_body()")
    conn.execute("update docs set views = 1")
    assert conn.execute("select pk from autoembed.jobs").fetchall() == [("1",)]


def test_one_statement_mixing_content_and_other_changes_enqueues_only_the_changed_rows(conn):
    create_docs(conn)
    watch(conn, backfill=False)
    conn.execute("insert into docs (body) select 'b' || g from generate_series(1, 20) g")
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    conn.execute("update docs set views = views + 1, body = case when id % 5 = 0 then body || '!' else body end")
    assert sorted(int(r[0]) for r in conn.execute("select pk from autoembed.jobs")) == [5, 10, 15, 20]


def test_a_content_change_rolled_back_to_a_savepoint_leaves_no_job_behind(dsn, conn):
    create_docs(conn)
    watch(conn, backfill=False)
    conn.execute("insert into docs (body) values ('a'), ('b')")
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    with psycopg.connect(dsn) as app:
        with pytest.raises(psycopg.errors.DivisionByZero):
            with app.transaction():  # a savepoint inside the outer transaction
                app.execute("update docs set body = 'changed' where id = 1")
                app.execute("select 1/0")
        app.execute("update docs set views = 5")  # after the rollback: nothing changed content
        app.execute("update docs set body = 'really changed' where id = 2")
        app.commit()
    assert conn.execute("select pk from autoembed.jobs").fetchall() == [("2",)]
    assert conn.execute("select body from docs order by id").fetchall() == [("a",), ("really changed",)]


def vectors(conn, table: str = "docs") -> list[tuple[int, bool]]:
    return conn.execute(sql.SQL("select id, embedding is not null from {} order by id")
                        .format(sql.Identifier(table))).fetchall()


def test_writing_vectors_back_enqueues_nothing(conn):
    create_docs(conn)
    source_id = watch(conn, backfill=False, clear_on_change=False)
    conn.execute("insert into docs (body) select 'row ' || g from generate_series(1, 30) g")
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    pretend_embedded(conn, source_id)  # a vector where there was none
    conn.execute("update docs set body = body || '!' where id <= 3")  # kept stale (clear_on_change off) ...
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    conn.execute("update docs set embedding = array_fill(0.2, array[16])::vector where id <= 3")  # ... and replaced
    conn.execute("update docs set embedding = null where body = ''")  # the worker clears empty content's vector
    assert queue_depth(conn) == 0


RENAMES = {
    "the vector column": ["alter table docs rename column embedding to vec"],
    "the content column": ["alter table docs rename column body to text_body"],
    "the key column": ["alter table docs rename column id to doc_id"],
    "every column, and the table": ["alter table docs rename column embedding to vec",
                                    "alter table docs rename column body to views_was",
                                    "alter table docs rename column views to body",
                                    "alter table docs rename column id to doc_id",
                                    "alter table docs rename to papers"],
}


@pytest.mark.parametrize("rename", list(RENAMES))
def test_triggers_follow_renamed_columns(conn, rename):
    """The trigger that cleared a stale vector named the vector column as it was at watch time."""
    create_docs(conn)
    source_id = watch(conn, backfill=False)
    conn.execute("insert into docs (body) values ('one'), ('two'), ('three')")
    pretend_embedded(conn, source_id)
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    for ddl in RENAMES[rename]:
        conn.execute(ddl)
    src = conn.execute("select (autoembed.current_names(s)).* from autoembed.sources s").fetchone()
    names = dict(zip([d.name for d in conn.execute("select * from autoembed.sources limit 0").description], src))
    table, key, content, vector = (names["source"], names["pk_column"], names["content_column"],
                                   names["embedding_column"])
    ident = sql.SQL(table)
    other = "title"
    conn.execute(sql.SQL("update {} set {} = 'edited'").format(ident, sql.Identifier(other)))
    assert queue_depth(conn) == 0
    conn.execute(sql.SQL("update {} set {} = 'changed' where {} = 1").format(ident, sql.Identifier(content),
                                                                           sql.Identifier(key)))
    conn.execute(sql.SQL("update {} set {} = null where {} = 2").format(ident, sql.Identifier(vector),
                                                                      sql.Identifier(key)))
    assert queued_keys(conn) == ["1", "2"]
    assert conn.execute(sql.SQL("select {} from {} where {} is null order by 1").format(
        sql.Identifier(key), ident, sql.Identifier(vector))).fetchall() == [(1,), (2,)]


VECTOR_REMOVALS = {
    "the vector alone": "update docs set embedding = null where id = 1",
    "an ORM saving every column": "update docs set title = title, body = body, views = views + 1, embedding = null "
                                  "where id = 1",
}


@pytest.mark.parametrize("clear_on_change", [True, False])
@pytest.mark.parametrize("content", ["body", "doc_input"])
@pytest.mark.parametrize("removal", list(VECTOR_REMOVALS))
def test_an_update_that_removes_the_vector_enqueues_the_row_again(conn, removal, content, clear_on_change):
    """Django's save() of an instance loaded before its vector arrived writes NULL over it: the row
    was left without a vector, a job or a failure."""
    create_docs(conn)
    conn.execute("create function doc_input(d docs) returns text language sql immutable as $$ select d.body $$")
    source_id = watch(conn, content=content, backfill=False, clear_on_change=clear_on_change)
    conn.execute("insert into docs (body) values ('one'), ('two')")
    pretend_embedded(conn, source_id)
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    conn.execute(VECTOR_REMOVALS[removal])
    assert queued_keys(conn) == ["1"]
    assert vectors(conn) == [(1, False), (2, True)]


def test_the_vector_of_empty_content_is_not_enqueued_again(conn):
    """The worker writes NULL over the vector of content that became empty: no job for that."""
    create_docs(conn)
    source_id = watch(conn, backfill=False, clear_on_change=False)
    conn.execute("insert into docs (body) values ('one'), ('two')")
    pretend_embedded(conn, source_id)
    conn.execute("update docs set body = '  ' where id = 1")
    conn.execute("update docs set body = null where id = 2")
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    conn.execute("update docs set embedding = null")
    assert queue_depth(conn) == 0


@pytest.mark.parametrize("truncate", ["truncate docs restart identity", "truncate docs",
                                      "truncate parent_of_docs cascade"])
def test_truncate_forgets_row_state_and_failures_so_used_again_keys_start_afresh(conn, dsn, settings, truncate):
    create_docs(conn)
    conn.execute("create table parent_of_docs (id int primary key)")
    conn.execute("alter table docs add column parent int references parent_of_docs")
    source_id = watch(conn, backfill=False)
    conn.execute("insert into docs (body) values ('one'), ('two'), ('three')")
    pretend_embedded(conn, source_id)
    conn.execute("insert into autoembed.failures (source_id, pk, content_hash, error_class, error_message, attempts) "
                 "values (%s, '2', md5('two')::uuid, 'Permanent', 'boom', 5)", (source_id,))
    conn.execute(truncate)
    assert conn.execute("select count(*) from autoembed.row_state").fetchone()[0] == 0
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")
    conn.execute("insert into docs (id, body) overriding system value values (1, 'one'), (2, 'two'), (3, 'new three')")
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")  # lost jobs: the sweep must find every row
    assert conn.execute("select autoembed.sweep()").fetchone()[0] == 3
    drain(dsn, settings)
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 3


def test_every_trigger_names_no_column_and_calls_no_content_function(conn):
    """A column a trigger names (in WHEN or a column list) cannot change type (`cannot alter type of
    a column used in a trigger definition`), and a WHEN clause runs inside the application's
    statement, with its rights."""
    create_docs(conn)
    conn.execute("create function doc_input(d docs) returns text language sql immutable as $$ select d.body $$")
    watch(conn, content="doc_input", backfill=False)
    depends = conn.execute(
        "select count(*) from pg_depend d join pg_trigger t on t.oid = d.objid "
        "where d.classid = 'pg_trigger'::regclass and t.tgname like 'autoembed%%' "
        "and ((d.refclassid = 'pg_class'::regclass and d.refobjsubid <> 0) "
        "     or (d.refclassid = 'pg_proc'::regclass and d.refobjid = 'doc_input'::regproc))").fetchone()[0]
    assert depends == 0
