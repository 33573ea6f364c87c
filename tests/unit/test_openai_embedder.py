"""OpenAIEmbedder against the real OpenAI stub over loopback HTTP, plus its pure helpers."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
import traceback
from email.utils import formatdate
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import requests
from support import DIMS as SUPPORT_DIMS
from support import create_docs, drain, watch

from autoembed.embedders import build_embedder
from autoembed.embedders.hashing import HashingEmbedder
from autoembed.embedders.openai import (
    OpenAIEmbedder,
    batch_ranges,
    error_excerpt,
    parse_retry_after,
    public_endpoint,
)
from autoembed.embedders.dispatch import CALL_ROUNDS
from autoembed.embedders.pacing import PROBE_BASE_S, ConcurrencyLimiter, RequestSizer, TokenBucket
from autoembed.embedders.tokens import estimate_tokens, input_limit
from autoembed.errors import ConfigError, EmbeddingError
from autoembed.secrets import Scrubber
from autoembed.settings import Settings
from support.openai_stub import ECHO_FORMS, OpenAIStub

KEY = "sk-test-THIS-KEY-MUST-NEVER-BE-PRINTED-4242"
DIMS = 8


@pytest.fixture
def embedders():
    """Build embedders from settings pointing at a stub; closes them afterwards."""
    built: list[OpenAIEmbedder] = []

    def make(stub: OpenAIStub, *, model: str = "stub-model", dimensions: int = DIMS, **settings):
        settings.setdefault("openai_api_key", KEY)
        settings.setdefault("openai_timeout", 5.0)
        embedder = OpenAIEmbedder.from_settings(
            model, dimensions, Settings(openai_base_url=stub.base_url, **settings)
        )
        built.append(embedder)
        return embedder

    yield make
    for embedder in built:
        embedder.close()


def expected(texts, dimensions=DIMS):
    return HashingEmbedder("reference", dimensions).embed(texts)


def leaked_text(exc: BaseException) -> str:
    """Everything a user could see of an exception: message, repr, and the whole cause chain."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)


def raises_embedding_error(embedder, texts) -> EmbeddingError:
    with pytest.raises(EmbeddingError) as info:
        embedder.embed(texts)
    assert KEY not in leaked_text(info.value)
    return info.value


# -- success paths ---------------------------------------------------------------------------


def test_vectors_match_hashing_and_keep_input_order_across_requests(embedders):
    texts = [f"document number {i} about {'cats' if i % 2 else 'databases'}" for i in range(7)]
    with OpenAIStub(dimensions=DIMS, shuffle=True, seed=7) as stub:
        vectors = embedders(stub, openai_batch_size=3).embed(texts)
        assert sorted(stub.requests) == [1, 3, 3]  # requests go out concurrently: arrival order varies
    assert len(vectors) == 7
    for got, want in zip(vectors, expected(texts), strict=True):
        assert got.dtype == np.float32
        assert got.shape == (DIMS,)
        np.testing.assert_array_equal(got, want)


def test_unicode_text_round_trips(embedders):
    texts = [
        "안녕하세요, 세계! 임베딩 테스트입니다.",
        "🙂🚀🎉",
        "mixed 한국어 text, émojis 👩‍💻 and ümlauts",
        "中文和日本語のテキスト",
        'quotes " \\ and control\tchars\n',
        "",
    ]
    with OpenAIStub(dimensions=DIMS) as stub:
        vectors = embedders(stub).embed(texts)
    for got, want in zip(vectors, expected(texts), strict=True):
        np.testing.assert_array_equal(got, want)


def test_empty_input_sends_no_request(embedders):
    with OpenAIStub() as stub:
        assert embedders(stub).embed([]) == []
        assert stub.requests == []


def test_bearer_header_only_when_a_key_is_set(embedders):
    with OpenAIStub() as stub:
        embedders(stub, openai_api_key=None).embed(["a"])
        embedders(stub).embed(["b"])
        assert [r.authorized for r in stub.request_log] == [False, True]


def test_right_key_is_accepted(embedders):
    with OpenAIStub(require_key=KEY) as stub:
        vectors = embedders(stub).embed(["hello"])
    np.testing.assert_array_equal(vectors[0], expected(["hello"])[0])


def test_text_embedding_3_models_are_asked_for_the_column_dimension(embedders):
    # OpenAI's text-embedding-3 models shorten their vectors to `dimensions` when asked.
    with OpenAIStub(dimensions=32) as stub:
        vectors = embedders(stub, model="text-embedding-3-small", dimensions=DIMS).embed(["x"])
    np.testing.assert_array_equal(vectors[0], expected(["x"])[0])


