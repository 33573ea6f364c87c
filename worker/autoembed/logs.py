"""Log set-up for the `autoembed` command (libraries never configure logging): one handler on
stderr, autoembed's loggers at the chosen level, everyone else's at WARNING, and a formatter that
keeps every `extra={...}` field a log call passes.

- `text` (the default): `<time> <LEVEL> <logger>: <message> key=value ...`, one line per record;
- `json` (AUTOEMBED_LOG_FORMAT=json, for log pipelines): one JSON object per line with `time`,
  `level`, `logger`, `message`, the extra fields, and `exception` when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import TextIO

FORMATS = ("text", "json")

#: attributes every LogRecord has: anything else on a record came from `extra`
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def extra_fields(record: logging.LogRecord) -> dict:
    """The fields a log call passed with `extra={...}`, in the order it gave them."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


def _text_value(value) -> str:
    """A value as `key=value` shows it: bare when it has no space or quote, else JSON-quoted."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if text and not any(c.isspace() or c in "\"=" for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger>: <message> key=value ...` (the extra fields, logfmt-style)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record's line, its extra fields appended, then any traceback."""
        exc_text = None
        if record.exc_info:
            exc_text = self.formatException(record.exc_info)
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        fields = " ".join(f"{key}={_text_value(value)}" for key, value in extra_fields(record).items())
        line = f"{line} {fields}" if fields else line
        return f"{line}\n{exc_text}" if exc_text else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the extra fields
    (a field never overrides those four) and, with a traceback, `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _Handler(logging.StreamHandler):
    """The handler configure() installs (so that a second call replaces it)."""


def configure(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Log autoembed's records at `level` and above, and other libraries' at WARNING and above, to
    `stream` (stderr) in format `fmt` (`text` or `json`). Calling it again replaces the set-up."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("autoembed").setLevel(level.upper())
