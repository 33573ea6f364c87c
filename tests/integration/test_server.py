"""autoembed's HTTP server: POST /drain drains the queue with the worker for a caller holding the
token (one drain at a time), /healthz, /readyz, /metrics; unknown paths are 404. The server of
`autoembed serve` runs in-process here (its drains use a test embedder); the worker's HTTP port
and `serve` itself run as the real commands."""

from __future__ import annotations

import threading
import time

import pytest
from reliability.harness import wait_until
from support import DIMS, RecordingEmbedder, create_docs, watch
from support.http import call, running, serving

from autoembed.devdb import free_port
from autoembed.drain import Drainer, KeptEmbedders
from autoembed.embedders.hashing import HashingEmbedder
from autoembed.health import Liveness
from autoembed.server import App, build_app, make_server
from autoembed.status_page import StatusBoard

TOKEN = "test-drain-token"


class SlowEmbedders(KeptEmbedders):
    """Kept embedders that hand out one recording hashing embedder, `delay` seconds per call."""

    def __init__(self, settings, delay: float):
        super().__init__(settings)
        self.recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS), before=lambda _: time.sleep(delay))

    def get(self, kind, model, dimensions):
        return self.recorder


def drain_app(dsn: str, settings, delay: float = 0.0) -> App:
    drainer = Drainer(settings, dsn, max_seconds=30, embedders=SlowEmbedders(settings, delay))
    return App(dsn, Liveness().start(), StatusBoard(dsn), drainer, TOKEN)


