"""Runtime SQL, kept in sql/queries.sql as named blocks (`-- name: some_query`), loaded once."""

from __future__ import annotations

import re
from importlib.resources import files

_BLOCK = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _load() -> dict[str, str]:
    text = files("autoembed").joinpath("sql", "queries.sql").read_text(encoding="utf-8")
    parts = _BLOCK.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2])}


QUERIES = _load()
