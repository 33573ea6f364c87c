"""A simple paragraph split of a document, for measuring models before autoembed chunks.

Blocks are separated by blank lines; consecutive blocks are merged while the passage stays
within `max_chars`; a block longer than that is cut at line ends, and a line longer than
that at the last space before the limit (or at the limit). Passages are exact slices of the
document with their offsets, so they can be scored against answer spans. This is not
autoembed's chunker: it knows no tokens, headings or sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from korean.corpus import Document

_BLANK_LINE = re.compile(r"\n[ \t]*\n\s*")


@dataclass(frozen=True)
class Passage:
    """Characters `start:end` of document `doc`; `text` is that slice."""

    doc: str
    start: int
    end: int
    text: str


def paragraph_passages(document: Document, max_chars: int) -> list[Passage]:
    """The document cut into passages of at most `max_chars` characters, in order, whitespace trimmed."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    text = document.text
    pieces = [piece for block in _blocks(text) for piece in _fit(text, block, max_chars)]
    merged: list[tuple[int, int]] = []
    for start, end in pieces:
        if merged and end - merged[-1][0] <= max_chars:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return [Passage(document.id, start, end, text[start:end]) for start, end in merged]


def _blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) of the non-blank blocks between blank lines, whitespace trimmed."""
    blocks, position = [], 0
    for match in list(_BLANK_LINE.finditer(text)) + [None]:
        end = match.start() if match else len(text)
        blocks.append(_trim(text, position, end))
        position = match.end() if match else len(text)
    return [(start, end) for start, end in blocks if end > start]


def _fit(text: str, block: tuple[int, int], max_chars: int) -> list[tuple[int, int]]:
    """`block` as pieces of at most `max_chars`: whole if it fits, else cut at line ends, then spaces."""
    start, end = block
    if end - start <= max_chars:
        return [block]
    pieces = []
    while end - start > max_chars:
        limit = start + max_chars
        cut = text.rfind("\n", start + 1, limit + 1)
        if cut <= start:
            cut = text.rfind(" ", start + 1, limit + 1)
        if cut <= start:
            cut = limit
        pieces.append(_trim(text, start, cut))
        start = _trim(text, cut, end)[0]
    pieces.append((start, end))
    return [piece for piece in pieces if piece[1] > piece[0]]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