def test_drain_needs_the_token_and_answers_what_it_did(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('one'), ('two'), ('   ')")
    with running(drain_app(dsn, settings)) as url:
        for token in (None, "wrong", TOKEN + "x"):
            assert call(f"{url}/drain", "POST", token) == (401, {"error": "a bearer token is required"})
        assert conn.execute("select count(embedding) from docs").fetchone() == (0,)
        status, answer = call(f"{url}/drain", "POST", TOKEN)
    assert status == 200
    assert {k: answer[k] for k in ("status", "embedded", "failed")} == {"status": "drained", "embedded": 2, "failed": 1}
    assert answer["seconds"] > 0
    assert conn.execute("select embedded, pending, failed from autoembed.status").fetchone() == (2, 0, 1)


def test_a_second_drain_while_one_runs_is_refused_and_no_row_is_embedded_twice(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, 12) g")
    app = drain_app(dsn, settings.replace(batch_size=3), delay=0.3)
    with running(app) as url:
        first: list = []
        thread = threading.Thread(target=lambda: first.append(call(f"{url}/drain", "POST", TOKEN)))
        thread.start()
        wait_until(lambda: app.drainer.running_for() is not None, timeout=10, what="the first drain")
        status, answer = call(f"{url}/drain", "POST", TOKEN)
        thread.join(timeout=60)
    assert status == 409 and answer["status"] == "busy" and answer["running_for_seconds"] >= 0
    assert first[0][0] == 200 and first[0][1]["embedded"] == 12
    texts = app.drainer.embedders.recorder.texts
    assert sorted(texts) == sorted(f"doc {i}" for i in range(1, 13))  # each once


def test_healthz_readyz_metrics_and_unknown_paths(dsn, empty_dsn, settings):
    with running(drain_app(dsn, settings)) as url:
        assert call(f"{url}/healthz") == (200, {"status": "ok", "detail": "the worker loop is running"})
        assert call(f"{url}/readyz") == (200, {"status": "ready", "checks": {
            "database": "ok", "migrated": "ok", "sources": "ok (0 watched)"}})
        status, metrics = call(f"{url}/metrics")
        assert status == 200 and "autoembed_rows_total" in metrics
        assert call(f"{url}/anything")[0] == 404
    with running(drain_app(empty_dsn, settings)) as url:
        status, answer = call(f"{url}/readyz")
        assert status == 503 and "run `autoembed migrate`" in answer["checks"]["migrated"]
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with running(drain_app(nowhere, settings)) as url:
        status, answer = call(f"{url}/readyz")
        assert status == 503 and "cannot connect to the database" in answer["checks"]["database"]
        assert call(f"{url}/healthz")[0] == 200  # alive: nothing fails while no drain runs


def test_readyz_of_a_worker_limited_to_some_watches_judges_only_those(conn, dsn):
    """A watch no worker here serves (another worker's, with a model this one cannot load) must not
    make this one unready: an orchestrator would restart it for nothing."""
    create_docs(conn, "articles")
    create_docs(conn, "notes")
    watch(conn, "articles")
    watch(conn, "notes")
    conn.execute("update autoembed.sources set embedder = 'retired-kind' where source = 'notes'::regclass")
    with running(App(dsn, Liveness().start(), StatusBoard(dsn))) as url:
        status, answer = call(f"{url}/readyz")
        assert status == 503 and "notes" in answer["checks"]["sources"], answer
    with running(App(dsn, Liveness().start(), StatusBoard(dsn), watches=("articles",))) as url:
        assert call(f"{url}/readyz") == (200, {"status": "ready", "checks": {
            "database": "ok", "migrated": "ok", "sources": "ok (1 watched)"}})


def test_without_a_token_the_server_refuses_drains(dsn, settings):
    with running(build_app(settings, dsn, token=None, max_drain_seconds=10)) as url:
        status, answer = call(f"{url}/drain", "POST", TOKEN)
    assert status == 403 and "AUTOEMBED_DRAIN_TOKEN" in answer["error"]


def test_autoembed_serve_drains_for_the_token(conn, dsn, tmp_path):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('served')")
    port = free_port()
    env = {"AUTOEMBED_DRAIN_TOKEN": TOKEN, "AUTOEMBED_HOME": str(tmp_path)}
    with serving(["serve", "--port", str(port)], port, {"DATABASE_URL": dsn, **env}, tmp_path / "serve.log") as url:
        assert call(f"{url}/drain", "POST")[0] == 401
        status, answer = call(f"{url}/drain", "POST", TOKEN)
        assert (status, answer["status"], answer["embedded"]) == (200, "drained", 1)
        assert call(f"{url}/readyz")[0] == 200
    assert conn.execute("select embedded from autoembed.status").fetchone() == (1,)


def test_the_worker_port_serves_health_and_metrics_but_no_drain(conn, dsn, tmp_path):
    create_docs(conn)
    watch(conn)
    port = free_port()
    env = {"AUTOEMBED_METRICS_PORT": str(port), "AUTOEMBED_HOME": str(tmp_path), "AUTOEMBED_POLL_INTERVAL": "0.2"}
    with serving(["worker"], port, {"DATABASE_URL": dsn, **env}, tmp_path / "worker.log") as url:
        conn.execute("insert into docs (body) values ('the loop runs')")
        wait_until(lambda: conn.execute("select embedded from autoembed.status").fetchone() == (1,), timeout=30,
                   what="the worker loop to embed a row")
        assert call(f"{url}/readyz")[0] == 200
        assert "autoembed_queue_depth" in call(f"{url}/metrics")[1]
        assert call(f"{url}/drain", "POST", TOKEN)[0] == 403
        assert call(f"{url}/nothing-here")[0] == 404  # before, every path of this port answered 200


@pytest.mark.parametrize("errors, batches, alive", [(0, 0, True), (3, 0, False), (3, 1, True)])
def test_the_loop_is_failing_while_database_errors_rise_and_no_batch_commits(errors, batches, alive):
    from autoembed import metrics

    liveness = Liveness()
    liveness.sample()
    for _ in range(errors):
        metrics.DATABASE_ERRORS.inc()
    for _ in range(batches):
        metrics.BATCH_SECONDS.observe(0.01)
    ok, why = liveness.check()
    assert ok is alive, why
    if not alive:
        assert f"{errors} database error(s)" in why
