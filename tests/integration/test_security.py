"""Least privilege, row level security, injection and secrets.

The worker runs as a login role granted `autoembed_worker` (migration 000002): not a superuser,
no privilege on the tables it embeds, yet it embeds every row, RLS forced or not. Searches run as
the caller, so RLS applies to them. Nobody else may call the worker-facing functions. Injection
through the SQL API and the CLI has no effect beyond a clear error, and API keys never reach a
log line, a queue message, a failure record or the status view.
"""

from __future__ import annotations

import os
import subprocess

import numpy as np
import psycopg
import pytest
from psycopg import sql
from reliability.harness import AUTOEMBED, WorkerProcess, check, expected
from support import DIMS, FixedEmbedders, RecordingEmbedder, create_docs, drain, queue_depth, watch
from support.roles import as_role, make_role  # noqa: F401 (a fixture)

from autoembed.embedders.hashing import HashingEmbedder
from support.openai_stub import OpenAIStub

WORKER_FUNCTIONS = [
    "autoembed.load_content(int, text[])",
    "autoembed.write_embeddings(int, text, text, text[], uuid[], vector[])",
    "autoembed.record_failures(int, text[], uuid[], text[], text[], int[])",
    "autoembed.claim_rows(int, text[], int)",
    "autoembed.release_claims(int, text[])",
    "autoembed.read_jobs(int, int, int[])",
    "autoembed.enqueue(int, text[], int, int)",
]
def rls_docs(conn) -> None:
    """docs with an owner column, RLS enabled and forced: each role sees and writes only its rows."""
    conn.execute("create table docs (id bigint generated always as identity primary key, "
                 "owner name not null default current_user, body text, views int default 0, "
                 f"embedding vector({DIMS}))")
    conn.execute("alter table docs enable row level security")
    conn.execute("alter table docs force row level security")
    conn.execute("create policy own_rows on docs using (owner = current_user) with check (owner = current_user)")


# -- the role -------------------------------------------------------------------------------------------
def test_the_worker_role_cannot_log_in_and_holds_only_what_the_worker_needs(conn):
    role = conn.execute("select rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit "
                        "from pg_roles where rolname = 'autoembed_worker'").fetchone()
    assert role == (False, False, False, False, False, True)
    for fn in WORKER_FUNCTIONS:
        definer, owner_bypasses_rls = conn.execute(
            "select p.prosecdef, r.rolsuper or r.rolbypassrls from pg_proc p join pg_roles r on r.oid = p.proowner "
            "where p.oid = %s::regprocedure", (fn,)).fetchone()
        assert definer and owner_bypasses_rls, fn
        assert conn.execute("select has_function_privilege('autoembed_worker', %s, 'execute'), "
                            "has_function_privilege('public', %s, 'execute')", (fn, fn)).fetchone() == (True, False)
    privileges = {(table, p): conn.execute("select has_table_privilege('autoembed_worker', %s, %s)",
                                           (table, p)).fetchone()[0]
                  for table in ("pgmq.q_autoembed_jobs", "pgmq.a_autoembed_jobs", "autoembed.sources",
                                "autoembed.row_state", "autoembed.failures")
                  for p in ("select", "insert", "update", "delete")}
    assert {k for k, granted in privileges.items() if granted} == {
        ("pgmq.q_autoembed_jobs", "select"), ("pgmq.q_autoembed_jobs", "update"), ("pgmq.q_autoembed_jobs", "delete"),
        ("pgmq.a_autoembed_jobs", "select"), ("pgmq.a_autoembed_jobs", "insert"), ("autoembed.sources", "select")}
    # Application roles cannot forge jobs: enqueue (a worker function above) is not public.
    assert not conn.execute("select has_table_privilege('public', 'pgmq.q_autoembed_jobs', 'insert')").fetchone()[0]