def test_registry_builds_the_openai_embedder():
    embedder = build_embedder("openai", "m", 384, Settings(openai_api_key=KEY))
    try:
        assert isinstance(embedder, OpenAIEmbedder)
        assert embedder.kind == "openai"
        assert embedder.dimensions == 384
        # until the endpoint has answered, a call carries no more than one full request
        assert 1 <= embedder.max_batch_size <= Settings().openai_batch_size
    finally:
        embedder.close()


# -- failures the worker may retry -----------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("500", ["HTTP 500", "server had an error"]),
        ("503", ["HTTP 503", "overloaded"]),
        ("408", ["HTTP 408"]),
        ("close", ["closed the connection without a response"]),
        ("malformed", ["HTTP 200", "not valid JSON"]),
        ("no_data", ["HTTP 200", "no 'data'"]),
    ],
)
def test_transient_faults_are_retryable(embedders, fault, words):
    with OpenAIStub(faults={fault: 1.0}) as stub:
        error = raises_embedding_error(embedders(stub), ["a", "b"])
        assert error.retryable is True
        message = str(error)
        assert stub.base_url in message
        for word in words:
            assert word in message
        assert stub.counts[fault] == 1
        if fault in ("close", "malformed"):
            assert error.__cause__ is not None  # raised `from` the transport or JSON error


def test_rate_limit_is_retryable_with_retry_after(embedders):
    with OpenAIStub(faults={"429": 1.0}) as stub:
        error = raises_embedding_error(embedders(stub), ["a"])
    assert error.retryable is True
    assert error.retry_after == 1.0
    assert "HTTP 429" in str(error)
    assert "retry after 1 s" in str(error)


def test_hanging_server_times_out_retryably_in_about_the_timeout(embedders):
    with OpenAIStub(faults={"hang": 1.0}, hang_seconds=10) as stub:
        embedder = embedders(stub, openai_timeout=0.5)
        started = time.monotonic()
        error = raises_embedding_error(embedder, ["a"])
        elapsed = time.monotonic() - started
        assert stub.counts["hang"] == 1
    assert error.retryable is True
    assert "timed out after 0.5 s" in str(error)
    assert 0.4 <= elapsed < 2.0


def test_connection_refused_is_retryable():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    embedder = OpenAIEmbedder("m", DIMS, base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY)
    try:
        error = raises_embedding_error(embedder, ["a"])
    finally:
        embedder.close()
    assert error.retryable is True
    assert "connection refused" in str(error)
    assert f"http://127.0.0.1:{port}/v1" in str(error)


def test_rate_is_honoured_and_seeded(embedders):
    def outcomes(seed):
        with OpenAIStub(faults={"500": 0.5}, seed=seed) as stub:
            embedder = embedders(stub)
            for i in range(40):
                try:
                    embedder.embed([f"t{i}"])
                except EmbeddingError as exc:
                    assert exc.retryable
            return [r.outcome for r in stub.request_log], stub.counts

    first, counts = outcomes(seed=3)
    again, _ = outcomes(seed=3)
    assert first == again
    assert counts["500"] + counts["ok"] == 40
    assert 8 <= counts["500"] <= 32


# -- failures retrying cannot fix ------------------------------------------------------------


def test_wrong_dimension_is_not_retryable_and_says_so(embedders):
    with OpenAIStub(dimensions=DIMS, faults={"wrong_dim": 1.0}) as stub:
        error = raises_embedding_error(embedders(stub, model="my-model"), ["a", "b"])
    assert error.retryable is False
    assert f"model my-model returned {DIMS + 1}-dimensional vectors, the column holds {DIMS}" in str(error)


def test_model_with_a_different_native_dimension_is_named(embedders):
    with OpenAIStub(dimensions=1536) as stub:
        error = raises_embedding_error(embedders(stub, model="big", dimensions=384), ["a"])
    assert error.retryable is False
    assert "model big returned 1536-dimensional vectors, the column holds 384" in str(error)


def test_short_response_is_not_retryable_and_says_so(embedders):
    with OpenAIStub(faults={"short": 1.0}) as stub:
        error = raises_embedding_error(embedders(stub), ["a", "b", "c"])
    assert error.retryable is False
    assert "returned 2 vectors for 3 texts" in str(error)


@pytest.mark.parametrize("status", ["404", "422"])
def test_other_client_errors_are_not_retryable(embedders, status):
    with OpenAIStub(faults={status: 1.0}) as stub:
        error = raises_embedding_error(embedders(stub), ["a"])
    assert error.retryable is False
    assert f"HTTP {status}" in str(error)


