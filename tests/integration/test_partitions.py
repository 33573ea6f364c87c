"""A partitioned table behaves like any watched table, whichever table a statement names: the
parent, a partition that existed at watch time, one created or attached later, or a partition of
a partition."""

from __future__ import annotations

import pytest
from psycopg import sql
from support import DIMS, drain, queue_depth, watch
from support.written import pretend_embedded, queued_keys

from autoembed.embedders.hashing import HashingEmbedder

VECTOR = f"array_fill(0.1, array[{DIMS}])::vector"


def create_partitioned(conn) -> None:
    """docs, partitioned by key range: docs_low (1-99) at watch time; docs_high (100-199) and the
    sub-partitioned docs_top (200-399: docs_top_a, docs_top_b) created afterwards by the tests."""
    conn.execute(f"create table docs (id bigint, title text, body text, views int default 0, "
                 f"embedding vector({DIMS}), primary key (id)) partition by range (id)")
    conn.execute("create table docs_low partition of docs for values from (1) to (100)")


def later_partition(conn, how: str) -> str:
    """A partition added after watch: created in place, attached, or a partition of a partition."""
    if how == "created":
        conn.execute("create table docs_high partition of docs for values from (100) to (200)")
        return "docs_high"
    if how == "attached":
        conn.execute(f"create table docs_high (id bigint primary key, title text, body text, views int default 0, "
                     f"embedding vector({DIMS}))")
        conn.execute("alter table docs attach partition docs_high for values from (100) to (200)")
        return "docs_high"
    conn.execute("create table docs_top partition of docs for values from (200) to (400) partition by range (id)")
    conn.execute("create table docs_top_a partition of docs_top for values from (200) to (300)")
    conn.execute("create table docs_top_b partition of docs_top for values from (300) to (400)")
    return "docs_top_b"


FIRST_KEY = {"docs_low": 1, "docs_high": 100, "docs_top_b": 300}
PARTITIONS = ["existing", "created", "attached", "sub-partition"]


def partition_for(conn, which: str) -> str:
    return "docs_low" if which == "existing" else later_partition(conn, which)


def jobs(conn) -> list[int]:
    return sorted(int(pk) for pk in queued_keys(conn))


def purge(conn) -> None:
    conn.execute("select pgmq.purge_queue('autoembed_jobs')")


def embedded(conn, table: str, key: int) -> bool:
    return conn.execute(sql.SQL("select embedding is not null from {} where id = %s").format(sql.Identifier(table)),
                        (key,)).fetchone()[0]


@pytest.mark.parametrize("which", PARTITIONS)
def test_writes_addressed_to_a_partition_enqueue_clear_and_forget_like_the_parents(conn, which):
    create_partitioned(conn)
    source_id = watch(conn, backfill=False)
    part = partition_for(conn, which)
    first = FIRST_KEY[part]
    table = sql.Identifier(part)
    conn.execute(sql.SQL("insert into {} (id, body) values (%s, 'one'), (%s, 'two')").format(table), (first, first + 1))
    assert jobs(conn) == [first, first + 1]
    purge(conn)
    pretend_embedded(conn, source_id, part)
    assert queue_depth(conn) == 0
    conn.execute(sql.SQL("update {} set views = views + 1").format(table))
    assert queue_depth(conn) == 0
    conn.execute(sql.SQL("update {} set body = 'changed' where id = %s").format(table), (first,))
    assert jobs(conn) == [first]
    assert not embedded(conn, part, first) and embedded(conn, part, first + 1)
    conn.execute(sql.SQL("delete from {} where id = %s").format(table), (first + 1,))
    assert [pk for (pk,) in conn.execute("select pk from autoembed.row_state")] == [str(first)]


@pytest.mark.parametrize("which", PARTITIONS)
def test_a_statement_through_the_parent_enqueues_each_row_once(conn, which):
    create_partitioned(conn)
    watch(conn, backfill=False)
    part = partition_for(conn, which)
    first = FIRST_KEY[part]
    conn.execute("insert into docs (id, body) values (1, 'low'), (%s, 'there')", (first + 2,))
    assert [m for (m,) in conn.execute("select count(*) from autoembed.jobs group by pk")] == [1, 1]
    purge(conn)
    conn.execute(f"update docs set embedding = {VECTOR}")
    conn.execute("update docs set body = body || '!'")
    assert [m for (m,) in conn.execute("select count(*) from autoembed.jobs group by pk")] == [1, 1]
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 0


