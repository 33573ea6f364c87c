"""autoembed's HTTP server (the standard library's ThreadingHTTPServer), for `autoembed serve` and
the worker's HTTP port:

- POST /drain (with `Authorization: Bearer <AUTOEMBED_DRAIN_TOKEN>`, compared in constant time):
  drains the queue with the worker and answers what it did (autoembed.drain); 401 without the
  token or with another, 409 while a drain runs, 403 where the server has no token (the worker's
  port);
- GET /healthz: 200 while the worker loop of this process is alive (autoembed.health), else 503;
- GET /readyz: 200 once the database answers, autoembed is migrated and every watched table can be
  served, else 503 with the check that failed;
- GET /metrics: Prometheus metrics;
- GET / (the status page) and GET /status.json (what it shows, autoembed.status_page).
"""

from __future__ import annotations

import hmac
import json
import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from autoembed.drain import Drainer
from autoembed.errors import AutoembedError, ConfigError, DatabaseUnavailable
from autoembed.health import Liveness, readiness
from autoembed.settings import Settings
from autoembed.status_page import PAGE, StatusBoard

log = logging.getLogger(__name__)

STUCK_GRACE = 60.0  # seconds past its time limit after which a drain counts as stuck


@dataclass
class App:
    """What the routes answer from: the database, the drainer (None: no POST /drain here), the
    drain token, the loop's liveness, the status page's snapshots and the watches the worker
    serves (empty: all; /readyz judges only those)."""

    dsn: str
    liveness: Liveness
    board: StatusBoard
    drainer: Drainer | None = None
    token: str | None = None
    watches: tuple[str, ...] = ()

    def authorized(self, header: str | None) -> bool:
        """Whether an Authorization header carries the drain token (constant-time comparison)."""
        scheme, _, supplied = (header or "").partition(" ")
        return (self.token is not None and scheme.lower() == "bearer"
                and hmac.compare_digest(supplied.strip().encode(), self.token.encode()))


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the App of its server."""

    server_version = "autoembed"
    app: App  # set on the subclass make_server() builds

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        """GET routes."""
        path = self.path.split("?", 1)[0]
        routes = {"/healthz": self._healthz, "/readyz": self._readyz, "/metrics": self._metrics,
                  "/": self._page, "/status.json": self._status}
        route = routes.get(path)
        if route is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})
        else:
            route()

    def do_POST(self) -> None:  # noqa: N802
        """POST /drain."""
        self.rfile.read(int(self.headers.get("Content-Length") or 0))  # pg_net sends a JSON body
        if self.path.split("?", 1)[0] != "/drain":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {self.path}"})
            return
        app = self.app
        if app.drainer is None or app.token is None:
            self._json(HTTPStatus.FORBIDDEN, {"error": "POST /drain is off here: `autoembed serve` with "
                                                       "AUTOEMBED_DRAIN_TOKEN set serves it"})
            return
        if not app.authorized(self.headers.get("Authorization")):
            self._json(HTTPStatus.UNAUTHORIZED, {"error": "a bearer token is required"},
                       {"WWW-Authenticate": 'Bearer realm="autoembed"'})
            return
        try:
            result = app.drainer.drain()
        except DatabaseUnavailable as exc:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            return
        except ConfigError as exc:
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)})
            return
        except Exception as exc:  # the caller (pg_net) records the answer; the log has the traceback
            log.exception("drain failed")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"drain failed: {type(exc).__name__}: {exc}"})
            return
        if result is None:
            self._json(HTTPStatus.CONFLICT, {"status": "busy", "running_for_seconds":
                                             round(app.drainer.running_for() or 0.0, 3)})
        else:
            log.info("drain %s in %.2fs: %d embedded, %d failed", result.status, result.seconds,
                     result.rows["embedded"], result.rows["failed"], extra=result.as_json())
            self._json(HTTPStatus.OK, result.as_json())

    # -- routes ---------------------------------------------------------------------------------
    def _healthz(self) -> None:
        alive, why = self.app.liveness.check()
        self._json(HTTPStatus.OK if alive else HTTPStatus.SERVICE_UNAVAILABLE,
                   {"status": "ok" if alive else "failing", "detail": why})

    def _readyz(self) -> None:
        drainer = self.app.drainer
        ready = readiness(self.app.dsn, drainer.embedders if drainer else None, self.app.watches)
        self._json(HTTPStatus.OK if ready.ready else HTTPStatus.SERVICE_UNAVAILABLE,
                   {"status": "ready" if ready.ready else "not ready", "checks": ready.checks})

    def _metrics(self) -> None:
        self._send(HTTPStatus.OK, generate_latest(), CONTENT_TYPE_LATEST)

    def _page(self) -> None:
        self._send(HTTPStatus.OK, PAGE.encode("utf-8"), "text/html; charset=utf-8")

    def _status(self) -> None:
        try:
            self._json(HTTPStatus.OK, self.app.board.snapshot())
        except (psycopg.Error, AutoembedError) as exc:
            message = exc.diag.message_primary if isinstance(exc, psycopg.Error) and exc.diag.message_primary else str(exc)
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": message})

    # -- answers --------------------------------------------------------------------------------
    def _json(self, status: HTTPStatus, body: dict, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body, ensure_ascii=False).encode("utf-8"), "application/json", headers)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        """Access lines go to the debug log, not stderr."""
        log.debug("%s %s", self.address_string(), format % args)


def make_server(app: App, host: str, port: int) -> ThreadingHTTPServer:
    """A server for `app` on host:port (port 0: any free one; see server_port). Closing it waits for
    the requests in flight (a drain finishes the batch in hand)."""
    handler = type("AppHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = False
    return server


def build_app(settings: Settings, dsn: str, *, token: str | None, max_drain_seconds: float) -> App:
    """The App of `autoembed serve`: drains on request (only with a token), and a drain past its
    time limit by STUCK_GRACE seconds counts as the loop not being alive."""
    drainer = Drainer(settings, dsn, max_seconds=max_drain_seconds) if token else None

    def stuck() -> str | None:
        running = drainer.running_for() if drainer else None
        if running is not None and running > max_drain_seconds + STUCK_GRACE:
            return f"a drain has run for {running:.0f} s, past its limit of {max_drain_seconds:.0f} s"
        return None

    return App(dsn, Liveness(stuck=stuck).start(), StatusBoard(dsn), drainer, token)


def serve(settings: Settings, dsn: str, *, host: str, port: int, token: str | None,
          max_drain_seconds: float = 300.0) -> None:
    """Serve until SIGTERM or SIGINT; a drain in progress then finishes its batch in hand."""
    app = build_app(settings, dsn, token=token, max_drain_seconds=max_drain_seconds)
    server = make_server(app, host, port)

    def shut_down(*_args) -> None:
        log.info("stop requested: closing the HTTP server")
        if app.drainer is not None:
            threading.Thread(target=app.drainer.close, daemon=True).start()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    log.info("serving on http://%s:%d (POST /drain %s)", host, server.server_port,
             "on" if token else "off: no AUTOEMBED_DRAIN_TOKEN", extra={"host": host, "port": server.server_port})
    try:
        server.serve_forever()
    finally:
        server.server_close()
        app.liveness.close()
        if app.drainer is not None:
            app.drainer.close()


def start_in_background(dsn: str, *, host: str, port: int, watches: Sequence[str] = ()) -> ThreadingHTTPServer:
    """The worker's HTTP port (`autoembed worker --metrics-port`): every GET route, no POST /drain,
    served from a daemon thread while the worker loop runs in this process (limited to `watches`,
    as the worker is)."""
    server = make_server(App(dsn, Liveness().start(), StatusBoard(dsn), watches=tuple(watches)), host, port)
    server.daemon_threads = True  # the loop's exit ends the process
    threading.Thread(target=server.serve_forever, name="autoembed-http", daemon=True).start()
    return server
