"""Vector indexes a watch owns: `index => 'hnsw' | 'ivfflat' | 'none'` builds it CONCURRENTLY after
the backfill, searches use it, status warns when an index on the column cannot serve the watch's
distance, and what the worker may not build it says what to run instead."""

from __future__ import annotations

import time

import psycopg
import pytest
from support import create_docs, drain, queue_depth, watch
from support.roles import make_role  # noqa: F401 (a fixture)
from support.running import running_worker

from autoembed import api

OPERATORS = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}
OPCLASS_SUFFIX = {"cosine": "cosine_ops", "l2": "l2_ops", "inner_product": "ip_ops"}


def fill(conn: psycopg.Connection, rows: int = 60) -> None:
    conn.execute("insert into docs (body) select 'document number ' || i from generate_series(1, %s) i", (rows,))


def index_status(conn: psycopg.Connection) -> dict:
    row = conn.execute("select wanted, index_name, index_method, index_opclass, index_valid, state "
                       "from autoembed.index_status").fetchone()
    return dict(zip(("wanted", "name", "method", "opclass", "valid", "state"), row))


def status(conn: psycopg.Connection) -> tuple[str, str]:
    return conn.execute("select state, index from autoembed.status").fetchone()


def plan(conn: psycopg.Connection, distance: str, vector_type: str = "vector") -> str:
    """The plan of the query autoembed.search runs for the watch, seq scans discouraged."""
    with conn.transaction():
        conn.execute("set local enable_seqscan = off")
        rows = conn.execute(
            f"explain select id from docs t where t.embedding is not null "
            f"order by t.embedding {OPERATORS[distance]} array_fill(0.1, array[16])::{vector_type}(16) limit 5").fetchall()
    return "\n".join(row[0] for row in rows)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("statements", ["one", "one per row"])
def test_no_index_is_built_while_more_than_1000_rows_are_queued(conn, dsn, settings, statements):
    create_docs(conn)
    fill(conn, 5)
    watch(conn, index="hnsw")
    conn.execute("update docs set embedding = array_fill(0.1, array[16])::vector where id = 1")
    if statements == "one":
        fill(conn, 1200)
    else:
        with conn.cursor() as cur:
            cur.executemany("insert into docs (body) values (%s)", [(f"row {i}",) for i in range(1200)])
    assert index_status(conn)["state"] == "waiting for the backfill: more than 1,000 rows queued"
    assert conn.execute("select count(*) from autoembed.indexes_due('0 s', null)").fetchone()[0] == 0
    drain(dsn, settings)
    assert index_status(conn)["state"] == "ready: docs_embedding_ae1 (hnsw, vector_cosine_ops)"


@pytest.mark.parametrize("kind, distance, vector_type", [
    ("hnsw", "cosine", "vector"), ("hnsw", "l2", "halfvec"), ("hnsw", "inner_product", "vector"),
    ("ivfflat", "cosine", "halfvec"), ("ivfflat", "l2", "vector"), ("ivfflat", "inner_product", "vector"),
])
def test_the_wanted_index_is_built_after_the_backfill_and_searches_use_it(conn, dsn, settings, kind, distance,
                                                                           vector_type):
    create_docs(conn, vector_type=vector_type)
    fill(conn)
    watch(conn, index=kind, distance=distance)
    assert index_status(conn)["state"] == "waiting for the backfill: no row has a vector yet"
    drain(dsn, settings)
    found = index_status(conn)
    assert (found["method"], found["opclass"], found["valid"]) == (kind, f"{vector_type}_{OPCLASS_SUFFIX[distance]}", True)
    assert found["name"] == "docs_embedding_ae1"
    assert status(conn) == ("ok", f"ready: docs_embedding_ae1 ({kind}, {vector_type}_{OPCLASS_SUFFIX[distance]})")
    assert "docs_embedding_ae1" in plan(conn, distance, vector_type)
    assert len(conn.execute("select * from autoembed.search('docs', array_fill(0.1, array[16])::vector, 5)").fetchall()) == 5


def test_index_none_builds_nothing(conn, dsn, settings):
    create_docs(conn)
    fill(conn)
    watch(conn)  # index => 'none' by default
    drain(dsn, settings)
    assert conn.execute("select count(*) from pg_index where indrelid = 'docs'::regclass").fetchone()[0] == 1  # the key
    assert status(conn) == ("ok", "none wanted")
    assert "Seq Scan" in plan(conn, "cosine")