def test_wrong_key_gives_401_without_printing_the_key(embedders):
    # The stub echoes the key it was sent in its 401 body, as a careless provider might.
    with OpenAIStub(require_key="sk-the-right-one") as stub:
        error = raises_embedding_error(embedders(stub), ["a"])
        assert stub.counts["401"] == 1  # one request: no retry within the call
    assert error.retryable is True  # not the rows' fault: the worker parks them and probes (no attempt spent)
    assert "HTTP 401" in str(error)
    assert "check the API key" in str(error)


def test_missing_key_gives_401_saying_none_is_set(embedders):
    with OpenAIStub(require_key="sk-the-right-one") as stub:
        error = raises_embedding_error(embedders(stub, openai_api_key=None), ["a"])
    assert error.retryable is True
    assert "no API key is set" in str(error)


def test_fail_texts_give_a_permanent_400_with_the_providers_words(embedders):
    with OpenAIStub(fail_texts={"POISON"}) as stub:
        embedder = embedders(stub, openai_batch_size=2)
        error = raises_embedding_error(embedder, ["fine", "also fine", "fine too", "a POISON row"])
        assert stub.requests == [2, 2]  # the first request went through
    assert error.retryable is False
    assert "HTTP 400" in str(error)
    assert "Invalid 'input[1]': 'a POISON row' was rejected" in str(error)


def test_provider_excerpt_is_truncated(embedders):
    long_text = "x" * 5000 + " POISON"
    with OpenAIStub(fail_texts={"POISON"}) as stub:
        error = raises_embedding_error(embedders(stub), [long_text])
    message = str(error)
    assert "Invalid 'input[0]'" in message
    assert message.endswith("…")
    assert len(message) < 400


# -- secrets ---------------------------------------------------------------------------------


def test_repr_names_the_endpoint_but_not_the_key(embedders):
    with OpenAIStub() as stub:
        embedder = embedders(stub)
        text = repr(embedder)
    assert KEY not in text
    assert "api_key=set" in text
    assert stub.base_url in text
    assert "stub-model" in text


def test_credentials_in_the_base_url_are_never_printed():
    url = "http://someone:url-password-9731@127.0.0.1:{port}/v1"
    with OpenAIStub(faults={"500": 1.0}) as stub:
        embedder = OpenAIEmbedder("m", DIMS, base_url=url.format(port=stub.port), api_key=KEY)
        try:
            error = raises_embedding_error(embedder, ["a"])
        finally:
            embedder.close()
    assert "url-password-9731" not in leaked_text(error)
    assert "url-password-9731" not in repr(embedder)
    assert "someone" not in str(error)
    assert stub.base_url in str(error)


def test_no_log_line_contains_the_key(embedders, caplog):
    caplog.set_level(logging.DEBUG)
    with OpenAIStub(faults={"500": 0.5}, seed=1, require_key=None) as stub:
        embedder = embedders(stub)
        for i in range(6):
            try:
                embedder.embed([f"text {i}"])
            except EmbeddingError:
                pass
    with OpenAIStub(require_key="other") as stub:
        with pytest.raises(EmbeddingError):
            embedders(stub).embed(["x"])
    assert caplog.records, "the embedder should log its requests at DEBUG"
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in repr(vars(record))


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"openai_batch_size": 0},
        {"openai_timeout": 0.0},
        {"openai_base_url": "localhost:11434/v1"},
        {"openai_base_url": ""},
    ],
)
def test_unusable_settings_are_config_errors(changes):
    with pytest.raises(ConfigError):
        OpenAIEmbedder.from_settings("m", DIMS, Settings(openai_api_key=KEY, **changes))


# -- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "size", "ranges"),
    [
        (0, 3, []),
        (1, 64, [(0, 1)]),
        (3, 3, [(0, 3)]),
        (7, 3, [(0, 3), (3, 6), (6, 7)]),
        (5, 1, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),
    ],
)
def test_batch_ranges(count, size, ranges):
    assert batch_ranges(count, size) == ranges


