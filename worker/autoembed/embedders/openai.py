"""Embedder for any OpenAI-compatible `POST {base_url}/embeddings` endpoint.

OpenAI itself, Ollama (`http://localhost:11434/v1`), vLLM, Hugging Face TEI, LiteLLM and the
like all speak this protocol. One `requests.Session` keeps connections alive between calls.

Every failure is raised as `EmbeddingError` from its cause, with `retryable` set the way the
worker needs it: transport trouble, timeouts, 408/429/5xx and garbled bodies may succeed later;
other 4xx answers and answers of the wrong shape (wrong dimension, wrong count) will not. The API
key never appears in a message, a repr or a log line: messages name the endpoint without its
credentials, and every message is scrubbed of the key before it is raised.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import logging
import re
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import requests

from autoembed.embedders.base import Embedder
from autoembed.errors import ConfigError, EmbeddingError
from autoembed.settings import Settings

logger = logging.getLogger(__name__)

#: characters of a provider's error message kept in our own message
EXCERPT_CHARS = 200
#: longest we wait to establish a connection, whatever the read timeout is
MAX_CONNECT_TIMEOUT = 10.0
#: models that accept the `dimensions` request field and shorten their vectors to it
_SHORTENABLE_MODEL = re.compile(r"^text-embedding-3-")


def batch_ranges(count: int, size: int) -> list[tuple[int, int]]:
    """Split `count` items into consecutive `(start, stop)` ranges of at most `size` items."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    return [(start, min(start + size, count)) for start in range(0, count, size)]


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


class OpenAIEmbedder(Embedder):
    """Embeds through an OpenAI-compatible HTTP endpoint, `max_batch_size` texts per request."""

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
        request_dimensions: bool | None = None,
    ):
        """`dimensions` is the target column's; every returned vector must have it.

        `request_dimensions` sends `dimensions` in the request body, which asks models that
        support it (OpenAI's text-embedding-3 family) for shortened vectors. By default it is on
        for model names starting with `text-embedding-3-` and off otherwise, since some
        compatible servers reject the field.
        """
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"OpenAI base URL must be an http(s) URL such as https://api.openai.com/v1, "
                f"got {public_endpoint(base_url) or 'an empty value'!r}"
            )
        if dimensions < 1:
            raise ConfigError(f"embedding dimensions must be at least 1, got {dimensions}")
        if batch_size < 1:
            raise ConfigError(f"OpenAI batch size must be at least 1, got {batch_size}")
        if not timeout > 0:
            raise ConfigError(f"OpenAI timeout must be positive, got {timeout}")
        self.model = model
        self._dimensions = dimensions
        self.max_batch_size = batch_size
        self.timeout = float(timeout)
        self.endpoint = public_endpoint(base_url)
        self._url = urlunsplit(
            (parts.scheme, parts.netloc, parts.path.rstrip("/") + "/embeddings", parts.query, "")
        )
        self._request_dimensions = (
            bool(_SHORTENABLE_MODEL.match(model)) if request_dimensions is None else request_dimensions
        )
        # Secrets to scrub from any text we raise or log. The key is kept nowhere else but in
        # the session's headers.
        self._secrets = tuple(s for s in (api_key, parts.password) if s)
        self._has_key = bool(api_key)
        self._session = requests.Session()
        self._session.headers.update({"Content-Type": "application/json", "Accept": "application/json"})
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_settings(cls, model: str, dimensions: int, settings: Settings) -> "OpenAIEmbedder":
        """Build from `openai_base_url`, `openai_api_key`, `openai_timeout`, `openai_batch_size`."""
        return cls(
            model,
            dimensions,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            timeout=settings.openai_timeout,
            batch_size=settings.openai_batch_size,
        )

    @property
    def dimensions(self) -> int:
        """The target column's dimension; responses of any other length are rejected."""
        return self._dimensions

    def __repr__(self) -> str:
        key = "set" if self._has_key else "none"
        return (
            f"OpenAIEmbedder(model={self.model!r}, dimensions={self._dimensions}, "
            f"endpoint={self.endpoint!r}, api_key={key})"
        )

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._session.close()

    def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One float32 vector per text, in input order, `max_batch_size` texts per request."""
        texts = list(texts)
        vectors: list[np.ndarray] = []
        for start, stop in batch_ranges(len(texts), self.max_batch_size):
            vectors.extend(self._embed_batch(texts[start:stop]))
        return vectors

    # -- one request -------------------------------------------------------------------------

    def _embed_batch(self, texts: list[str]) -> list[np.ndarray]:
        body: dict = {"model": self.model, "input": texts}
        if self._request_dimensions:
            body["dimensions"] = self._dimensions
        started = time.monotonic()
        try:
            response = self._session.post(
                self._url,
                json=body,
                timeout=(min(self.timeout, MAX_CONNECT_TIMEOUT), self.timeout),
            )
        except requests.exceptions.Timeout as exc:
            if isinstance(exc, requests.exceptions.ConnectTimeout):
                what = f"timed out after {min(self.timeout, MAX_CONNECT_TIMEOUT):g} s connecting"
            else:
                what = f"timed out after {self.timeout:g} s waiting for a response"
            raise self._error(what, retryable=True) from exc
        except requests.exceptions.ConnectionError as exc:
            raise self._error(
                f"connection failed ({_transport_reason(exc)})", retryable=True
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise self._error(
                f"request failed ({type(exc).__name__}: {exc})", retryable=True
            ) from exc
        elapsed = time.monotonic() - started
        logger.debug(
            "embedding request answered",
            extra={
                "endpoint": self.endpoint,
                "model": self.model,
                "texts": len(texts),
                "status": response.status_code,
                "elapsed_s": round(elapsed, 4),
            },
        )
        if response.status_code != 200:
            self._raise_for_status(response)
        return self._parse(response, len(texts))

    def _raise_for_status(self, response: requests.Response) -> None:
        status = response.status_code
        if status in (401, 403):
            hint = "check the API key" if self._has_key else "no API key is set; set OPENAI_API_KEY"
            what = "rejected the credentials" if status == 401 else "refused access"
            raise self._error(f"HTTP {status}: the endpoint {what}, {hint}", retryable=False)
        # Decode a bounded prefix ourselves: `response.text` may run charset detection on it.
        excerpt = error_excerpt(response.content[:65536].decode("utf-8", "replace"))
        detail = f": {excerpt}" if excerpt else ""
        if status in (408, 429) or status >= 500:
            retry_after = _retry_after(response)
            wait = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
            raise self._error(f"HTTP {status}{wait}{detail}", retryable=True, retry_after=retry_after)
        raise self._error(f"HTTP {status}{detail}", retryable=False)

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

    def _error(self, message: str, *, retryable: bool, retry_after: float | None = None) -> EmbeddingError:
        text = f"OpenAI-compatible endpoint {self.endpoint} (model {self.model}): {message}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        logger.debug(
            "embedding request failed",
            extra={"endpoint": self.endpoint, "model": self.model, "retryable": retryable, "error": text},
        )
        return EmbeddingError(text, retryable=retryable, retry_after=retry_after)


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