def test_an_unknown_index_kind_is_refused_and_changes_nothing(conn):
    create_docs(conn)
    watch(conn, index="hnsw")
    with pytest.raises(psycopg.errors.RaiseException, match="unknown index 'diskann': choose hnsw, ivfflat or none"):
        watch(conn, index="diskann")
    assert conn.execute("select index_kind from autoembed.sources").fetchall() == [("hnsw",)]
    conn.execute("create table big (id int primary key, body text, embedding vector(3000))")
    with pytest.raises(psycopg.errors.RaiseException, match="at most 2000 dimensions, the column has 3000"):
        watch(conn, table="big", index="hnsw")
    assert conn.execute("select count(*) from autoembed.sources").fetchone()[0] == 1


@pytest.mark.parametrize("opclass, expected", [
    ("vector_l2_ops", ("index mismatch: index docs_by_hand uses vector_l2_ops, but this watch searches by cosine: "
                       "queries cannot use it and scan the table",) * 2),
    ("vector_cosine_ops", ("ok", "ready: docs_by_hand (hnsw, vector_cosine_ops)")),
])
def test_status_warns_when_an_index_on_the_column_does_not_match_the_distance(conn, dsn, settings, opclass, expected):
    create_docs(conn)
    fill(conn)
    watch(conn)
    drain(dsn, settings)
    conn.execute(f"create index docs_by_hand on docs using hnsw (embedding {opclass})")
    state, index = status(conn)
    assert (state, "index " + index if state != "ok" else index) == expected


def test_index_statement_run_at_top_level_builds_the_index(conn, dsn, settings):
    create_docs(conn)
    fill(conn, 2500)
    watch(conn, index="ivfflat", backfill=False)
    conn.execute("update docs set embedding = array_fill(0.1, array[16])::vector")  # vectors from elsewhere
    statements = [row[0] for row in conn.execute("select autoembed.index_statement('docs')")]
    schema = conn.execute("select extnamespace::regnamespace::text from pg_extension where extname = 'vector'").fetchone()[0]
    assert statements == ["create index concurrently if not exists docs_embedding_ae1 on public.docs using ivfflat "
                          f"(embedding {schema}.vector_cosine_ops) with (lists = 2)"]
    for statement in statements:  # as psql's \gexec runs them: each on its own, outside a transaction
        conn.execute(statement)
    assert index_status(conn)["state"] == "ready: docs_embedding_ae1 (ivfflat, vector_cosine_ops)"
    assert conn.execute("select count(*) from autoembed.index_statement('docs')").fetchone()[0] == 0


def leave_invalid_index(conn: psycopg.Connection, dsn: str, name: str) -> None:
    """What a build that crashed leaves: CREATE INDEX CONCURRENTLY cancelled while it waited."""
    with psycopg.connect(dsn) as blocker:
        blocker.execute("lock table docs in row exclusive mode")  # CREATE INDEX CONCURRENTLY waits for it
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("set statement_timeout = '500ms'")
            try:
                conn.execute(f"create index concurrently {name} on docs using hnsw (embedding vector_cosine_ops)")
            finally:
                conn.execute("reset statement_timeout")
        blocker.rollback()


def test_a_leftover_invalid_index_is_dropped_and_built_again(conn, dsn, settings):
    create_docs(conn)
    fill(conn)
    watch(conn)
    drain(dsn, settings)
    leave_invalid_index(conn, dsn, "docs_embedding_ae1")
    left = conn.execute("select 'docs_embedding_ae1'::regclass::oid").fetchone()[0]
    watch(conn, index="hnsw")
    assert index_status(conn)["state"] == ("invalid: index docs_embedding_ae1 is left from a build that did not "
                                           "finish: autoembed drops it and builds it again")
    drain(dsn, settings)
    found = index_status(conn)
    assert found["valid"] and found["state"].startswith("ready: docs_embedding_ae1")
    assert conn.execute("select 'docs_embedding_ae1'::regclass::oid").fetchone()[0] != left


def test_re_watching_from_none_to_hnsw_builds_the_index_and_embeds_nothing_again(conn, dsn, settings):
    create_docs(conn)
    fill(conn)
    watch(conn)
    drain(dsn, settings)
    watch(conn, index="hnsw")
    assert queue_depth(conn) == 0  # the vectors stay good: only the index is new
    assert index_status(conn)["state"].startswith("to build: the worker builds docs_embedding_ae1 next")
    drain(dsn, settings)
    assert status(conn) == ("ok", "ready: docs_embedding_ae1 (hnsw, vector_cosine_ops)")