def test_batch_ranges_rejects_empty_batches():
    with pytest.raises(ValueError):
        batch_ranges(3, 0)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1", 1.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        (formatdate(1_000_030, usegmt=True), 30.0),
        (formatdate(999_000, usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, now=1_000_000) == seconds


@pytest.mark.parametrize(
    ("body", "excerpt"),
    [
        ('{"error": {"message": "Bad  input\\n here", "type": "x"}}', "Bad input here"),  # OpenAI
        ('{"error": "Input validation error", "error_type": "Validation"}', "Input validation error"),
        ('{"object": "error", "message": "too long", "code": 400}', "too long"),  # older vLLM
        ('{"detail": [{"loc": ["body"], "msg": "field required"}]}', '[{"loc": ["body"], "msg": "field required"}]'),
        ("<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        ("", ""),
    ],
)
def test_error_excerpt(body, excerpt):
    assert error_excerpt(body) == excerpt


def test_error_excerpt_truncates():
    excerpt = error_excerpt(json.dumps({"error": {"message": "word " * 500}}), limit=50)
    assert len(excerpt) == 50
    assert excerpt.endswith("…")


def test_public_endpoint_drops_credentials_query_and_fragment():
    assert public_endpoint("https://u:p@api.example.com:8443/v1/?key=abc#frag") == "https://api.example.com:8443/v1"
    assert public_endpoint("http://[::1]:11434/v1") == "http://[::1]:11434/v1"


# -- the stub itself -------------------------------------------------------------------------


def test_stub_stops_promptly_with_a_request_hanging():
    stub = OpenAIStub(faults={"hang": 1.0}).start()  # hangs 60 s unless stopped
    embedder = OpenAIEmbedder("m", DIMS, base_url=stub.base_url, timeout=30)
    errors: list[EmbeddingError] = []
    worker = threading.Thread(target=lambda: errors.append(raises_embedding_error(embedder, ["a"])))
    worker.start()
    deadline = time.monotonic() + 5
    while stub.counts["hang"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    stub.stop()
    assert time.monotonic() - started < 1.0
    worker.join(timeout=5)
    embedder.close()
    assert errors and errors[0].retryable


def test_stub_counts_are_consistent_under_concurrency():
    with OpenAIStub(faults={"500": 0.3}, seed=5) as stub:

        def client():
            embedder = OpenAIEmbedder("m", DIMS, base_url=stub.base_url)
            for i in range(20):
                try:
                    embedder.embed(["a", "b"])
                except EmbeddingError:
                    pass
            embedder.close()

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counts = stub.counts
    assert counts["ok"] + counts["500"] == 160
    assert stub.requests == [2] * 160


def test_stub_rejects_unknown_faults_and_rates_over_one():
    with pytest.raises(ValueError):
        OpenAIStub(faults={"explode": 0.1})
    with pytest.raises(ValueError):
        OpenAIStub(faults={"500": 0.7, "429": 0.7})


def test_stub_runs_as_a_module():
    proc = subprocess.Popen(
        [sys.executable, "-m", "support.openai_stub", "--port", "0", "--dimensions", "4",
         "--latency-ms", "10", "--fault", "500=1.0"],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        embedder = OpenAIEmbedder("m", 4, base_url=base_url)
        with pytest.raises(EmbeddingError, match="HTTP 500"):
            embedder.embed(["a"])
        embedder.close()
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert json.loads(stderr.strip().splitlines()[-1]) == {"500": 1}


# -- concurrency -----------------------------------------------------------------------------


def test_requests_go_out_concurrently_up_to_the_limit_and_vectors_keep_input_order(embedders):
    texts = [f"text number {i}" for i in range(400)]
    with OpenAIStub(latency=0.05, shuffle=True, seed=2) as stub:
        embedder = embedders(stub, openai_batch_size=8, openai_max_concurrency=8)
        started = time.monotonic()
        vectors = embedder.embed(texts)
        elapsed = time.monotonic() - started
        assert stub.max_concurrent == 8  # reached, never exceeded
        assert sum(stub.requests) == 400  # each text sent once
    for got, want in zip(vectors, expected(texts), strict=True):
        np.testing.assert_array_equal(got, want)
    assert elapsed < 0.5 * (400 / 8) * 0.05  # one request at a time would take 2.5 s


def test_max_batch_size_grows_to_fill_every_request_slot(embedders):
    with OpenAIStub(latency=0.02) as stub:
        embedder = embedders(stub, openai_batch_size=16, openai_max_concurrency=4)
        first = embedder.max_batch_size
        for _ in range(6):
            embedder.embed([f"t{i}" for i in range(embedder.max_batch_size)])
    assert first < 4 * 16
    assert embedder.max_batch_size == CALL_ROUNDS * 4 * 16  # every slot busy for several requests
    assert embedder.pacing()["concurrency"] == 4 and embedder.pacing()["request_texts"] == 16


def test_over_capacity_429s_halve_the_concurrency_and_it_climbs_back(embedders):
    texts = [f"row {i}" for i in range(600)]
    with OpenAIStub(latency=0.05, capacity=3, overload_retry_after=0.2) as stub:
        embedder = embedders(stub, openai_batch_size=4, openai_max_concurrency=12)
        vectors = embedder.embed(texts)
        log = stub.request_log
    for got, want in zip(vectors, expected(texts), strict=True):
        np.testing.assert_array_equal(got, want)
    refused = [i for i, r in enumerate(log) if r.outcome == "429"]
    assert refused, "the embedder should have found the capacity by running into it"
    assert len(refused) <= 6  # it slowed down instead of hammering the endpoint
    after = log[refused[-1] + 1:]
    assert sum(r.outcome == "ok" for r in after) > 50
    assert max(r.concurrent for r in after) == 3  # and came back to the endpoint's capacity
    assert embedder.pacing()["known_good_concurrency"] == 3
    assert sum(r.inputs for r in log if r.outcome == "ok") == 600  # nothing computed twice


def test_retry_after_is_honoured_before_a_refused_request_goes_again(embedders):
    with OpenAIStub(latency=0.1, capacity=1, overload_retry_after=0.6) as stub:
        embedder = embedders(stub, openai_batch_size=8)
        vectors = embedder.embed([f"t{i}" for i in range(16)])  # two requests at once: one is refused
        log = stub.request_log
    assert len(vectors) == 16
    assert [r.outcome for r in log].count("429") == 1
    refused = next(r for r in log if r.outcome == "429")
    again = [r for r in log if r.outcome == "ok" and r.arrived > refused.arrived]
    assert again and again[0].arrived - refused.arrived >= 0.6


def test_when_every_request_is_refused_the_error_goes_to_the_worker_at_once(embedders):
    # nothing succeeds: one request per chunk, then the worker's own backoff decides
    with OpenAIStub(faults={"429": 1.0}) as stub:
        started = time.monotonic()
        error = raises_embedding_error(embedders(stub, openai_batch_size=4), [f"t{i}" for i in range(8)])
        assert time.monotonic() - started < 0.5
        assert stub.counts["429"] == 2
    assert error.retryable and error.retry_after == 1.0


def test_one_transient_failure_among_many_requests_is_retried_inside_the_call(embedders):
    texts = [f"t{i}" for i in range(200)]
    with OpenAIStub(latency=0.01, faults={"500": 0.05}, seed=11) as stub:
        vectors = embedders(stub, openai_batch_size=8).embed(texts)
        assert stub.counts["500"] >= 1
    for got, want in zip(vectors, expected(texts), strict=True):
        np.testing.assert_array_equal(got, want)


def test_requests_per_minute_are_respected(embedders):
    with OpenAIStub() as stub:
        embedder = embedders(stub, openai_batch_size=1, openai_rpm=600)  # 10 a second
        embedder.embed([f"t{i}" for i in range(15)])
        arrivals = [r.arrived for r in stub.request_log]
    assert len(arrivals) == 15
    assert arrivals[-1] - arrivals[0] >= 13 * 0.1 * 0.95
    for first in arrivals:
        assert sum(first <= t < first + 1.0 for t in arrivals) <= 11


def test_tokens_per_minute_are_respected(embedders):
    texts = [" ".join(["word"] * 60)] * 20  # ~62 tokens each by the estimate
    with OpenAIStub() as stub:
        embedder = embedders(stub, openai_batch_size=2, openai_tpm=60_000)  # 1,000 a second
        cost = sum(embedder.estimate_tokens(t) for t in texts)
        started = time.monotonic()
        embedder.embed(texts)
        elapsed = time.monotonic() - started
    assert cost > 1000
    assert elapsed >= (cost - 1000) / 1000 * 0.9


# -- adapting to the endpoint ----------------------------------------------------------------


def test_a_timed_out_request_is_sent_again_in_halves_not_at_the_same_size(embedders):
    texts = [f"t{i}" for i in range(8)]
    with OpenAIStub(per_text_latency=0.2) as stub:
        embedder = embedders(stub, openai_timeout=0.5, openai_batch_size=8)
        vectors = embedder.embed(texts)
        sizes = stub.requests
        stub.reset()
        embedder.embed(texts)  # the pace is known now: 8 texts get a timeout that fits them
        again = stub.requests
    assert sizes[0] == 8  # 1.6 s: timed out after 0.5 s and abandoned
    assert max(sizes[1:]) <= 4  # never sent at that size again
    assert sum(sizes[1:]) == 8
    for got, want in zip(vectors, expected(texts), strict=True):
        np.testing.assert_array_equal(got, want)
    assert sum(again) == 8  # nothing timed out and went twice


def test_a_text_that_times_out_alone_twice_is_an_error(embedders):
    with OpenAIStub(hang_texts={"HANG"}, hang_seconds=5) as stub:
        embedder = embedders(stub, openai_timeout=0.3, openai_batch_size=4)
        error = raises_embedding_error(embedder, ["a", "b", "c", "HANG"])
        hung = sorted(r.inputs for r in stub.request_log if r.outcome == "hang")
    assert hung == [1, 1, 2, 4]  # halved each time, and only one repeat at one text
    assert error.retryable
    assert "timed out" in str(error)


def test_a_slow_cpu_server_works_at_default_settings(embedders):
    # A server computing one request at a time at 0.1 s per text, with the default timeout scaled
    # by the same 1/10 (3 s): a default-sized request (64 texts, 6.4 s) would time out every time.
    # Here every request is answered within its timeout and no text is computed twice.
    texts = [f"passage {i}" for i in range(40)]
    with OpenAIStub(workers=1, per_text_latency=0.1) as stub:
        embedder = embedders(stub, openai_timeout=3.0)
        vectors: list = []
        while len(vectors) < len(texts):  # as the worker calls it
            vectors += embedder.embed(texts[len(vectors):len(vectors) + embedder.max_batch_size])
        log = stub.request_log
    for got, want in zip(vectors, expected(texts), strict=True):
        np.testing.assert_array_equal(got, want)
    assert {r.outcome for r in log} == {"ok"}
    assert sum(r.inputs for r in log) == 40


def test_a_text_longer_than_the_model_accepts_is_never_sent(embedders):
    korean = "가나다라마바사" * 1000  # 7,000 Hangul syllables: over 8,191 tokens for cl100k_base
    with OpenAIStub(dimensions=32) as stub:
        embedder = embedders(stub, model="text-embedding-3-small")
        assert embedder.max_input_tokens == 8191
        error = raises_embedding_error(embedder, ["short", korean])
        capped = embedders(stub, openai_max_input_tokens=100)
        error_capped = raises_embedding_error(capped, ["word " * 200])
        assert stub.requests == []
    assert error.retryable is False
    assert "text 2 of 2" in str(error) and "8,191" in str(error)
    assert error_capped.retryable is False


# -- token estimates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "window", "known"),
    [
        ("text-embedding-3-small", 8191, True),
        ("text-embedding-ada-002", 8191, True),
        ("intfloat/multilingual-e5-small", 512, True),
        ("bge-m3", 8192, True),
        ("nomic-embed-text:latest", 8192, True),
        ("some-private-model", 512, False),
    ],
)
def test_input_limits_by_model_family(model, window, known):
    limit = input_limit(model)
    assert (limit.max_tokens, limit.known) == (window, known)


def test_estimates_count_korean_by_the_character_not_by_four():
    sentence = "데이터베이스에 벡터 인덱스를 만들면 검색이 빨라집니다."
    syllables = sum("가" <= c <= "힣" for c in sentence)
    assert estimate_tokens(sentence, wide_char_tokens=1.0) >= syllables
    assert estimate_tokens(sentence, wide_char_tokens=1.5) >= 1.5 * syllables
    english = "the quick brown fox jumps over the lazy dog"
    assert 9 <= estimate_tokens(english) <= 20  # nine words, high but not absurd
    assert estimate_tokens("🙂" * 10) >= 40


# -- pacing, pure ----------------------------------------------------------------------------


def test_limiter_doubles_halves_once_per_burst_and_climbs_back_to_the_known_level():
    limiter = ConcurrencyLimiter(32, initial=2)
    now = 0.0
    while limiter.limit < 16:  # slow start: every answer at the full limit adds one
        level = limiter.limit
        for _ in range(level):
            limiter.on_success(level, 0.1, now)
        now += 0.1
    assert limiter.limit == 16
    for level in range(11, 17):  # one burst of refusals above the capacity of 10
        limiter.on_overload(level, now, round_trip=0.1)
    assert limiter.limit == 8 and limiter.ceiling == 10
    for _ in range(10):
        limiter.on_success(limiter.limit, 0.1, now + 0.2)
    assert limiter.limit == 10  # straight back to what worked, and no further
    assert not limiter.probing(now + 1)
    assert limiter.probing(now + PROBE_BASE_S + 1)  # a probe above it, later
    limiter.on_probe_refused(now + PROBE_BASE_S + 1)
    assert limiter.limit == 10 and not limiter.probing(now + 2 * PROBE_BASE_S)  # next one twice as late
    assert limiter.probing(now + 3 * PROBE_BASE_S + 2)
    limiter.on_overload(10, now + 20 * PROBE_BASE_S, round_trip=0.1)  # a regular request refused
    assert limiter.limit == 5 and limiter.ceiling == 9


def test_limiter_finds_a_shrunk_capacity_and_grows_back_once_it_returns():
    limiter = ConcurrencyLimiter(16, initial=8)
    limiter.on_overload(9, 0.0, round_trip=0.2)  # capacity 8 found
    for level in range(4, 9):
        limiter.on_success(level, 0.2, 0.5)
    assert limiter.limit == 8
    limiter.on_overload(3, 1.0, round_trip=0.2)  # the provider now serves two at once
    assert limiter.limit == 2 and limiter.ceiling == 2  # halved, and no higher than what it serves
    now = 1.0 + PROBE_BASE_S
    for _ in range(60):  # capacity is back: every answered probe counts, and each level is confirmed
        if limiter.probing(now):
            limiter.on_success(limiter.limit + 1, 0.2, now, probe=True)
        limiter.on_success(limiter.limit, 0.2, now)
        now += 0.05
    assert limiter.ceiling == 16 and limiter.limit == 16  # back up, to the configured maximum


def test_limiter_holds_when_the_limit_is_not_in_use_or_answers_are_slow():
    limiter = ConcurrencyLimiter(16, initial=8)
    limiter.on_success(3, 0.1, 0.0)  # only three in flight: says nothing about eight
    limiter.on_success(8, 30.0, 0.0)  # at the limit but slow
    assert limiter.limit == 8


def test_sizer_starts_small_grows_and_fits_requests_to_the_target_time():
    fast = RequestSizer(64, timeout_floor=30)
    assert fast.size < 64
    for _ in range(5):
        fast.on_success(fast.size, 0.2)
    assert fast.size == 64 and fast.timeout(64) == 30
    slow = RequestSizer(64, timeout_floor=30)
    slow.on_success(slow.size, 8.0)  # one second per text
    assert slow.size == 5
    assert slow.timeout(5) == 30 and slow.timeout(20) == 80  # longer than the floor when expected to be
    slow.on_timeout(5, 30)
    assert slow.size == 2


def test_token_bucket_paces_and_lets_a_large_take_go_into_debt():
    bucket = TokenBucket(rate=10, burst=10)
    assert bucket.wait(10, 0.0) == 0
    bucket.take(25, 0.0)  # more than the burst: goes, leaves a debt of 15
    assert bucket.wait(1, 0.0) == pytest.approx(1.6)
    assert bucket.wait(1, 1.6) == pytest.approx(0, abs=1e-6)


# -- secrets in every form -------------------------------------------------------------------


def assert_no_trace(text: str, key: str = KEY) -> None:
    """No run of 6 characters of `key` in `text`, read as it is, URL-decoded, unescaped, or with
    any base64 or hex token in it decoded (checked independently of the scrubber)."""
    runs = {key[i:i + 6].lower() for i in range(len(key) - 5)}
    readings = [text, unquote(text), text.replace("\\n", "\n").replace("\\\\", "\\")]
    for token in re.findall(r"[A-Za-z0-9+/=_-]{8,}", text):
        for shift in range(4):
            part = token[shift:].replace("-", "+").replace("_", "/").rstrip("=")
            try:
                readings.append(base64.b64decode(part[: len(part) // 4 * 4]).decode("latin-1"))
            except (ValueError, binascii.Error):
                pass
        if re.fullmatch(r"[0-9a-fA-F]+", token) and len(token) % 2 == 0:
            readings.append(bytes.fromhex(token).decode("latin-1"))
    for reading in readings:
        low = reading.lower()
        leaked = [run for run in runs if run in low]
        assert not leaked, f"key fragments {leaked} in {text!r}"


def assert_logs_clean(caplog) -> None:
    for record in caplog.records:
        assert_no_trace(record.getMessage())
        assert_no_trace(repr(vars(record)))


@pytest.mark.parametrize("form", sorted(ECHO_FORMS))
@pytest.mark.parametrize("fault", ["500", "400"])
def test_a_key_echoed_by_the_provider_in_any_form_never_leaks(embedders, caplog, form, fault):
    caplog.set_level(logging.DEBUG)
    options = {"fail_texts": {"POISON"}} if fault == "400" else {"faults": {"500": 1.0}}
    with OpenAIStub(echo_key=form, **options) as stub:
        error = raises_embedding_error(embedders(stub), ["a POISON row"])
    assert f"HTTP {fault}" in str(error) and "(credential: " in str(error)
    assert_no_trace(leaked_text(error))
    assert_logs_clean(caplog)


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "AUTOEMBED_OPENAI_API_KEY"])
def test_a_key_read_with_a_trailing_newline_is_stripped_and_works(name):
    with OpenAIStub(require_key=KEY) as stub:
        settings = Settings.from_env({name: f"  {KEY}\r\n", "AUTOEMBED_OPENAI_BASE_URL": stub.base_url})
        embedder = OpenAIEmbedder.from_settings("m", DIMS, settings)
        try:
            vectors = embedder.embed(["hello"])
        finally:
            embedder.close()
    assert settings.openai_api_key == KEY
    np.testing.assert_array_equal(vectors[0], expected(["hello"])[0])


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "AUTOEMBED_OPENAI_API_KEY"])
@pytest.mark.parametrize("inside", ["\n", " ", "\t", "\x00", "é"])
def test_a_key_with_whitespace_or_control_characters_inside_is_a_config_error_naming_the_variable(name, inside):
    broken = KEY[:12] + inside + KEY[12:] + "\n"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: broken})
    assert name in str(info.value)
    assert_no_trace(leaked_text(info.value))
    with pytest.raises(ConfigError) as direct:  # given to the embedder directly, not from the environment
        OpenAIEmbedder("m", DIMS, base_url="http://127.0.0.1:9/v1", api_key=broken)
    assert_no_trace(leaked_text(direct.value))