def test_worker_role_embeds_rows_it_cannot_read_under_forced_rls_written_by_app_roles(conn, dsn, make_role, tmp_path):
    rls_docs(conn)
    alice, bob = make_role("alice"), make_role("bob")
    embedder = make_role("embedder", "autoembed_worker")
    conn.execute(sql.SQL("grant select, insert, update, delete on docs to {}, {}").format(
        sql.Identifier(alice), sql.Identifier(bob)))
    watch(conn, backfill=False)
    # Application roles write the watched table without any grant on autoembed or pgmq.
    for role, texts in ((alice, ["alice one", "alice two"]), (bob, ["bob one"])):
        with as_role(dsn, role) as app:
            with app.cursor() as cur:
                cur.executemany("insert into docs (body) values (%s)", [(t,) for t in texts])
            app.execute("update docs set body = body || ' (edited)' where body like '% one'")
            app.execute("update docs set views = views + 1")
    assert queue_depth(conn) == 5

    with as_role(dsn, embedder) as worker_conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table docs"):
            worker_conn.execute("select * from docs")
    worker = WorkerProcess(psycopg.conninfo.make_conninfo(dsn, user=embedder), "least-privilege-worker",
                           tmp_path / "worker.log", {"AUTOEMBED_POLL_INTERVAL": "0.2"}, args=("--drain",)).start()
    assert worker.process.wait(timeout=60) == 0, worker.log()
    verdict = check(conn, audited=False)
    assert verdict.ok and verdict.embedded == 3, verdict
    assert conn.execute("select count(*) from pgmq.a_autoembed_jobs").fetchone()[0] == 0


def test_search_respects_rls_for_each_user(conn, dsn, settings, make_role):
    rls_docs(conn)
    alice, bob = make_role("alice", "autoembed_search"), make_role("bob", "autoembed_search")
    for role in (alice, bob):
        conn.execute(sql.SQL("grant select, insert on docs to {r}").format(r=sql.Identifier(role)))
    watch(conn, backfill=False)
    texts = {alice: ["red apples", "green apples", "apple pie"], bob: ["apple juice", "bananas"]}
    for role, bodies in texts.items():
        with as_role(dsn, role) as app, app.cursor() as cur:
            cur.executemany("insert into docs (body) values (%s)", [(b,) for b in bodies])
    drain(dsn, settings)
    assert check(conn, audited=False).embedded == 5
    for role, bodies in texts.items():
        with as_role(dsn, role) as app:
            hits = app.execute("select content from autoembed.search('docs', %s, 10)",
                               (expected("apples"),)).fetchall()
        assert sorted(h[0] for h in hits) == sorted(bodies), role


def test_the_search_role_holds_only_what_search_needs(conn, dsn, make_role):
    create_docs(conn)
    watch(conn, backfill=False)
    conn.execute("alter table docs disable trigger user")
    conn.execute("insert into docs (body) values ('not embedded yet')")
    conn.execute("alter table docs enable trigger user")
    reader, outsider = make_role("reader", "autoembed_search"), make_role("outsider")
    for role in (reader, outsider):
        conn.execute(sql.SQL("grant select on docs to {}").format(sql.Identifier(role)))
    query = np.ones(DIMS, dtype=np.float32)
    with as_role(dsn, reader) as app:
        assert app.execute("select * from autoembed.search('docs', %s)", (query,)).fetchall() == []  # no vector yet
        for forbidden in ("select * from autoembed.failures", "select autoembed.backfill('docs')",
                          "select * from pgmq.q_autoembed_jobs"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(forbidden)
    with as_role(dsn, outsider) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="schema autoembed"):
            app.execute("select * from autoembed.search('docs', %s)", (query,))


def test_a_role_that_is_not_the_worker_cannot_call_the_worker_functions(conn, dsn, make_role):
    create_docs(conn)
    source_id = watch(conn, backfill=False)
    conn.execute("insert into docs (body) values ('secret text')")
    mallory = make_role("mallory")
    conn.execute(sql.SQL("grant usage on schema autoembed, pgmq to {r}; grant select, update on docs to {r}").format(
        r=sql.Identifier(mallory)))
    calls = [
        ("select * from autoembed.load_content(%s, array['1'])", (source_id,)),
        ("select * from autoembed.write_embeddings(%s, 'hashing', 'hashing-test', array['1'], "
         "array[md5('secret text')::uuid], %s)", (source_id, [np.full(DIMS, 0.5, dtype=np.float32)])),
        ("select * from autoembed.record_failures(%s, array['1'], array[md5('secret text')::uuid], array['X'], "
         "array['forged'], array[1])", (source_id,)),
        ("select autoembed.enqueue(%s, array['1'])", (source_id,)),
        ("select autoembed.enqueue_range(%s, 1, 1000)", (source_id,)),
        ("select * from pgmq.read('autoembed_jobs', 30, 10)", None),
    ]
    with as_role(dsn, mallory) as other:
        for query, params in calls:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for (function|table)"):
                other.execute(query, params)
    assert conn.execute("select embedding is null from docs").fetchone()[0]
    assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0
    assert queue_depth(conn) == 1


