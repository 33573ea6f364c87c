"""Embedder for any OpenAI-compatible `POST {base_url}/embeddings` endpoint.

OpenAI itself, Ollama (`http://localhost:11434/v1`), vLLM, Hugging Face TEI, LiteLLM and the
like all speak this protocol. An `embed` call is cut into request-sized chunks that go out
concurrently (embedders/dispatch.py); how many are in flight, how many texts each carries and how
long each may take adapt to what the endpoint answers (embedders/pacing.py), so a CPU server
answering one text a second and a remote API answering 64 texts in 200 ms both work at the
defaults. `max_batch_size` tells the worker how many texts one call should carry to keep every
allowed request busy, and the worker reads batches that large (up to AUTOEMBED_MAX_BATCH_SIZE).

Every failure is raised as `EmbeddingError` with `retryable` set the way the worker needs it:
transport trouble, timeouts, 408/429/5xx and garbled bodies may succeed later; other 4xx answers,
answers of the wrong shape, a request that cannot be sent (a bad header) and a text longer than
the model accepts will not. The API key never appears in a message, a repr or a log line, in any
form (autoembed/secrets.py): every message is scrubbed before it leaves, and the transport's own
exceptions are chained only as scrubbed copies.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import json
import logging
import re
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import numpy as np
import requests

from autoembed.embedders.base import Embedder
from autoembed.embedders.dispatch import Dispatcher, Kind, Outcome, batch_ranges
from autoembed.embedders.tokens import InputLimit, estimate_tokens, input_limit
from autoembed.errors import ConfigError, EmbeddingError
from autoembed.secrets import Scrubber, clean_secret, scrub_logger
from autoembed.settings import Settings

logger = logging.getLogger(__name__)

#: characters of a provider's error message kept in our own message
EXCERPT_CHARS = 200
#: longest we wait to establish a connection, whatever the read timeout is
MAX_CONNECT_TIMEOUT = 10.0
#: models that accept the `dimensions` request field and shorten their vectors to it
_SHORTENABLE_MODEL = re.compile(r"^text-embedding-3-")
#: `requests` exceptions that mean the request cannot be sent as configured: retrying is useless
_UNSENDABLE = (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL,
               requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
               requests.exceptions.InvalidJSONError)
#: vectors of failed calls kept for their texts' next call (at most)
KEPT_ANSWERS = 4096
#: urllib3 logs each request line, query string included
_TRANSPORT_LOGGER = "urllib3.connectionpool"

__all__ = ["OpenAIEmbedder", "batch_ranges", "error_excerpt", "parse_retry_after", "public_endpoint"]


def _answer_key(text: str) -> bytes:
    """What a kept answer is found by: a digest of its text (a row may be tens of kilobytes)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def public_endpoint(base_url: str) -> str:
    """`base_url` without user, password, query or fragment: safe to print."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date; None if unusable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        now_dt = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
        return max(0.0, (when - now_dt).total_seconds())
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # nan, inf
        return None
    return max(0.0, seconds)


def error_excerpt(body: str, limit: int = EXCERPT_CHARS) -> str:
    """The provider's own error message from a response body, whitespace-collapsed and truncated.

    Understands OpenAI/Ollama (`{"error": {"message": ...}}`), TEI (`{"error": "..."}`),
    older vLLM (`{"message": ...}`) and FastAPI (`{"detail": ...}`) bodies; otherwise the raw text.
    """
    text = body
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            text = str(error["message"])
        elif isinstance(error, str) and error:
            text = error
        elif payload.get("message"):
            text = str(payload["message"])
        elif payload.get("detail"):
            detail = payload["detail"]
            text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


class TransportFailure(Exception):
    """A scrubbed copy of a transport or parsing exception, chained as an EmbeddingError's cause
    in place of the original (whose text and own causes may hold the key or the URL's query)."""


class OpenAIEmbedder(Embedder):
    """Embeds through an OpenAI-compatible HTTP endpoint, many requests in flight."""

    kind = "openai"

    def __init__(
        self,
        model: str,
        dimensions: int,
        *,
        base_url: str = Settings.openai_base_url,
        api_key: str | None = None,
        timeout: float = Settings.openai_timeout,
        batch_size: int = Settings.openai_batch_size,
        max_concurrency: int = Settings.openai_max_concurrency,
        rpm: int | None = None,
        tpm: int | None = None,
        max_input_tokens: int | None = None,
        call_seconds: float = Settings.visibility_timeout / 2,
        request_dimensions: bool | None = None,
    ):
        """`dimensions` is the target column's; every returned vector must have it.

        `batch_size` caps the texts of one request (requests start smaller and grow while the
        endpoint keeps up); `timeout` is the shortest read timeout (longer ones are derived from
        the measured latency); `max_concurrency` caps the requests in flight; `rpm`/`tpm` are the
        provider's requests and tokens per minute, if it publishes them; `max_input_tokens`
        overrides the model's known input window (texts estimated above it are never sent);
        `call_seconds` bounds one `embed` call.

        `request_dimensions` sends `dimensions` in the request body, which asks models that
        support it (OpenAI's text-embedding-3 family) for shortened vectors. By default it is on
        for model names starting with `text-embedding-3-` and off otherwise, since some
        compatible servers reject the field.
        """
        parts = urlsplit(base_url)
        secrets = [api_key, parts.password, *_query_values(parts.query)]
        self._scrubber = Scrubber(secrets)
        api_key = clean_secret(api_key, "the OpenAI API key")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"OpenAI base URL must be an http(s) URL such as https://api.openai.com/v1, "
                f"got {self._scrubber.scrub(public_endpoint(base_url)) or 'an empty value'!r}"
            )
        for name, value, least in (("dimensions", dimensions, 1), ("batch size", batch_size, 1),
                                   ("max concurrency", max_concurrency, 1), ("requests per minute", rpm, 1),
                                   ("tokens per minute", tpm, 1), ("max input tokens", max_input_tokens, 1)):
            if value is not None and value < least:
                raise ConfigError(f"OpenAI {name} must be at least {least}, got {value}")
        if not timeout > 0:
            raise ConfigError(f"OpenAI timeout must be positive, got {timeout}")
        self.model = model
        self._dimensions = dimensions
        self.timeout = float(timeout)
        self.endpoint = public_endpoint(base_url)
        family = input_limit(model)
        self.input_limit = (family if max_input_tokens is None
                            else InputLimit(max_input_tokens, family.wide_char_tokens))
        self._url = urlunsplit(
            (parts.scheme, parts.netloc, parts.path.rstrip("/") + "/embeddings", parts.query, "")
        )
        self._request_dimensions = (
            bool(_SHORTENABLE_MODEL.match(model)) if request_dimensions is None else request_dimensions
        )
        self._has_key = bool(api_key)
        self._answered: dict[bytes, np.ndarray] = {}  # what failed calls got, by text digest (_keep)
        self._dispatcher = Dispatcher(
            max_concurrency=max_concurrency, max_request_texts=batch_size, timeout_floor=self.timeout,
            call_seconds=call_seconds, rpm=rpm, tpm=tpm,
            describe=lambda message: self._error(message, retryable=True),
        )
        # The key is kept nowhere else but in the session's headers.
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=max_concurrency)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"Content-Type": "application/json", "Accept": "application/json"})
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"
        scrub_logger(_TRANSPORT_LOGGER, self._scrubber)

    @classmethod
    def from_settings(cls, model: str, dimensions: int, settings: Settings) -> "OpenAIEmbedder":
        """Build from the `openai_*` settings; one call may take half the visibility timeout."""
        return cls(
            model,
            dimensions,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            timeout=settings.openai_timeout,
            batch_size=settings.openai_batch_size,
            max_concurrency=settings.openai_max_concurrency,
            rpm=settings.openai_rpm,
            tpm=settings.openai_tpm,
            max_input_tokens=settings.openai_max_input_tokens,
            call_seconds=settings.visibility_timeout / 2,
        )

    @property
    def dimensions(self) -> int:
        """The target column's dimension; responses of any other length are rejected."""
        return self._dimensions

    @property
    def max_batch_size(self) -> int:  # type: ignore[override]  # a class attribute in the base
        """Texts per `embed` call that keep every allowed request in flight (the concurrency limit
        times the request size, as adapted so far, times `dispatch.CALL_ROUNDS` once the pace is known),
        capped by what the measured pace gets through well within a call's time budget. The
        worker should read it before each call: it starts small and grows fast."""
        return self._dispatcher.call_size()

    def wanted_batch_rows(self) -> int:
        """A call's worth of rows (`max_batch_size`): a batch of fewer leaves request slots idle."""
        return self._dispatcher.call_size()

    @property
    def max_input_tokens(self) -> int:
        """The most tokens one input may have, for chunking: AUTOEMBED_OPENAI_MAX_INPUT_TOKENS, the
        window of the model's family, or 512 for a model autoembed does not know."""
        return self.input_limit.max_tokens

    def estimate_tokens(self, text: str) -> int:
        """An upper estimate of the tokens `text` costs this model (no tokenizer needed)."""
        return estimate_tokens(text, self.input_limit.wide_char_tokens)

    def pacing(self) -> dict:
        """What the embedder has learnt about the endpoint so far (for status, logs and benchmarks)."""
        limiter, sizer = self._dispatcher.limiter, self._dispatcher.sizer
        return {
            "concurrency": limiter.limit,
            "max_concurrency": limiter.max_limit,
            "known_good_concurrency": limiter.ceiling,
            "request_texts": sizer.size,
            "seconds_per_text": sizer.seconds_per_text,
            "call_texts": self._dispatcher.call_size(),
        }

    def __repr__(self) -> str:
        key = "set" if self._has_key else "none"
        return (
            f"OpenAIEmbedder(model={self.model!r}, dimensions={self._dimensions}, "
            f"endpoint={self.endpoint!r}, api_key={key})"
        )

    def close(self) -> None:
        """Stop the request threads and close the pooled HTTP connections."""
        self._dispatcher.close()
        self._session.close()
        scrub_logger(_TRANSPORT_LOGGER, self._scrubber, remove=True)

    def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One float32 vector per text, in input order. When the model's window is known (its
        family, or AUTOEMBED_OPENAI_MAX_INPUT_TOKENS), a text estimated longer fails the call
        before anything is sent; for other models the server decides (it may truncate)."""
        texts = list(texts)
        if not texts:
            return []
        costs = [self.estimate_tokens(text) for text in texts]
        for position, cost in enumerate(costs):
            if self.input_limit.known and cost > self.max_input_tokens:
                raise self._error(
                    f"text {position + 1} of {len(texts)} is about {cost:,} tokens (estimated), more than "
                    f"the {self.max_input_tokens:,} model {self.model} accepts; split it into chunks, "
                    f"or set AUTOEMBED_OPENAI_MAX_INPUT_TOKENS if the model takes more",
                    retryable=False,
                )
        keys = [_answer_key(text) for text in texts]
        vectors = [self._answered.get(key) for key in keys]
        todo = [i for i, vector in enumerate(vectors) if vector is None]
        if todo:
            sent = [texts[i] for i in todo]
            answers = self._dispatcher.run(len(sent), lambda start, stop, timeout: self._send(sent[start:stop], timeout),
                                           [costs[i] for i in todo], keep=lambda i, vector: self._keep(sent[i], vector))
            for i, vector in zip(todo, answers, strict=True):
                vectors[i] = vector
        for key in keys:
            self._answered.pop(key, None)
        return vectors

    def _keep(self, text: str, vector: np.ndarray) -> None:
        """Keep the vector a failed call got for `text`: the worker sends the call's texts again (in
        halves, or after a backoff), and this one is answered without a request (the oldest
        kept ones make room beyond KEPT_ANSWERS)."""
        self._answered[_answer_key(text)] = vector
        while len(self._answered) > KEPT_ANSWERS:
            self._answered.pop(next(iter(self._answered)))

    # -- one request (runs on a request thread; never raises) ---------------------------------

    def _send(self, texts: list[str], timeout: float) -> Outcome:
        body: dict = {"model": self.model, "input": texts}
        if self._request_dimensions:
            body["dimensions"] = self._dimensions
        started = time.monotonic()
        connect_timeout = min(timeout, MAX_CONNECT_TIMEOUT)
        try:
            response = self._session.post(self._url, json=body, timeout=(connect_timeout, timeout))
        except requests.exceptions.ConnectTimeout as exc:
            return self._failed(Kind.TRANSIENT, f"timed out after {connect_timeout:g} s connecting", exc)
        except requests.exceptions.Timeout as exc:
            return self._failed(Kind.TIMEOUT, f"timed out after {timeout:g} s waiting for a response", exc)
        except requests.exceptions.ConnectionError as exc:
            return self._failed(Kind.TRANSIENT, f"connection failed ({_transport_reason(exc)})", exc)
        except _UNSENDABLE as exc:
            return self._failed(Kind.PERMANENT, f"the request cannot be sent ({type(exc).__name__}: {exc})", exc)
        except requests.exceptions.RequestException as exc:
            return self._failed(Kind.TRANSIENT, f"request failed ({type(exc).__name__}: {exc})", exc)
        except Exception as exc:  # noqa: BLE001 - e.g. http.client refusing a header value: its text holds the value
            return self._failed(Kind.PERMANENT, f"the request cannot be sent ({type(exc).__name__}: {exc})", exc)
        latency = time.monotonic() - started
        logger.debug(
            "embedding request answered",
            extra={
                "endpoint": self.endpoint,
                "model": self.model,
                "texts": len(texts),
                "status": response.status_code,
                "elapsed_s": round(latency, 4),
            },
        )
        try:
            if response.status_code != 200:
                return self._status_outcome(response)
            return Outcome(Kind.OK, vectors=self._parse(response, len(texts)), latency=latency)
        except EmbeddingError as exc:
            return Outcome(Kind.TRANSIENT if exc.retryable else Kind.PERMANENT, error=exc, latency=latency)

    def _failed(self, kind: Kind, message: str, cause: BaseException) -> Outcome:
        return Outcome(kind, error=self._error(message, retryable=kind is not Kind.PERMANENT, cause=cause))

    def _status_outcome(self, response: requests.Response) -> Outcome:
        status = response.status_code
        if status in (401, 403):
            hint = "check the API key" if self._has_key else "no API key is set; set OPENAI_API_KEY"
            what = "rejected the credentials" if status == 401 else "refused access"
            # not the rows' fault: the worker parks them and probes until the key is fixed, instead
            # of spending their attempts (PERMANENT: no retry within this call)
            return Outcome(Kind.PERMANENT, error=self._error(f"HTTP {status}: the endpoint {what}, {hint}",
                                                             retryable=False, needs_a_human=True))
        # Decode a bounded prefix ourselves: `response.text` may run charset detection on it.
        excerpt = error_excerpt(response.content[:65536].decode("utf-8", "replace"))
        detail = f": {excerpt}" if excerpt else ""
        if status in (408, 429) or status >= 500:
            retry_after = _retry_after(response)
            wait = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
            error = self._error(f"HTTP {status}{wait}{detail}", retryable=True, retry_after=retry_after)
            kind = Kind.OVERLOAD if status in (429, 503) else Kind.TRANSIENT
            return Outcome(kind, error=error, retry_after=retry_after)
        return Outcome(Kind.PERMANENT, error=self._error(f"HTTP {status}{detail}", retryable=False))

    def _parse(self, response: requests.Response, expected: int) -> list[np.ndarray]:
        try:
            payload = response.json()
        except ValueError as exc:
            raise self._error(
                f"HTTP {response.status_code} with a body that is not valid JSON "
                f"({len(response.content)} bytes)",
                retryable=True,
            ) from exc
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise self._error(
                f"HTTP {response.status_code} with a malformed body: no 'data' list", retryable=True
            )
        try:
            items = sorted(
                (
                    (int(item.get("index", position)), item["embedding"])
                    for position, item in enumerate(data)
                ),
                key=lambda pair: pair[0],
            )
            vectors = [_to_vector(embedding) for _, embedding in items]
        except (AttributeError, KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise self._error(
                f"HTTP {response.status_code} with a malformed body: bad 'data' item ({exc!s:.80})",
                retryable=True,
            ) from exc
        if len(vectors) != expected:
            raise self._error(
                f"model {self.model} returned {len(vectors)} vectors for {expected} texts",
                retryable=False,
            )
        indices = [index for index, _ in items]
        if indices != list(range(expected)):
            raise self._error(
                f"model {self.model} returned vectors with indices {_describe_indices(indices)} "
                f"for texts 0..{expected - 1}",
                retryable=False,
            )
        for vector in vectors:
            if vector.shape != (self._dimensions,):
                raise self._error(
                    f"model {self.model} returned {vector.shape[0]}-dimensional vectors, "
                    f"the column holds {self._dimensions}; use a vector({vector.shape[0]}) column "
                    f"or a model with {self._dimensions} dimensions",
                    retryable=False,
                )
        return vectors

    def _error(self, message: str, *, retryable: bool, retry_after: float | None = None,
               cause: BaseException | None = None, needs_a_human: bool = False) -> EmbeddingError:
        """An EmbeddingError naming the endpoint, scrubbed of every secret; `cause` is chained as
        a scrubbed `TransportFailure` copy."""
        text = self._scrubber.scrub(f"OpenAI-compatible endpoint {self.endpoint} (model {self.model}): {message}")
        logger.debug(
            "embedding request failed",
            extra={"endpoint": self.endpoint, "model": self.model, "retryable": retryable, "error": text},
        )
        error = EmbeddingError(text, retryable=retryable, retry_after=retry_after, needs_a_human=needs_a_human)
        if cause is not None:
            error.__cause__ = TransportFailure(self._scrubber.scrub(f"{type(cause).__name__}: {cause}"))
            error.__suppress_context__ = True
        return error


def _query_values(query: str) -> list[str]:
    """The values of a URL's query parameters: any of them may be a credential (`?api-key=...`)."""
    return [value for _, value in parse_qsl(query, keep_blank_values=True)]