def test_the_text_of_requests_invalid_header_error_is_scrubbed():
    # What `requests` raises for a key with a newline: the header value's repr, key included.
    with pytest.raises(requests.exceptions.InvalidHeader) as info:
        requests.Request("POST", "http://127.0.0.1:9/v1", headers={"Authorization": f"Bearer {KEY}\n"}).prepare()
    assert KEY in str(info.value)
    assert_no_trace(Scrubber([KEY + "\n"]).scrub(str(info.value)))
    assert_no_trace(Scrubber([KEY]).scrub(str(info.value)))


def test_credentials_in_the_url_query_never_leak(caplog):
    caplog.set_level(logging.DEBUG)
    secret = "query-secret-7731-abcdef"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with OpenAIStub() as stub:
        for base_url, texts in ((f"{stub.base_url}?api-key={secret}", ["works"]),
                                (f"http://127.0.0.1:{closed_port}/v1?api-key={secret}", ["refused"])):
            embedder = OpenAIEmbedder("m", DIMS, base_url=base_url, api_key=KEY)
            try:
                try:
                    embedder.embed(texts)
                except EmbeddingError as exc:
                    assert "connection refused" in str(exc)
                    assert_no_trace(leaked_text(exc), secret)
                assert_no_trace(repr(embedder), secret)
            finally:
                embedder.close()
        assert stub.counts["ok"] == 1
    assert any("api-key" in record.getMessage() for record in caplog.records)  # urllib3 logged the URL...
    for record in caplog.records:  # ...without the value
        assert_no_trace(record.getMessage(), secret)
        assert_no_trace(record.getMessage())