def test_a_worker_that_does_not_own_the_table_says_what_to_run_instead(conn, dsn, settings, make_role):
    create_docs(conn)
    fill(conn)
    watch(conn, index="hnsw")
    embedder = make_role("embedder", "autoembed_worker")
    drain(psycopg.conninfo.make_conninfo(dsn, user=embedder), settings)  # embeds, and ends
    assert conn.execute("select count(*) from docs where embedding is null").fetchone()[0] == 0
    state, index = status(conn)
    assert index.startswith(f"cannot build: the worker's role {embedder} does not own public.docs")
    assert "autoembed index public.docs --watch embedding" in index
    assert "select autoembed.index_statement('public.docs', 'embedding') \\gexec" in index
    assert state == "index " + index
    assert index_status(conn)["name"] is None

    (build,) = api.build_indexes(conn, "docs", settings=settings)  # as the owner
    assert (build.built, build.state) == (True, "ready: docs_embedding_ae1 (hnsw, vector_cosine_ops)")
    assert status(conn) == ("ok", build.state)


def test_searches_answer_while_the_index_is_built(conn, dsn, settings):
    create_docs(conn)
    fill(conn)
    watch(conn)
    drain(dsn, settings)
    watch(conn, index="hnsw")
    with psycopg.connect(dsn) as blocker:
        blocker.execute("lock table docs in row exclusive mode")  # holds the build in its first phase
        with running_worker(dsn, settings):
            wait_for(lambda: index_status(conn)["state"].startswith("building: docs_embedding_ae1"), 20, "the build")
            assert not index_status(conn)["valid"]
            hits = conn.execute("select pk from autoembed.search('docs', array_fill(0.1, array[16])::vector, 3)").fetchall()
            assert len(hits) == 3
            blocker.rollback()
            wait_for(lambda: index_status(conn)["valid"], 20, "the index")
    assert status(conn) == ("ok", "ready: docs_embedding_ae1 (hnsw, vector_cosine_ops)")
    assert "docs_embedding_ae1" in plan(conn, "cosine")


def test_a_stopped_worker_cancels_its_build_and_the_next_one_finishes_it(conn, dsn, settings):
    create_docs(conn)
    fill(conn)
    watch(conn)
    drain(dsn, settings)
    watch(conn, index="hnsw")
    with psycopg.connect(dsn) as blocker:
        blocker.execute("lock table docs in row exclusive mode")
        with running_worker(dsn, settings):
            wait_for(lambda: index_status(conn)["state"].startswith("building"), 20, "the build")
        blocker.rollback()
    assert index_status(conn)["state"].startswith("invalid: index docs_embedding_ae1")
    drain(dsn, settings)
    assert index_status(conn)["state"] == "ready: docs_embedding_ae1 (hnsw, vector_cosine_ops)"


def test_a_new_distance_rebuilds_autoembeds_own_index_with_its_operator_class(conn, dsn, settings):
    create_docs(conn)
    fill(conn)
    watch(conn, index="hnsw")
    drain(dsn, settings)
    watch(conn, index="hnsw", distance="l2")
    assert status(conn)[0].startswith("index mismatch: index docs_embedding_ae1 uses vector_cosine_ops, but this "
                                      "watch searches by l2")
    drain(dsn, settings)
    assert status(conn) == ("ok", "ready: docs_embedding_ae1 (hnsw, vector_l2_ops)")
    assert conn.execute("select count(*) from pg_index where indrelid = 'docs'::regclass").fetchone()[0] == 2
    assert "docs_embedding_ae1" in plan(conn, "l2")


def test_a_build_started_by_a_drain_request_goes_on_past_its_time_limit(conn, dsn, settings):
    from autoembed.drain import Drainer

    create_docs(conn)
    fill(conn)
    watch(conn)
    drain(dsn, settings)
    watch(conn, index="hnsw")
    drainer = Drainer(settings, dsn, max_seconds=1.0)  # autoembed serve's POST /drain
    try:
        with psycopg.connect(dsn) as blocker:
            blocker.execute("lock table docs in row exclusive mode")
            assert drainer.drain().status == "time limit"  # it waited for the build, which waits for the blocker
            assert index_status(conn)["state"].startswith("building: docs_embedding_ae1")
            blocker.rollback()
        wait_for(lambda: index_status(conn)["valid"], 20, "the index")
        assert drainer.drain().status == "drained"
    finally:
        drainer.close()
    assert status(conn) == ("ok", "ready: docs_embedding_ae1 (hnsw, vector_cosine_ops)")
