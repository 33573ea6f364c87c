"""Secrets (API keys, URL passwords, tokens): checked where they are read, scrubbed from every
message that leaves the process.

A key can reach a message in many shapes: as given, with a stray newline escaped by `repr`
(`requests` quotes a bad header value that way), JSON- or URL-encoded, hex- or base64-encoded
(an `Authorization: Basic ...` header, a proxy's log), cut short (`sk-abc...4242`), or echoed
back by a provider in an error body. `Scrubber` recognises all of them: it replaces every run of
at least `MIN_RUN` characters that occurs inside any encoded form of a secret, case-insensitively.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from autoembed.errors import ConfigError

#: what a scrubbed run is replaced with
MASK = "***"
#: shortest run of a secret's characters that is scrubbed on its own
MIN_RUN = 6
#: a secret (or form of one) shorter than this, such as Ollama's conventional key `ollama`, is
#: scrubbed only where it stands as a word of its own, so that it does not garble other words
SHORT_SECRET = 12
_HEADER_SAFE = re.compile(r"[\x21-\x7e]*")


def clean_secret(value: str | None, name: str) -> str | None:
    """`value` without surrounding whitespace (a key read from a file ends in a newline), or None
    when nothing is left. ConfigError naming `name`, never the value, when whitespace, control
    or non-ASCII characters remain inside: such a key cannot be sent in an HTTP header."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if not _HEADER_SAFE.fullmatch(value):
        raise ConfigError(
            f"{name} contains whitespace, control or non-ASCII characters inside the key "
            f"(the value is not shown); set it to the key alone"
        )
    return value


def secret_forms(secret: str) -> set[str]:
    """The shapes in which `secret` can appear in a message."""
    forms = {secret, secret.strip(), repr(secret)[1:-1], json.dumps(secret)[1:-1],
             quote(secret, safe=""), quote_plus(secret), secret.encode("utf-8").hex()}
    for core in _base64_cores(secret.encode("utf-8")):
        forms.update((core, core.replace("+", "-").replace("/", "_")))
    return {form for form in forms if form}


def _base64_cores(data: bytes) -> set[str]:
    """The base64 characters that encode only `data`, for each of the three byte alignments at
    which `data` can sit inside a longer encoded text (e.g. `Bearer <key>` or `user:<key>`)."""
    cores = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode("ascii")
        first = -(-8 * shift // 6)  # first character whose bits all come from `data`
        last = 8 * (shift + len(data)) // 6  # one past the last such character
        cores.add(encoded[first:last])
    return cores


def _ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only, so that every index still points at the same character."""
    return text.translate(_LOWER)


_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


class Scrubber:
    """Replaces every trace of the given secrets in a text with `***`."""

    def __init__(self, secrets: Iterable[str | None]):
        """`secrets` may contain None or empty values, which are ignored."""
        grams: set[str] = set()
        whole: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            for form in secret_forms(secret):
                form = _ascii_lower(form)
                if len(form) < SHORT_SECRET:
                    whole.add(form)
                else:
                    grams.update(form[i : i + MIN_RUN] for i in range(len(form) - MIN_RUN + 1))
        self._grams = frozenset(grams)
        self._whole = tuple(sorted(whole, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._grams or self._whole)

    def scrub(self, text: str) -> str:
        """`text` with every run that belongs to a secret, in any of its forms, masked."""
        if not self or not text:
            return text
        low = _ascii_lower(text)
        hidden = bytearray(len(text))
        for i in range(len(text) - MIN_RUN + 1):
            if low[i : i + MIN_RUN] in self._grams:
                hidden[i : i + MIN_RUN] = b"\1" * MIN_RUN
        for form in self._whole:
            for match in re.finditer(rf"(?<![0-9a-z_-]){re.escape(form)}(?![0-9a-z_-])", low):
                hidden[match.start() : match.end()] = b"\1" * len(form)
        if not any(hidden):
            return text
        out, i = [], 0
        while i < len(text):
            if hidden[i]:
                while i < len(text) and hidden[i]:
                    i += 1
                out.append(MASK)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)


class _LogScrubber(logging.Filter):
    """Scrubs the records of a third-party logger (urllib3 logs request URLs, query string included)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._scrubbers: list[Scrubber] = []

    def add(self, scrubber: Scrubber) -> None:
        with self._lock:
            self._scrubbers.append(scrubber)

    def remove(self, scrubber: Scrubber) -> None:
        with self._lock:
            if scrubber in self._scrubbers:
                self._scrubbers.remove(scrubber)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            scrubbers = list(self._scrubbers)
        if scrubbers:
            message = original = record.getMessage()
            for scrubber in scrubbers:
                message = scrubber.scrub(message)
            if message != original:
                record.msg, record.args = message, None
        return True


_LOG_FILTERS: dict[str, _LogScrubber] = {}
_LOG_FILTERS_LOCK = threading.Lock()


def scrub_logger(name: str, scrubber: Scrubber, *, remove: bool = False) -> None:
    """Scrub the records of logger `name` with `scrubber` (or stop, with `remove=True`)."""
    with _LOG_FILTERS_LOCK:
        log_filter = _LOG_FILTERS.get(name)
        if log_filter is None:
            log_filter = _LOG_FILTERS[name] = _LogScrubber()
            logging.getLogger(name).addFilter(log_filter)
    if remove:
        log_filter.remove(scrubber)
    else:
        log_filter.add(scrubber)
