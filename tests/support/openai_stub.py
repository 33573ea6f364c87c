"""A real HTTP server speaking the OpenAI embeddings API, for tests and benchmarks.

    with OpenAIStub(dimensions=8, latency=0.05, faults={"500": 0.1}, seed=1) as stub:
        settings = Settings(openai_base_url=stub.base_url)   # http://127.0.0.1:PORT/v1
        ...
        assert stub.requests == [3, 3, 1]                     # inputs per request

    python -m support.openai_stub --port 8089 --dimensions 384 --latency-ms 20 \\
        --fault 500=0.1 --fault 429=0.05

Vectors come from `HashingEmbedder`, so each text always gets the same vector and tests can
compare against it. Faults are drawn per request from a seeded RNG at the given rates:

    "500", "429" (with Retry-After: 1), any other HTTP status such as "408" or "503"
    "hang"       wait `hang_seconds` (or until the stub stops), then close without answering
    "close"      close the connection without a response
    "malformed"  200 with a body that is not valid JSON
    "no_data"    200 with valid JSON lacking "data"
    "wrong_dim"  vectors of `dimensions + 1`
    "short"      one vector fewer than there are inputs

Requests containing any `fail_texts` substring get a 400 (every time), those containing any
`hang_texts` substring hang like "hang"; with `require_key`, requests without
`Authorization: Bearer <require_key>` get a 401. `echo_key` makes every error body quote the
bearer token it was sent, in one of the shapes of `ECHO_FORMS`, as careless providers do.

Capacity and pace, as real endpoints have them:

    capacity=8            at most 8 requests served at once; one more is answered 429 at once,
                          with Retry-After: `overload_retry_after` (an overloaded TEI, a rate-limited API)
    workers=1             requests are computed `workers` at a time, the others queue (a CPU server;
                          it keeps computing a request whose client gave up)
    latency=0.2           seconds each request takes, plus `per_text_latency` seconds per input

`max_concurrent` is the most requests that were being served at once; each `StubRequest`
records how many were (`concurrent`, itself included) and when it arrived. `GET /stub/stats`
(`?reset=1` to reset after reading) returns counts, max_concurrent and the number of requests,
for a stub running in another process.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import numpy as np

from autoembed.embedders.hashing import HashingEmbedder

#: fault kinds that are not plain HTTP status codes
BEHAVIOUR_FAULTS = ("hang", "close", "malformed", "no_data", "wrong_dim", "short")
#: how `echo_key` quotes the bearer token it received
ECHO_FORMS = {
    "plain": lambda key: key,
    "repr": lambda key: repr(f"Bearer {key}\n"),
    "url": lambda key: quote(key, safe=""),
    "base64": lambda key: base64.b64encode(f"Bearer {key}".encode()).decode(),
    "basic": lambda key: base64.b64encode(f"user:{key}".encode()).decode(),
    "hex": lambda key: key.encode().hex(),
    "partial": lambda key: f"{key[:10]}...{key[-8:]}",
    "upper": lambda key: key.upper(),
}


@dataclass(frozen=True)
class StubRequest:
    """One embeddings request as the stub received it."""

    inputs: int
    model: str | None
    authorized: bool  # an Authorization header was present
    outcome: str  # "ok", "400", "401", "429" (a fault or over capacity), or the fault kind
    concurrent: int = 1  # requests being served when it arrived, itself included
    arrived: float = 0.0  # time.monotonic() at arrival


def _normalise_faults(faults: Mapping[str | int, float] | None) -> dict[str, float]:
    rates: dict[str, float] = {}
    for kind, rate in (faults or {}).items():
        kind = str(kind)
        is_status = kind.isdigit() and len(kind) == 3 and 400 <= int(kind) <= 599
        if kind not in BEHAVIOUR_FAULTS and not is_status:
            raise ValueError(
                f"unknown fault {kind!r}: use an HTTP status 400-599 or one of {', '.join(BEHAVIOUR_FAULTS)}"
            )
        rate = float(rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate for {kind!r} must be between 0 and 1, got {rate}")
        rates[kind] = rate
    if sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError(f"fault rates add up to {sum(rates.values()):g}, more than 1")
    return rates


class OpenAIStub:
    """An OpenAI-compatible `/v1/embeddings` server on a background thread.

    Attributes: `host`, `port`, `base_url` (once started), the constructor's arguments; live
    snapshots `counts` (Counter of outcomes: "ok", "400", "401", "429" and each fault kind),
    `requests` (input count per request, in arrival order), `request_log` (`StubRequest`
    records) and `max_concurrent`. `reset()` clears them.
    """

    def __init__(
        self,
        *,
        dimensions: int = 8,
        latency: float = 0.0,
        faults: Mapping[str | int, float] | None = None,
        seed: int | None = None,
        fail_texts: Iterable[str] = (),
        require_key: str | None = None,
        hang_seconds: float = 60.0,
        shuffle: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        per_text_latency: float = 0.0,
        capacity: int | None = None,
        overload_retry_after: float = 1.0,
        workers: int | None = None,
        hang_texts: Iterable[str] = (),
        echo_key: str | None = None,
    ):
        """`latency` (s) delays every answer; `shuffle` returns `data` items out of order.
        See the module doc for the others."""
        if dimensions < 1:
            raise ValueError(f"dimensions must be at least 1, got {dimensions}")
        for name, value in (("capacity", capacity), ("workers", workers)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if echo_key is not None and echo_key not in ECHO_FORMS:
            raise ValueError(f"unknown echo_key {echo_key!r}: use one of {', '.join(ECHO_FORMS)}")
        self.dimensions = dimensions
        self.latency = float(latency)
        self.per_text_latency = float(per_text_latency)
        self.capacity = capacity
        self.overload_retry_after = float(overload_retry_after)
        self.workers = workers
        self.hang_texts = frozenset(hang_texts)
        self.echo_key = echo_key
        self._serving = 0
        self._max_concurrent = 0
        self._slots = threading.Semaphore(workers) if workers else None
        self.faults = _normalise_faults(faults)
        self.fail_texts = frozenset(fail_texts)
        self.require_key = require_key
        self.hang_seconds = float(hang_seconds)
        self.shuffle = shuffle
        self.host = host
        self.port = port
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._log: list[StubRequest] = []
        self._embedders: dict[int, HashingEmbedder] = {}
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "OpenAIStub":
        """Bind and serve on a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the stub is already running")
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.stub = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging requests are woken and every open connection is closed."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "OpenAIStub":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT/v1`, the value for `openai_base_url` (still readable after stop)."""
        if self.port == 0:
            raise RuntimeError("the stub has not started: use it as a context manager or call start()")
        return f"http://{self.host}:{self.port}/v1"

    # -- observations ------------------------------------------------------------------------

    @property
    def counts(self) -> Counter[str]:
        """A snapshot of outcomes counted so far (missing kinds read as 0)."""
        with self._lock:
            return Counter(self._counts)

    @property
    def requests(self) -> list[int]:
        """Inputs per embeddings request, in arrival order (faulted requests included)."""
        with self._lock:
            return [r.inputs for r in self._log]

    @property
    def request_log(self) -> list[StubRequest]:
        """Every embeddings request received, in arrival order."""
        with self._lock:
            return list(self._log)

    @property
    def max_concurrent(self) -> int:
        """The most requests served at once so far (refused ones not included)."""
        with self._lock:
            return self._max_concurrent

    def reset(self) -> None:
        """Forget counts, recorded requests and `max_concurrent`."""
        with self._lock:
            self._counts.clear()
            self._log.clear()
            self._max_concurrent = 0

    # -- used by the handler -----------------------------------------------------------------

    def _draw_fault(self) -> str | None:
        with self._lock:
            roll = self._rng.random()
        total = 0.0
        for kind, rate in self.faults.items():
            total += rate
            if roll < total:
                return kind
        return None

    def _record(self, request: StubRequest) -> None:
        with self._lock:
            self._log.append(request)
            self._counts[request.outcome] += 1

    def _admit(self) -> int | None:
        """Take a serving place; None when `capacity` places are taken. Returns the count served."""
        with self._lock:
            if self.capacity is not None and self._serving >= self.capacity:
                return None
            self._serving += 1
            self._max_concurrent = max(self._max_concurrent, self._serving)
            return self._serving

    def _leave(self) -> None:
        with self._lock:
            self._serving -= 1

    def _compute(self, inputs: int) -> bool:
        """Spend the request's time (queueing for a worker first, if they are limited); False if stopping."""
        seconds = self.latency + self.per_text_latency * inputs
        if self._slots is None:
            return not (seconds > 0 and self._stopping.wait(seconds))
        while not self._slots.acquire(timeout=0.05):
            if self._stopping.is_set():
                return False
        try:
            return not (seconds > 0 and self._stopping.wait(seconds))
        finally:
            self._slots.release()

    def _vectors(self, texts: list[str], dimensions: int) -> list[np.ndarray]:
        embedder = self._embedders.get(dimensions)
        if embedder is None:
            embedder = self._embedders.setdefault(dimensions, HashingEmbedder("openai-stub", dimensions))
        return embedder.embed(texts)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler must not hold up shutdown or interpreter exit
    stub: OpenAIStub

    def handle_error(self, request, client_address) -> None:
        """Clients that hang up early (timeouts) are expected; anything else is reported."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


def _error_body(message: str, type_: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


_STATUS_ERRORS = {
    408: ("Request timed out.", "timeout"),
    429: ("Rate limit reached for requests. Please try again in 1s.", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error"),
    502: ("Bad gateway.", "server_error"),
    503: ("The engine is currently overloaded, please try again later.", "server_error"),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real providers
    server_version = "autoembed-openai-stub"
    # Headers and body go out in separate writes; with Nagle on, keep-alive clients wait ~40 ms
    # on a delayed ACK for every response, which would swamp benchmark numbers.
    disable_nagle_algorithm = True

    @property
    def stub(self) -> OpenAIStub:
        return self.server.stub  # type: ignore[attr-defined]  # BaseServer is typed loosely

    def setup(self) -> None:
        super().setup()
        with self.stub._lock:
            self.stub._connections.add(self.connection)

    def finish(self) -> None:
        with self.stub._lock:
            self.stub._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        """Silent: tests and benchmarks read `counts` instead."""

    def _send_json(self, status: int, payload, headers: Mapping[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode("utf-8"), headers)

    def _send_raw(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        """Close the connection without writing a response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path, _, query = self.path.partition("?")
        if path == "/stub/stats":  # for a stub in another process: what `counts` etc. would say
            stub = self.stub
            stats = {"counts": dict(stub.counts), "max_concurrent": stub.max_concurrent,
                     "requests": len(stub.request_log)}
            if query == "reset=1":
                stub.reset()
            self._send_json(200, stats)
        elif self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [{"id": "openai-stub", "object": "model"}]})
        else:
            self._send_json(404, _error_body(f"Unknown path {self.path}", "invalid_request_error"))

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0].rstrip("/") not in ("/v1/embeddings", "/embeddings"):
            self._send_json(404, _error_body(f"Unknown path {self.path}", "invalid_request_error"))
            return
        stub = self.stub
        try:
            body = json.loads(raw)
            texts = body["input"]
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not texts:
                raise TypeError("'input' must be a string or a non-empty list of strings")
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise TypeError("you must provide a model parameter")
            dimensions = int(body.get("dimensions") or stub.dimensions)
            encoding = body.get("encoding_format") or "float"
        except (ValueError, KeyError, TypeError) as exc:
            self._send_json(400, _error_body(f"Invalid request body: {exc}", "invalid_request_error"))
            return

        authorization = self.headers.get("Authorization")
        arrived = time.monotonic()

        def record(outcome: str, concurrent: int = 1) -> None:
            stub._record(StubRequest(len(texts), model, authorization is not None, outcome, concurrent, arrived))

        def echoed(message: str) -> str:
            if stub.echo_key is None or not authorization:
                return message
            return f"{message} (credential: {ECHO_FORMS[stub.echo_key](authorization.removeprefix('Bearer '))})"

        if stub.require_key is not None and authorization != f"Bearer {stub.require_key}":
            record("401")
            given = (authorization or "").removeprefix("Bearer ")
            # Echoes the key it was given, in full, on purpose: clients must not print this body.
            message = f"Incorrect API key provided: {given}." if given else "You didn't provide an API key."
            self._send_json(401, _error_body(message, "invalid_request_error", "invalid_api_key"))
            return
        for i, text in enumerate(texts):
            bad = next((s for s in stub.fail_texts if s in text), None)
            if bad is not None:
                record("400")
                message = echoed(f"Invalid 'input[{i}]': {text!r} was rejected (contains {bad!r}).")
                self._send_json(400, _error_body(message, "invalid_request_error", "invalid_input"))
                return

        concurrent = stub._admit()
        if concurrent is None:
            record("429", (stub.capacity or 0) + 1)
            message = echoed(f"Too many concurrent requests (at most {stub.capacity}); please retry.")
            self._send_json(429, _error_body(message, "rate_limit_exceeded", "overloaded"),
                            {"Retry-After": f"{stub.overload_retry_after:g}"})
            return
        try:
            fault = stub._draw_fault()
            if fault is None and any(h in text for h in stub.hang_texts for text in texts):
                fault = "hang"
            record(fault or "ok", concurrent)
            if fault == "hang":
                stub._stopping.wait(stub.hang_seconds)
                self._drop()
                return
            if not stub._compute(len(texts)):
                self._drop()
                return
        finally:
            stub._leave()  # before the answer goes out: a client that got it may send the next at once
        if fault == "close":
            self._drop()
        elif fault is not None and fault.isdigit():
            status = int(fault)
            message, code = _STATUS_ERRORS.get(status, (f"Injected HTTP {status}.", "injected"))
            kind = "server_error" if status >= 500 else "invalid_request_error"
            headers = {"Retry-After": "1"} if status == 429 else None
            self._send_json(status, _error_body(echoed(message), kind, code), headers)
        elif fault == "malformed":
            self._send_raw(200, b'{"object": "list", "data": [{"object": "embedding", "embedding": [0.1, ')
        elif fault == "no_data":
            self._send_json(200, {"object": "list", "model": model})
        else:
            if fault == "wrong_dim":
                dimensions += 1
            vectors = stub._vectors(texts, dimensions)
            if fault == "short":
                vectors = vectors[:-1]
            items = [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": (
                        base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
                        if encoding == "base64"
                        else v.tolist()
                    ),
                }
                for i, v in enumerate(vectors)
            ]
            if stub.shuffle:
                with stub._lock:
                    stub._rng.shuffle(items)
            tokens = sum(len(t.split()) for t in texts)
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": items,
                    "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )


def _parse_fault(value: str) -> tuple[str, float]:
    kind, sep, rate = value.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KIND=RATE such as 500=0.1, got {value!r}")
    try:
        return kind.strip(), float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"fault rate must be a number, got {rate!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Run the stub until interrupted; prints its base URL first, its counts last (as JSON)."""
    parser = argparse.ArgumentParser(
        prog="python -m support.openai_stub",
        description="An OpenAI-compatible embeddings server with deterministic vectors and injected faults.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--dimensions", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every answer")
    parser.add_argument(
        "--fault", type=_parse_fault, action="append", default=[], metavar="KIND=RATE",
        help=f"inject a fault at a rate, repeatable; KIND is an HTTP status or one of {', '.join(BEHAVIOUR_FAULTS)}",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--fail-text", action="append", default=[], help="substring answered with HTTP 400")
    parser.add_argument("--require-key", default=None, help="answer 401 unless this bearer token is sent")
    parser.add_argument("--hang-seconds", type=float, default=60.0)
    parser.add_argument("--shuffle", action="store_true", help="return data items out of order")
    parser.add_argument("--per-text-latency-ms", type=float, default=0.0, help="extra delay per input")
    parser.add_argument("--capacity", type=int, default=None, help="requests served at once; more get a 429")
    parser.add_argument("--overload-retry-after", type=float, default=1.0, help="Retry-After of those 429s (s)")
    parser.add_argument("--workers", type=int, default=None, help="requests computed at once; more queue")
    args = parser.parse_args(argv)
    try:
        stub = OpenAIStub(
            dimensions=args.dimensions,
            latency=args.latency_ms / 1000.0,
            faults=dict(args.fault),
            seed=args.seed,
            fail_texts=args.fail_text,
            require_key=args.require_key,
            hang_seconds=args.hang_seconds,
            shuffle=args.shuffle,
            host=args.host,
            port=args.port,
            per_text_latency=args.per_text_latency_ms / 1000.0,
            capacity=args.capacity,
            overload_retry_after=args.overload_retry_after,
            workers=args.workers,
        )
    except ValueError as exc:
        parser.error(str(exc))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with stub:
        print(stub.base_url, flush=True)
        while not stop.wait(0.2):
            pass
    print(json.dumps(dict(stub.counts), sort_keys=True), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