def test_a_failure_record_holds_no_trace_of_the_key(conn, dsn, settings, caplog):
    caplog.set_level(logging.DEBUG)
    create_docs(conn)
    watch(conn, embedder="openai", model="stub-model", max_attempts=1)
    conn.execute("insert into docs (body) values ('a POISON row')")
    with OpenAIStub(dimensions=SUPPORT_DIMS, fail_texts={"POISON"}, echo_key="partial") as stub:
        drain(dsn, settings.replace(openai_base_url=stub.base_url, openai_api_key=KEY))
    message = conn.execute("select error_message from autoembed.failures").fetchone()[0]
    assert "HTTP 400" in message and "(credential: ***" in message
    assert_no_trace(message)
    assert_logs_clean(caplog)


@pytest.mark.parametrize(
    ("secret", "text", "scrubbed"),
    [
        ("ollama", "key ollama rejected by http://ollama-host", "key *** rejected by http://ollama-host"),
        ("x", "text x", "text ***"),  # a one-letter key does not garble every word with an x
        (KEY + "\n", f"'Bearer {KEY}\\n'", "'Bearer ***'"),  # the repr of a key read with its newline
        (KEY, f"key={KEY.upper()[:20]}", "key=***"),  # a piece of it, upper-cased
    ],
)
def test_scrubber_masks_secrets_without_garbling_the_rest(secret, text, scrubbed):
    assert Scrubber([secret]).scrub(text) == scrubbed