# -- injection ------------------------------------------------------------------------------------------
EVIL = "docs; drop table canary; --"
SQL_API_INJECTIONS = [
    ("watch table", "select autoembed.watch(%s::regclass, 'body', embedder => 'hashing')", (EVIL,),
     "invalid name syntax"),
    ("watch content", "select autoembed.watch('docs', %s, embedder => 'hashing')", ("body); drop table canary; --",),
     "is neither a column of docs nor a function"),
    ("watch embedding column", "select autoembed.watch('docs', 'body', %s, embedder => 'hashing')",
     ("embedding; drop table canary",), 'table docs has no column "embedding; drop table canary"'),
    ("watch embedder", "select autoembed.watch('docs', 'body', embedder => %s)", ("hashing'; drop table canary; --",),
     "unknown embedder"),
    ("watch distance", "select autoembed.watch('docs', 'body', embedder => 'hashing', distance => %s)",
     ("cosine') ; drop table canary; --",), "unknown distance"),
    ("unwatch", "select autoembed.unwatch(%s::regclass)", (EVIL,), "invalid name syntax"),
    ("backfill", "select autoembed.backfill(%s::regclass)", (EVIL,), "invalid name syntax"),
    ("retry_failures", "select autoembed.retry_failures(%s::regclass)", (EVIL,), "invalid name syntax"),
    ("search table", f"select * from autoembed.search(%s::regclass, array_fill(0.1, array[{DIMS}])::vector)", (EVIL,),
     "invalid name syntax"),
    ("write_embeddings key", "select * from autoembed.write_embeddings(1, 'hashing', 'hashing-test', array[%s], "
     f"array[null::uuid], array[array_fill(0.1, array[{DIMS}])::vector])", ("1 or true); drop table canary; --",),
     "invalid input syntax for type bigint"),
]


@pytest.mark.parametrize("query, params, message", [c[1:] for c in SQL_API_INJECTIONS],
                         ids=[c[0] for c in SQL_API_INJECTIONS])
def test_injection_through_the_sql_api_has_no_effect_beyond_a_clear_error(conn, query, params, message):
    create_docs(conn)
    conn.execute("create table canary (id int)")
    watch(conn, backfill=False)
    conn.execute("insert into docs (body) values ('x')")
    before = conn.execute("select count(*) from pg_class").fetchone()[0]
    with pytest.raises(psycopg.Error, match=message.replace("(", r"\(").replace(")", r"\)")):
        conn.execute(query, params)
    assert conn.execute("select to_regclass('canary') is not null and to_regclass('docs') is not null").fetchone()[0]
    assert conn.execute("select count(*) from pg_class").fetchone()[0] == before
    assert conn.execute("select count(*) from autoembed.sources").fetchone()[0] == 1
    assert conn.execute("select embedding is null from docs").fetchone()[0]


def test_a_forged_key_reaches_load_content_as_data(conn):
    """A key that is not a bigint comes back as that row's error, and nothing else happens."""
    create_docs(conn)
    conn.execute("create table canary (id int)")
    source_id = watch(conn, backfill=False)
    rows = conn.execute("select pk, content, error from autoembed.load_content(%s, array[%s, '1'])",
                        (source_id, "1); drop table canary; --")).fetchall()
    assert len(rows) == 1 and rows[0][0] == "1); drop table canary; --" and rows[0][1] is None
    assert 'invalid input syntax for type bigint: "1); drop table canary; --"' in rows[0][2]
    assert conn.execute("select to_regclass('canary') is not null").fetchone()[0]


def test_sql_in_names_and_keys_is_data(conn, dsn, settings):
    """A model name and primary keys full of SQL are stored and used verbatim."""
    conn.execute("create table canary (id int)")
    create_docs(conn, pk="text")
    model = "x'); drop table canary; --"
    source_id = watch(conn, model=model, backfill=False)
    keys = ["'); drop table canary; --", "1 or 1=1", 'a"b', "$$; drop table canary; $$"]
    with conn.cursor() as cur:
        cur.executemany("insert into docs (id, body) values (%s, %s)", [(k, f"row {k}") for k in keys])
    recorder = RecordingEmbedder(HashingEmbedder(model, DIMS))
    drain(dsn, settings, FixedEmbedders(settings, recorder))
    assert conn.execute("select model from autoembed.sources where id = %s", (source_id,)).fetchone()[0] == model
    assert check(conn, audited=False).embedded == len(keys)
    assert conn.execute("select to_regclass('canary') is not null").fetchone()[0]