def test_a_row_moving_to_another_partition_is_embedded_under_its_new_key(conn):
    create_partitioned(conn)
    source_id = watch(conn, backfill=False)
    later_partition(conn, "created")
    conn.execute(f"insert into docs (id, body, embedding) values (5, 'moving', {VECTOR})")
    conn.execute("insert into autoembed.row_state (source_id, pk, content_hash) values (%s, '5', md5('moving')::uuid)",
                 (source_id,))
    purge(conn)
    conn.execute("update docs set id = 150 where id = 5")
    assert jobs(conn) == [150]
    assert conn.execute("select count(*) from autoembed.row_state").fetchone()[0] == 0


def test_a_partition_added_later_gets_its_own_statement_triggers_at_the_next_watch_or_migrate(conn):
    create_partitioned(conn)
    source_id = watch(conn, backfill=False)
    later_partition(conn, "created")
    refresh = "select autoembed.refresh_triggers(s) from autoembed.sources s where s.id = %s"
    assert conn.execute(refresh, (source_id,)).fetchone()[0] is True
    assert conn.execute(refresh, (source_id,)).fetchone()[0] is False  # up to date: nothing done
    statement_triggers = conn.execute(
        "select count(*) from pg_trigger where tgrelid = 'docs_high'::regclass and tgparentid = 0").fetchone()[0]
    assert statement_triggers == 6
    conn.execute("insert into docs_high (id, body) select g, 'bulk' from generate_series(100, 199) g")
    assert [m for (m,) in conn.execute("select message from pgmq.q_autoembed_jobs")] == \
        [{"source_id": source_id, "pk_range": [100, 199]}]  # one statement, one message


def test_truncating_a_partition_forgets_only_its_rows(conn):
    create_partitioned(conn)
    source_id = watch(conn, backfill=False)
    later_partition(conn, "created")
    conn.execute("insert into docs (id, body) values (1, 'low'), (100, 'high')")
    conn.execute("insert into autoembed.row_state (source_id, pk, content_hash) select %s, id::text, md5(body)::uuid "
                 "from docs", (source_id,))
    conn.execute("insert into autoembed.failures (source_id, pk, error_class, error_message, attempts) "
                 "select %s, id::text, 'X', 'boom', 1 from docs", (source_id,))
    conn.execute("truncate docs_low")
    assert [pk for (pk,) in conn.execute("select pk from autoembed.row_state")] == ["100"]
    assert [pk for (pk,) in conn.execute("select pk from autoembed.failures")] == ["100"]
    conn.execute("truncate docs_high")  # created after watch: no TRUNCATE trigger of its own yet ...
    conn.execute("insert into docs_high (id, body) values (100, 'a new row with the old key')")
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0  # ... its INSERT forgets


def test_a_detached_partition_leaves_the_source(conn):
    create_partitioned(conn)
    watch(conn, backfill=False)
    conn.execute("alter table docs detach partition docs_low")
    conn.execute("insert into docs_low (id, body) values (1, 'no longer watched')")
    conn.execute("update docs_low set body = 'still not watched'")
    assert queue_depth(conn) == 0


def test_a_watched_partition_is_embedded_whichever_table_a_statement_names(conn):
    create_partitioned(conn)
    watch(conn, table="docs_low", backfill=False)
    conn.execute("insert into docs (id, body) values (1, 'through the parent'), (2, 'also')")
    conn.execute("insert into docs_low (id, body) values (3, 'direct')")
    assert jobs(conn) == [1, 2, 3]
    purge(conn)
    conn.execute(f"update docs set embedding = {VECTOR}")
    conn.execute("update docs set body = 'changed' where id = 1")
    assert jobs(conn) == [1]
    assert conn.execute("select id from docs where embedding is null").fetchall() == [(1,)]


def test_a_partitioned_table_is_embedded_end_to_end(conn, dsn, settings):
    create_partitioned(conn)
    watch(conn)
    for which in ("created", "sub-partition"):
        later_partition(conn, which)
    conn.execute("insert into docs (id, body) values (1, 'low'), (150, 'high'), (250, 'top a')")
    conn.execute("insert into docs_top_b (id, body) values (350, 'top b')")
    conn.execute("insert into docs_high (id, body) values (151, 'high, direct')")
    drain(dsn, settings)
    conn.execute("update docs_top_a set body = 'top a, edited'")
    conn.execute("update docs set body = 'low, edited' where id = 1")
    drain(dsn, settings)
    hashing = HashingEmbedder("hashing-test", DIMS)
    for body, vector in conn.execute("select body, embedding from docs").fetchall():
        assert vector.to_list() == pytest.approx(hashing.embed([body])[0].tolist(), abs=1e-6), body
    assert queue_depth(conn) == 0