def _to_vector(embedding) -> np.ndarray:
    """A JSON list of floats, or a base64 string of little-endian float32 values."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4").astype(np.float32)
    vector = np.asarray(embedding, dtype=np.float32)
    if vector.ndim != 1:
        raise ValueError(f"embedding has shape {vector.shape}, expected a flat list")
    return vector


def _retry_after(response: requests.Response) -> float | None:
    # OpenAI also sends the millisecond form, which is more precise when present.
    millis = response.headers.get("retry-after-ms")
    if millis:
        seconds = parse_retry_after(millis)
        if seconds is not None:
            return seconds / 1000.0
    return parse_retry_after(response.headers.get("Retry-After"))


def _transport_reason(exc: BaseException) -> str:
    """A short cause for a connection failure: refused, reset, closed without a response, ..."""
    text = f"{type(exc).__name__} {exc!r}"  # requests nests urllib3's and the socket's errors here
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("ConnectionRefused", "connection refused"),
        ("Connection reset", "connection reset by peer"),
        ("ConnectionReset", "connection reset by peer"),
        ("RemoteDisconnected", "the server closed the connection without a response"),
        ("without response", "the server closed the connection without a response"),
        ("NameResolution", "the host name could not be resolved"),
        ("SSLError", "TLS error"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__


def _describe_indices(indices: list[int]) -> str:
    if not indices:
        return "none"
    if len(indices) <= 8:
        return ", ".join(map(str, indices))
    return f"{indices[0]}..{indices[-1]}"