CLI_INJECTIONS = [
    ("watch", EVIL, "--content", "body", "--embedder", "hashing"),
    ("watch", "docs", "--content", "body; drop table canary", "--embedder", "hashing"),
    ("watch", "docs", "--content", "body", "--embedding-column", "embedding; drop table canary", "--embedder", "hashing"),
    ("unwatch", EVIL),
    ("backfill", EVIL),
    ("retry-failures", EVIL),
    ("failures", EVIL),
    ("search", EVIL, "query"),
]


def test_injection_through_the_cli_has_no_effect_beyond_a_clear_error(conn, dsn):
    create_docs(conn)
    conn.execute("create table canary (id int)")
    watch(conn, backfill=False)
    env = {**os.environ, "DATABASE_URL": dsn}
    for args in CLI_INJECTIONS:
        result = subprocess.run([AUTOEMBED, *args], capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("autoembed: error: ") and "Traceback" not in result.stderr, (args, result.stderr)
    assert conn.execute("select to_regclass('canary') is not null and to_regclass('docs') is not null").fetchone()[0]
    assert conn.execute("select count(*) from autoembed.sources").fetchone()[0] == 1


# -- secrets --------------------------------------------------------------------------------------------
def test_api_keys_never_reach_logs_queue_failures_or_status(conn, dsn, server, tmp_path):
    secret, url_secret = "sk-secret-XYZ", "sk-url-secret-ABC"
    create_docs(conn)
    watch(conn, embedder="openai", model="stub-model", max_attempts=1, backfill=False)
    conn.execute("insert into docs (body) select 'row ' || g from generate_series(1, 5) g")
    with OpenAIStub(dimensions=DIMS, require_key="the-right-key") as stub:
        runs = [(stub.base_url, "header"),
                (stub.base_url.replace("http://", f"http://user:{url_secret}@"), "url")]
        logs = []
        for base_url, how in runs:
            conn.execute("select autoembed.retry_failures()")
            env = {"OPENAI_API_KEY": secret, "AUTOEMBED_OPENAI_BASE_URL": base_url, "AUTOEMBED_POLL_INTERVAL": "0.2"}
            worker = WorkerProcess(dsn, f"secret-test-{how}", tmp_path / f"worker-{how}.log", env, args=("--drain",),
                                   log_level="DEBUG").start()
            # a rejected key is not the rows' fault: they stay queued and the drain ends, saying why
            assert worker.process.wait(timeout=60) == 2, worker.log()
            logs.append(worker.log())
        assert stub.counts["401"] >= 2  # the wrong key reached the provider, which echoed it back
    cli_env = {**os.environ, "DATABASE_URL": dsn}
    outputs = [subprocess.run([AUTOEMBED, *args], capture_output=True, text=True, env=cli_env, timeout=60)
               for args in (("failures",), ("status", "--json"))]
    stored = {
        "failures": conn.execute("select coalesce(string_agg(f::text, ' '), '') from autoembed.failures f").fetchone()[0],
        "queue": conn.execute("select coalesce(string_agg(q::text, ' '), '') from pgmq.q_autoembed_jobs q").fetchone()[0],
        "archive": conn.execute("select coalesce(string_agg(a::text, ' '), '') from pgmq.a_autoembed_jobs a").fetchone()[0],
        "status": conn.execute("select coalesce(string_agg(s::text, ' '), '') from autoembed.status s").fetchone()[0],
        "logs": "\n".join(logs),
        "cli": "\n".join(o.stdout + o.stderr for o in outputs),
    }
    if server.cluster is not None and server.cluster.log_file.exists():
        stored["server log"] = server.cluster.log_file.read_text(errors="replace")
    assert stored["failures"] == ""  # no attempt was spent on a wrong key
    assert conn.execute("select count(*) from autoembed.jobs").fetchone()[0] == 5
    assert "embedder unavailable: " in stored["status"] and "rejected the credentials, check the API key" in stored["status"]
    assert "rejected the credentials" in stored["cli"] and "rejected the credentials" in stored["logs"]
    for where, text in stored.items():
        for key in (secret, url_secret, "XYZ", "url-secret"):
            assert key not in text, f"{key} leaked into the {where}"
