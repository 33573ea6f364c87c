"""The pg_net part: the database wakes an HTTP-triggered worker on a pg_cron schedule."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from support import create_docs, watch

from autoembed.connections import connect


def has_extension(conn, name: str) -> bool:
    return conn.execute("select exists (select from pg_extension where extname = %s)", (name,)).fetchone()[0]


def test_scheduling_without_pg_cron_is_refused_clearly(conn):
    with pytest.raises(psycopg.Error, match="pg_cron is not installed in this database"):
        conn.execute("select autoembed.drain_schedule('* * * * *')")


def test_schedules_are_validated_against_the_pg_cron_version(cron_dsn):
    with connect(cron_dsn, autocommit=True) as conn:
        version = conn.execute("select extversion from pg_extension where extname = 'pg_cron'").fetchone()[0]
        assert conn.execute("select autoembed.drain_schedule(' * * * * * ')").fetchone()[0] == "* * * * *"
        for bad, message in [("every day", "is neither 'N seconds' nor a five-field cron expression"),
                             ("0 seconds", "a seconds schedule takes 1 to 59 seconds"),
                             ("90 seconds", "a seconds schedule takes 1 to 59 seconds")]:
            with pytest.raises(psycopg.Error, match=message):
                conn.execute("select autoembed.drain_schedule(%s)", (bad,))
        if tuple(int(p) for p in version.split("-")[0].split(".")) < (1, 5):
            with pytest.raises(psycopg.Error, match=f"pg_cron {version} schedules by the minute only"):
                conn.execute("select autoembed.drain_schedule('10 seconds')")
        else:
            assert conn.execute("select autoembed.drain_schedule('10 seconds')").fetchone()[0] == "10 seconds"


def test_without_pg_net_drain_requests_are_refused_clearly(conn):
    if has_extension(conn, "pg_net"):
        pytest.skip("pg_net is installed here; the missing-extension branch cannot run")
    with pytest.raises(psycopg.Error, match="request_drain needs pg_net, which is not installed"):
        conn.execute("select autoembed.request_drain('http://127.0.0.1:9/drain')")
    caps = dict(conn.execute("select feature, detail from autoembed.capabilities()").fetchall())
    assert caps["pg_net"].startswith("not installed")


def test_request_drain_posts_to_the_worker_when_jobs_wait(conn):
    if not has_extension(conn, "pg_net"):
        pytest.skip("pg_net is not installed on this server (no Debian 12 package); runs on Supabase Postgres")
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        create_docs(conn)
        watch(conn, backfill=False)
        url = f"http://127.0.0.1:{server.server_port}/drain"
        assert conn.execute("select autoembed.request_drain(%s)", (url,)).fetchone()[0] is None  # nothing waits
        conn.execute("insert into docs (body) values ('x'), ('y')")
        assert conn.execute("select autoembed.request_drain(%s)", (url,)).fetchone()[0] is not None
        import time

        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert received == [{"queue": "autoembed_jobs", "visible_jobs": 2}]
    finally:
        server.shutdown()
