"""OpenAIEmbedder against the real OpenAI stub over loopback HTTP, plus its pure helpers."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
import traceback
from email.utils import formatdate
from pathlib import Path

import numpy as np
import pytest

from autoembed.embedders import build_embedder
from autoembed.embedders.hashing import HashingEmbedder
from autoembed.embedders.openai import (
    OpenAIEmbedder,
    batch_ranges,
    error_excerpt,
    parse_retry_after,
    public_endpoint,
)
from autoembed.errors import ConfigError, EmbeddingError
from autoembed.settings import Settings
from support.openai_stub import OpenAIStub

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
        assert stub.requests == [3, 3, 1]
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
        assert embedder.max_batch_size == Settings().openai_batch_size
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
        assert stub.counts["401"] == 1
    assert error.retryable is False
    assert "HTTP 401" in str(error)
    assert "check the API key" in str(error)


def test_missing_key_gives_401_saying_none_is_set(embedders):
    with OpenAIStub(require_key="sk-the-right-one") as stub:
        error = raises_embedding_error(embedders(stub, openai_api_key=None), ["a"])
    assert error.retryable is False
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