def test_a_call_failed_by_one_rejected_text_keeps_the_answers_of_its_other_requests(embedders):
    """The worker sends a failed call's texts again (in halves, to pin the bad one): those its other
    requests were answered for are not sent to the endpoint a second time."""
    texts = [f"row {i}" for i in range(40)]
    texts[23] = "row 23 POISON"
    with OpenAIStub(fail_texts=["POISON"]) as stub:
        embedder = embedders(stub, openai_batch_size=5, openai_max_concurrency=4)
        embedder.embed([f"warm {i}" for i in range(64)])  # past the first, smallest calls
        stub.reset()
        with pytest.raises(EmbeddingError) as failed:
            embedder.embed(texts)
        assert not failed.value.retryable and "POISON" in str(failed.value)
        assert sorted(r.outcome for r in stub.request_log) == ["400"] + ["ok"] * 7  # the call went on
        stub.reset()
        good = texts[:20] + texts[25:]
        vectors = embedder.embed(good)
        assert stub.requests == []  # every answer was kept
        for got, want in zip(vectors, expected(good), strict=True):
            np.testing.assert_array_equal(got, want)
        again = embedder.embed(good[:3])
        assert stub.requests == [3]  # kept answers serve one call only
        for got, want in zip(again, expected(good[:3]), strict=True):
            np.testing.assert_array_equal(got, want)
