"""The real `autoembed` command as a subprocess, the way users and scripts run it."""

from __future__ import annotations

import json
import re
import os
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
    assert {c["feature"] for c in status["capabilities"]} == {"vector", "pgmq", "pg_cron", "pg_net"}
    hits = json.loads(run("search", "notes", "김치찌개 레시피", "-k", "1", "--json", env=cli_env).stdout)
    assert hits[0]["content"] == "김치찌개 레시피"
    assert "no failures" in run("failures", env=cli_env).stdout


def test_bad_input_gives_a_clear_error_and_exit_2(conn, cli_env):
    conn.execute("create table notes (id int primary key, body text, embedding vector(8))")
    result = run("watch", "notes", "--content", "nope", "--embedder", "hashing", env=cli_env, check=False)
    assert result.returncode == 2
    assert "autoembed: error: autoembed.watch: 'nope' is neither a column of notes" in result.stderr
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
        run("dev-db", "stop", env=env, check=False)
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
