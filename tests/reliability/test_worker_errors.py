"""Errors that retrying does not cure: a worker says what to do in one line, a drain exits
non-zero at once instead of retrying forever, and a long-running worker backs off instead of
retrying every half second. Bad settings are one line too, never a traceback."""

from __future__ import annotations

import logging
import subprocess
import threading
import time

import psycopg
import pytest
from harness import AUTOEMBED
from psycopg import sql
from support import create_docs, watch
from support.roles import make_role  # noqa: F401 (a fixture)

from autoembed.diagnosis import LastingDatabaseError
from autoembed.worker import Worker, run_worker


@pytest.fixture
def login(make_role, dsn) -> str:
    """A LOGIN role granted autoembed_worker and nothing else, as the README says to make one; its DSN."""
    return psycopg.conninfo.make_conninfo(dsn, user=make_role("embedder", "autoembed_worker", application=False))


def worker_cli(dsn: str, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([AUTOEMBED, "--dsn", dsn, "worker", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def deny_the_queue(conn) -> None:
    """What a GRANT that did not take leaves (on Supabase, `postgres` granting on a schema it does
    not own): autoembed_worker without usage on schema pgmq."""
    conn.execute("revoke usage on schema pgmq from autoembed_worker")
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('queued')")


def test_a_drain_denied_the_queue_exits_at_once_saying_which_grant(conn, login):
    deny_the_queue(conn)
    started = time.monotonic()
    done = worker_cli(login, "--drain")
    assert done.returncode == 2, done
    assert time.monotonic() - started < 20
    errors = [line for line in done.stderr.splitlines() if "permission denied" in line]
    assert errors == ["autoembed: error: permission denied for schema pgmq: autoembed_worker lacks a privilege; "
                      "run grant usage on schema pgmq to autoembed_worker;  -- as postgres"], done.stderr
    assert "Traceback" not in done.stderr


def test_a_role_without_the_worker_role_is_told_which_grant(conn, login, settings):
    create_docs(conn)
    watch(conn)
    role = psycopg.conninfo.conninfo_to_dict(login)["user"]
    conn.execute(sql.SQL("revoke autoembed_worker from {}").format(sql.Identifier(role)))
    done = worker_cli(login, "--drain")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done
    assert "grant autoembed_worker" in done.stderr.lower(), done.stderr
    with pytest.raises(LastingDatabaseError) as raised:
        run_worker(settings, login, drain=True)
    assert str(raised.value) == (f'permission denied for schema autoembed: run `GRANT autoembed_worker TO "{role}";` '
                                 "as the database owner")


def test_a_database_that_is_not_migrated_is_told_to_migrate(empty_dsn, settings):
    started = time.monotonic()
    done = worker_cli(empty_dsn, "--drain")
    assert done.returncode == 2 and time.monotonic() - started < 20, done
    assert len(done.stderr.strip().splitlines()) == 1 and "run `autoembed migrate`" in done.stderr, done.stderr
    with pytest.raises(LastingDatabaseError, match=r"^the database is not migrated \((the vector extension is|"
                                                   r"autoembed's tables are) missing\): run `autoembed migrate`$"):
        run_worker(settings, empty_dsn, drain=True)


def test_a_running_worker_denied_the_queue_backs_off_and_says_what_to_do(conn, login, settings, caplog):
    caplog.set_level(logging.INFO, logger="autoembed")
    deny_the_queue(conn)
    worker = Worker(settings, login)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(6)
    finally:
        worker.stop()
        thread.join(40)
        worker.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("permission denied for schema pgmq")]
    assert lines and all("run grant usage on schema pgmq to autoembed_worker" in line for line in lines), lines
    # 0.5, 1, 2, 4 s: not one try every half second (12 in 6 s)
    delays = [line.rsplit("retrying in ", 1)[1] for line in lines]
    assert delays[:4] == ["0.5s)", "1.0s)", "2.0s)", "4.0s)"][:len(delays)], delays
    assert len(lines) <= 5


def test_once_embeds_what_is_visible_and_returns(conn, dsn, settings):
    create_docs(conn)
    source_id = watch(conn)
    conn.execute("insert into docs (body) select 'row ' || g from generate_series(1, 5) g")
    conn.execute("select autoembed.enqueue(%s, array['1'], 0, 3600)", (source_id,))  # a job due in an hour
    worker = Worker(settings, dsn)
    try:
        worker.run(once=True)
    finally:
        worker.close()
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 5
    assert conn.execute("select count(*) from autoembed.jobs").fetchone()[0] == 1


def test_once_stops_at_a_database_error_that_will_not_go_away(conn, login, settings):
    deny_the_queue(conn)
    with pytest.raises(LastingDatabaseError, match="permission denied for schema pgmq: autoembed_worker lacks"):
        run_worker(settings, login, once=True)


def test_the_once_flag_embeds_what_is_visible_and_exits_non_zero_on_a_lasting_error(conn, dsn, login):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) select 'row ' || g from generate_series(1, 3) g")
    done = worker_cli(dsn, "--once")
    assert done.returncode == 0, done
    assert conn.execute("select count(embedding) from docs").fetchone()[0] == 3
    conn.execute("revoke usage on schema pgmq from autoembed_worker")
    conn.execute("insert into docs (body) values ('queued')")
    denied = worker_cli(login, "--once")
    assert denied.returncode == 2, denied
    assert "permission denied for schema pgmq" in denied.stderr


@pytest.mark.parametrize("value, message", [
    ("abc", "AUTOEMBED_METRICS_PORT must be a whole number, got 'abc'"),
    ("99999", "AUTOEMBED_METRICS_PORT (--metrics-port) must be from 1 to 65535, got 99999"),
])
def test_a_bad_metrics_port_is_one_line_naming_the_variable(dsn, value, message):
    done = worker_cli(dsn, "--drain", env={"AUTOEMBED_METRICS_PORT": value})
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [f"autoembed: error: {message}"]
