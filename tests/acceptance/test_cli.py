"""The real `autoembed` command as a subprocess, the way users and scripts run it."""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from autoembed.devdb import free_port

AUTOEMBED = [sys.executable, "-m", "autoembed.cli"]


def run(*args, env=None, check=True, timeout=120):
    result = subprocess.run([*AUTOEMBED, *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"autoembed {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def cli_env(dsn, tmp_path):
    return {"DATABASE_URL": dsn, "AUTOEMBED_HOME": str(tmp_path / "home"), "AUTOEMBED_POLL_INTERVAL": "0.2"}


def test_watch_worker_status_search_from_the_command_line(conn, cli_env):
    conn.execute("create table notes (id bigint generated always as identity primary key, body text, embedding vector(32))")
    conn.execute("insert into notes (body) values ('the cat sat on the mat'), ('김치찌개 레시피'), ('stock market news')")
    out = run("watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h32", env=cli_env).stdout
    assert "watching notes (source 1)" in out
    assert "queue autoembed_jobs: 3 row(s) in 1 message(s) (1 visible)" in run("status", env=cli_env).stdout
    run("worker", "--drain", env=cli_env)
    status = json.loads(run("status", "--json", env=cli_env).stdout)
    assert [(s["source"], s["rows"], s["embedded"], s["pending"], s["failed"]) for s in status["sources"]] == \
        [("public.notes", 3, 3, 0, 0)]
    assert {"vector", "pgmq", "pg_cron", "pg_net"} <= {c["feature"] for c in status["capabilities"]}
    hits = json.loads(run("search", "notes", "김치찌개 레시피", "-k", "1", "--json", env=cli_env).stdout)
    assert hits[0]["content"] == "김치찌개 레시피"
    assert "no failures" in run("failures", env=cli_env).stdout


def test_bad_input_gives_a_clear_error_and_exit_2(conn, cli_env):
    conn.execute("create table notes (id int primary key, body text, embedding vector(8))")
    result = run("watch", "notes", "--content", "nope", "--embedder", "hashing", env=cli_env, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("autoembed: error: 'nope' is neither a column of ")  # one prefix, not two
    result = run("search", "notes; drop table notes", "x", env=cli_env, check=False)
    assert result.returncode == 2 and "error" in result.stderr
    assert conn.execute("select to_regclass('notes') is not null").fetchone()[0]
    result = run("worker", "--batch-size", "0", env=cli_env, check=False)
    assert result.returncode == 2 and "batch size must be at least 1" in result.stderr


@pytest.mark.model
def test_a_model_whose_dimension_does_not_match_is_refused_at_watch(conn, cli_env):
    conn.execute("create table notes (id int primary key, body text, embedding vector(8))")
    result = run("watch", "notes", "--content", "body", env=cli_env, check=False)  # all-MiniLM-L6-v2: 384
    assert result.returncode == 2
    assert "makes 384-dimensional vectors, but notes.embedding holds 8: nothing was changed" in result.stderr
    assert conn.execute("select count(*) from autoembed.sources").fetchone()[0] == 0


def test_sigterm_finishes_the_batch_and_exits_0(conn, cli_env):
    conn.execute("create table notes (id bigint generated always as identity primary key, body text, embedding vector(8))")
    run("watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h", env=cli_env)
    worker = subprocess.Popen([*AUTOEMBED, "worker"], env={**os.environ, **cli_env}, stderr=subprocess.PIPE, text=True)
    try:
        conn.execute("insert into notes (body) values ('one'), ('two')")
        deadline = time.monotonic() + 30
        while conn.execute("select count(embedding) from notes").fetchone()[0] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    assert "stop requested" in worker.stderr.read()


def test_migrate_is_idempotent_from_the_command_line(empty_dsn, tmp_path):
    env = {"DATABASE_URL": empty_dsn, "AUTOEMBED_HOME": str(tmp_path)}
    assert re.match(r"applied \d+ migration", run("migrate", env=env).stdout)
    assert "database is up to date" in run("migrate", env=env).stdout


def test_dev_db_start_status_url_stop(tmp_path):
    env = {"AUTOEMBED_HOME": str(tmp_path / "home"), "AUTOEMBED_DEV_DB_PORT": str(free_port()), "DATABASE_URL": ""}
    try:
        url = run("dev-db", "start", env=env, timeout=120).stdout.strip()
        assert url == run("dev-db", "url", env=env).stdout.strip()
        assert "running" in run("dev-db", "status", env=env).stdout
        with psycopg.connect(url) as conn:
            assert conn.execute("show shared_preload_libraries").fetchone()[0] == "pg_cron"
        assert "database is up to date" not in run("migrate", env=env).stdout  # falls back to the dev database
        assert run("dev-db", "start", env=env).stdout.strip() == url  # second start: no-op
    finally:
        stopped = run("dev-db", "stop", env=env, check=False)
    assert stopped.stdout.startswith("stopped the dev database on port ")
    assert run("dev-db", "stop", env=env).stdout.strip() == "the dev database was not running"
    result = run("dev-db", "status", env=env, check=False)
    assert result.returncode == 1 and "not running" in result.stdout
    result = run("status", env=env, check=False)
    assert result.returncode == 2 and "no database: set DATABASE_URL" in result.stderr
    assert Path(env["AUTOEMBED_HOME"], "devdb", "data", "PG_VERSION").exists()


def test_backfill_wait_shows_progress_until_done_and_metrics_are_served(conn, cli_env):
    import urllib.request

    conn.execute("create table notes (id bigint generated always as identity primary key, body text, embedding vector(8))")
    conn.execute("insert into notes (body) select 'note ' || g from generate_series(1, 500) g")
    run("watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h", "--no-backfill", env=cli_env)
    port = free_port()
    worker = subprocess.Popen([*AUTOEMBED, "worker", "--metrics-port", str(port)], env={**os.environ, **cli_env},
                              stderr=subprocess.DEVNULL)
    try:
        result = run("backfill", "notes", "--wait", env=cli_env, timeout=60)
        assert "enqueued 500 row(s) of notes" in result.stdout
        assert "notes: 500 of 500 rows embedded, 0 failed" in result.stdout
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        embedded = [line for line in metrics.splitlines() if line.startswith('autoembed_rows_total{outcome="embedded"}')]
        assert embedded and float(embedded[0].split()[-1]) == 500
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=15)


# -- issue 14: a CLI that behaves like its peers, a worker you can watch -------------------------------
def test_dsn_is_taken_before_or_after_the_command(empty_dsn, tmp_path):
    env = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing", "AUTOEMBED_HOME": str(tmp_path)}
    assert re.match(r"applied \d+ migration", run("migrate", "--dsn", empty_dsn, env=env).stdout)
    assert "database is up to date" in run("migrate", "-d", empty_dsn, env=env).stdout
    assert "database is up to date" in run("-d", empty_dsn, "migrate", env=env).stdout
    assert "(no table is watched" in run("status", "-d", empty_dsn, env=env).stdout
    assert "-d, --dsn" in run("search", "--help", env=env).stdout


def test_an_unmigrated_database_is_answered_with_the_command_to_run(empty_dsn, tmp_path):
    env = {"DATABASE_URL": empty_dsn, "AUTOEMBED_HOME": str(tmp_path)}
    status = run("status", env=env, check=False)
    assert status.returncode == 2
    assert status.stderr.splitlines() == [
        'autoembed: error: relation "autoembed.status" does not exist',
        "autoembed: hint: run `autoembed migrate` (as the database owner) to install or upgrade autoembed in this database"]
    started = time.monotonic()
    worker = run("worker", "--drain", env=env, check=False)
    assert worker.returncode == 2 and time.monotonic() - started < 20  # no 30 s of retrying
    assert "run `autoembed migrate`" in worker.stderr


def test_a_missing_grant_is_answered_with_the_grant_to_run(conn, dsn, cli_env):
    conn.execute("create table notes (id int primary key, body text, embedding vector(8))")
    run("watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h", env=cli_env)
    conn.execute("create role ops14_app login")
    try:
        as_app = {**cli_env, "DATABASE_URL": psycopg.conninfo.make_conninfo(dsn, user="ops14_app")}
        search = run("search", "notes", "cat", env=as_app, check=False)
        assert search.returncode == 2
        assert search.stderr.splitlines()[-1] == ("autoembed: hint: grant autoembed_search to ops14_app;  "
                                                  "-- run it as the database owner, then try again")
        worker = run("worker", "--drain", env=as_app, check=False)
        assert worker.returncode == 2 and "grant autoembed_worker to this role" in worker.stderr
    finally:
        conn.execute("drop owned by ops14_app")
        conn.execute("drop role ops14_app")


def test_search_prints_a_table_with_one_line_excerpts(conn, cli_env):
    conn.execute("create table notes (id bigint generated always as identity primary key, body text, embedding vector(32))")
    conn.execute("insert into notes (body) values ('the cat\nsat   on the mat'), (%s), ('김치찌개 레시피')",
                 ("stock market news " * 20,))
    run("watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h32", env=cli_env)
    run("worker", "--drain", env=cli_env)
    lines = run("search", "notes", "the cat sat on the mat", "-k", "3", env={**cli_env, "COLUMNS": "60"}).stdout.splitlines()
    assert re.fullmatch(r"distance  key  content", lines[0])
    assert re.fullmatch(r"  0\.0000  1    the cat sat on the mat", lines[1])
    assert len(lines) == 4 and all(len(line) <= 60 for line in lines)
    long = next(line for line in lines if " 2    " in line)
    assert long.endswith("…") and "stock market news stock" in long
    hits = json.loads(run("search", "notes", "the cat sat on the mat", "-k", "1", "--json", env=cli_env).stdout)
    assert [(h["pk"], h["content"]) for h in hits] == [("1", "the cat\nsat   on the mat")]


def test_unwatch_says_what_it_dropped(conn, cli_env):
    conn.execute("create table notes (id bigint generated always as identity primary key, body text, embedding vector(8))")
    conn.execute("insert into notes (body) values ('a'), ('b'), ('c')")
    run("watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h", env=cli_env)
    assert run("unwatch", "notes", env=cli_env).stdout.strip() == (
        "public.notes is no longer watched: 3 queued row(s) and 0 failure record(s) dropped; "
        "the vectors in column embedding stay")
    result = run("unwatch", "notes", env=cli_env, check=False)
    assert result.returncode == 2
    assert re.match(r"autoembed: error: table (public\.)?notes is not watched\nautoembed: hint: ", result.stderr)


def test_the_worker_logs_each_batch_and_a_drain_summary(conn, cli_env):
    conn.execute("create table notes (id bigint generated always as identity primary key, body text, embedding vector(8))")
    conn.execute("insert into notes (body) select case when g % 10 = 0 then null else 'note ' || g end "
                 "from generate_series(1, 250) g")
    run("watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h", env=cli_env)
    text = run("worker", "--drain", "--batch-size", "100", env=cli_env).stderr
    assert re.search(r"INFO autoembed\.activity: batch committed read=100 embedded=90 skipped=0 failed=10 retried=0 "
                     r"waiting=0 messages=1 embed_ms=\d+ total_ms=\d+", text), text
    assert re.search(r"WARNING autoembed\.batch: row failed: EmptyContent: content is NULL: nothing to embed "
                     r"source_id=1 table=(public\.)?notes pk=10\b", text), text
    assert re.search(r"INFO autoembed\.activity: drain finished; some rows failed: see `autoembed failures` "
                     r"embedded=225 skipped=0 stale=0 retried=0 parked=0 failed=25 dropped=0 batches=3 ", text), text

    conn.execute("update notes set body = 'again ' || id where body is not null")
    lines = run("worker", "--drain", env={**cli_env, "AUTOEMBED_LOG_FORMAT": "json"}).stderr.splitlines()
    records = [json.loads(line) for line in lines]
    batches = [r for r in records if r["message"] == "batch committed"]
    assert sum(r["embedded"] for r in batches) == 225 and all(r["level"] == "INFO" for r in batches)
    (summary,) = [r for r in records if r["message"].startswith("drain finished")]
    assert (summary["embedded"], summary["failed"], summary["batches"]) == (225, 0, len(batches))


def test_psql_users_see_no_notices_from_watch_and_unwatch(conn, dsn):
    conn.execute("create table notes (id bigint generated always as identity primary key, body text, embedding vector(8))")
    psql = [shutil.which("psql") or "psql", dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    for statement in ("select autoembed.watch('notes', 'body', embedder => 'hashing', model => 'h')",
                      "select autoembed.watch('notes', 'body', embedder => 'hashing', model => 'h')",
                      "select autoembed.unwatch('notes')"):
        result = subprocess.run([*psql, "-c", statement], capture_output=True, text=True, timeout=30, check=True)
        assert result.stderr == "", f"{statement}:\n{result.stderr}"


def test_the_worker_builds_the_index_a_watch_wants_and_autoembed_index_builds_it_now(conn, cli_env):
    conn.execute("create table notes (id bigint generated always as identity primary key, body text, embedding vector(8))")
    conn.execute("insert into notes (body) select 'note ' || i from generate_series(1, 30) i")
    run("watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h8", "--index", "hnsw", env=cli_env)
    assert "vector index: waiting for the backfill: no row has a vector yet" in run("status", env=cli_env).stdout
    run("worker", "--drain", env=cli_env)
    assert "vector index: ready: notes_embedding_ae1 (hnsw, vector_cosine_ops)" in run("status", env=cli_env).stdout
    assert run("index", "notes", env=cli_env).stdout == \
        "public.notes (embedding): ready: notes_embedding_ae1 (hnsw, vector_cosine_ops)\n"  # nothing to do

    run("watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h8", "--index", "ivfflat", env=cli_env)
    out = run("index", "notes", "--watch", "embedding", env=cli_env).stdout
    assert out.startswith("public.notes (embedding): built, ready: notes_embedding_ae1 (ivfflat, vector_cosine_ops)\n")
    result = run("watch", "notes", "--content", "body", "--embedder", "hashing", "--index", "btree", env=cli_env, check=False)
    assert result.returncode == 2 and "'btree' is not one of 'hnsw', 'ivfflat', 'none'" in result.stderr


def test_psql_builds_the_wanted_index_with_gexec(conn, dsn):
    conn.execute("create table notes (id bigint generated always as identity primary key, body text, embedding vector(8))")
    conn.execute("select autoembed.watch('notes', 'body', embedder => 'hashing', model => 'h', index => 'hnsw')")
    psql = [shutil.which("psql") or "psql", dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    subprocess.run(psql, input="select autoembed.index_statement('notes') \\gexec\n", capture_output=True, text=True,
                   timeout=60, check=True)
    assert conn.execute("select state from autoembed.index_status").fetchone()[0] == \
        "ready: notes_embedding_ae1 (hnsw, vector_cosine_ops)"
