"""HTTP helpers for the tests of autoembed's server: one request, an App served in a thread, and an
`autoembed` command that serves HTTP, run until it answers /healthz."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reliability.harness import wait_until

from autoembed.server import App, make_server

AUTOEMBED = str(Path(sys.executable).with_name("autoembed"))


def call(url: str, method: str = "GET", token: str | None = None) -> tuple[int, dict | str]:
    """(status, JSON body or text) of one request to `url`, with a bearer `token` if given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, method=method, headers=headers, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            status, body, kind = answer.status, answer.read().decode(), answer.headers.get_content_type()
    except urllib.error.HTTPError as error:
        status, body, kind = error.code, error.read().decode(), error.headers.get_content_type()
    return status, json.loads(body) if kind == "application/json" else body


@contextmanager
def running(app: App) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (any free port) in a thread; yields its base URL; closes it after."""
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        app.liveness.close()
        if app.drainer:
            app.drainer.close()


@contextmanager
def serving(args: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[str]:
    """Run `autoembed ARGS` (with `env` added) until it answers GET /healthz on `port`; yields its
    base URL; afterwards SIGTERM, and it must exit 0."""
    with open(log, "w") as out:
        process = subprocess.Popen([AUTOEMBED, *args], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"autoembed {args[0]} exited with {process.returncode}:\n{log.read_text()}")
        try:
            return call(f"{url}/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(up, timeout=60, what=f"autoembed {args[0]} on port {port}")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
