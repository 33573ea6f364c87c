"""Splitting a document into chunks that each fit a model's window: pure functions, no model,
no database.

`split(text, count, max_tokens, overlap)` returns exact slices of `text` (with their character
offsets) such that `count(chunk.text) <= max_tokens` for every chunk, where `count` is the model's
own token count of a text as it is embedded (prompt and special tokens included). How:

1. Blocks: paragraphs (between blank lines), headings (markdown `#` lines, titles underlined with
   `===`/`---`/`~~~` as in setext and reStructuredText, and a short one-line paragraph that ends
   without sentence punctuation, such as `1.2 시맨틱 공간의 이해`), fenced code blocks (``` or ~~~,
   blank lines inside included) and literal blocks (a paragraph ending in `::` and the indented
   blocks after it, or lines indented by four spaces).
2. Units: a block that fits is one unit; one that does not is cut at line ends, then (prose only)
   at sentence ends, spaces, and finally anywhere. Sentence ends include the Korean ones (`다.`,
   `요.`, `까?`, `니다.`, also before a footnote number, as in `방법론이다.1 이`) and the
   full-width `。！？`. Code is cut at line ends only, so a code block stays whole where it fits.
3. Runs: a run begins at every heading and at content-defined anchors: a unit of `c` tokens is an
   anchor when a hash of its first characters falls below `c / budget`. Where a run begins depends
   only on the unit itself, so an edit moves chunk boundaries inside its own run and no further:
   the chunks of the rest of the document keep their text, and their vectors can be kept.
4. Packing: each run is packed greedily into chunks of at most `max_tokens - overlap` tokens,
   closing a chunk early at a block boundary once it is half full and the next block would not
   fit whole. A run under an eighth of that joins the next one when both fit together.
5. Every chunk is counted again as a whole (token counts of parts do not add up exactly); one
   that is over `max_tokens - overlap` is cut again with a tighter budget.
6. Overlap: a chunk that does not begin at a heading is extended backwards over the last
   sentences (or words) of the chunk before it, at most `overlap` tokens (and not at all where
   the extended chunk would count more than `max_tokens`).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

#: tokens of a text as the model reads it: its prompt and special tokens included
Count = Callable[[str], int]

#: fewest content tokens a chunk must have room for once the prompt and the overlap are paid
MIN_CONTENT_TOKENS = 8
#: characters of a unit whose hash decides whether it is an anchor (an edit further in keeps it)
ANCHOR_CHARS = 48
#: a run smaller than budget / RUN_MIN_SHARE joins the next run when both fit together
RUN_MIN_SHARE = 8
#: a heading line is at most this long
HEADING_MAX_CHARS = 80
#: `truncate` reads at most this many characters per token it may keep
TRUNCATE_CHARS_PER_TOKEN = 16

_LINE = re.compile(r"[^\n]*\n?")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:\s|$)")
_UNDERLINE = re.compile(r"^ {0,3}([=\-~^*+#])\1{2,}\s*$")
_INDENTED = re.compile(r"^(?: {4}|\t)")
#: a line ending like this is prose, not a title
_SENTENCE_PUNCTUATION_END = re.compile(r"[.!?…:;,。！？、]\s*$")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+>|]\s)")
#: where a sentence ends (the match's end): punctuation and closing quotes before whitespace; a
#: Hangul syllable's punctuation before a footnote number; CJK full stops, which take no space
_SENTENCE_END = re.compile(
    r"[.!?…]+[\"'”’)\]」』]*(?=\s|$)"
    r"|(?<=[\uac00-\ud7a3])[.!?]\d{1,3}(?=\s)"
    r"|[。！？]+[\"'”’)\]」』]*"
)
_SPACE = re.compile(r"\s+")

PROSE, HEADING, CODE = "prose", "heading", "code"


@dataclass(frozen=True)
class Chunk:
    """Characters `start:end` of the document, in order; `text` is that slice."""

    position: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class _Block:
    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    cost: int
    block: int  # index of the block it belongs to
    starts_run: bool
    heading: bool


def split(text: str, count: Count, max_tokens: int, overlap: int = 0) -> list[Chunk]:
    """`text` as chunks of at most `max_tokens` tokens by `count`, each overlapping the text before
    it by at most `overlap` tokens (see the module doc). Whitespace-only text has no chunks.

    ValueError when `max_tokens` leaves less than MIN_CONTENT_TOKENS tokens once the prompt and
    special tokens (`count("")`) and the overlap are paid.
    """
    if overlap < 0:
        raise ValueError(f"overlap must not be negative, got {overlap}")
    base = count("")
    budget = max_tokens - overlap - base
    if budget < MIN_CONTENT_TOKENS:
        raise ValueError(
            f"a chunk of at most {max_tokens} tokens leaves {budget} for its text once the prompt and "
            f"special tokens ({base}) and the overlap ({overlap}) are paid; at least {MIN_CONTENT_TOKENS} are needed"
        )

    def cost(start: int, end: int) -> int:
        return count(text[start:end]) - base

    units = _units(text, _blocks(text), budget, cost)
    spans = [piece for start, end in _pack(_runs(units), budget)
             for piece in _fit(text, start, end, max_tokens - overlap, budget, cost, base)]
    if overlap:
        spans = [extended if cost(*extended) + base <= max_tokens else plain
                 for plain, extended in zip(spans, _overlapped(text, spans, units, overlap, cost))]
    return [Chunk(position, start, end, text[start:end]) for position, (start, end) in enumerate(spans)]


def truncate(text: str, count: Count, max_tokens: int) -> str:
    """The longest leading part of `text` (whitespace trimmed) that fits `max_tokens`, cut at the
    best boundary: `text` itself when it fits, else after the last block, line, sentence or word
    that fits (the boundaries of `split`, without its runs)."""
    start, end = _trim(text, 0, len(text))
    if count(text[start:end]) <= max_tokens:
        return text[start:end]
    base = count("")
    budget = max_tokens - base
    if budget < MIN_CONTENT_TOKENS:
        raise ValueError(f"a text of at most {max_tokens} tokens leaves {budget} once its prompt is paid")
    head = text[:start + max_tokens * TRUNCATE_CHARS_PER_TOKEN]  # reads no further than it could keep

    def cost(a: int, b: int) -> int:
        return count(head[a:b]) - base

    units = _units(head, _blocks(head), budget, cost)
    taken = 1
    while taken < len(units) and sum(u.cost for u in units[:taken + 1]) <= budget:
        taken += 1
    first, last = units[0], units[taken - 1]
    piece = _fit(head, first.start, last.end, max_tokens, budget, cost, base)[0]
    return text[piece[0]:piece[1]]


# -- 1. blocks ----------------------------------------------------------------------------------
def _blocks(text: str) -> list[_Block]:
    """Paragraphs, headings and code blocks, in order, whitespace trimmed."""
    lines = [(m.start(), m.end()) for m in _LINE.finditer(text) if m.end() > m.start()]
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        start, end = lines[i]
        line = text[start:end]
        if not line.strip():
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            j = _fence_close(text, lines, i, fence.group(1))
            blocks.append(_block(text, start, lines[j][1], CODE))
            i = j + 1
            continue
        if _ATX_HEADING.match(line):
            blocks.append(_block(text, start, end, HEADING))
            i += 1
            continue
        title = _underlined_title(text, lines, i)
        if title:
            blocks.append(_block(text, start, lines[i + title - 1][1], HEADING))
            i += title
            continue
        j = i
        while j + 1 < len(lines) and _continues_paragraph(text[lines[j + 1][0]:lines[j + 1][1]]):
            j += 1
        blocks.append(_paragraph(text, start, lines[j][1]))
        i = j + 1
    return _literal_blocks(text, blocks)


def _fence_close(text: str, lines: list[tuple[int, int]], opening: int, fence: str) -> int:
    """Index of the line closing the fence opened at line `opening` (the last line if none does)."""
    closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    for j in range(opening + 1, len(lines)):
        if closing.match(text[lines[j][0]:lines[j][1]]):
            return j
    return len(lines) - 1


def _underlined_title(text: str, lines: list[tuple[int, int]], i: int) -> int:
    """Lines taken by a title at line `i`: 2 for `Title` + underline, 3 with an overline, else 0."""
    def line(k: int) -> str:
        return text[lines[k][0]:lines[k][1]] if k < len(lines) else ""

    if _UNDERLINE.match(line(i)) and line(i + 1).strip() and _UNDERLINE.match(line(i + 2)):
        return 3
    if not _UNDERLINE.match(line(i)) and _UNDERLINE.match(line(i + 1)):
        return 2
    return 0


def _continues_paragraph(line: str) -> bool:
    return bool(line.strip()) and not _FENCE.match(line) and not _ATX_HEADING.match(line)


def _paragraph(text: str, start: int, end: int) -> _Block:
    body = text[start:end]
    lines = body.rstrip("\n").split("\n")
    if all(_INDENTED.match(line) or not line.strip() for line in lines):
        return _block(text, start, end, CODE)
    single = lines[0].strip()
    if (len(lines) == 1 and len(single) <= HEADING_MAX_CHARS and not _SENTENCE_PUNCTUATION_END.search(single)
            and not _LIST_MARKER.match(single) and any(ch.isalpha() for ch in single)):
        return _block(text, start, end, HEADING)
    return _block(text, start, end, PROSE)


def _literal_blocks(text: str, blocks: list[_Block]) -> list[_Block]:
    """A paragraph ending in `::` (reStructuredText) takes the indented blocks after it as code."""
    merged: list[_Block] = []
    literal = False  # the last block kept opens a literal block (or is one)
    for block in blocks:
        if literal and _indented_start(text, block.start):
            merged[-1] = _Block(merged[-1].start, block.end, CODE)
            continue
        merged.append(block)
        literal = text[block.start:block.end].endswith("::")
    return merged


def _indented_start(text: str, position: int) -> bool:
    """Whether whitespace comes before `position` on its line (blocks begin at their first non-space)."""
    return position > text.rfind("\n", 0, position) + 1


def _block(text: str, start: int, end: int, kind: str) -> _Block:
    start, end = _trim(text, start, end)
    return _Block(start, end, kind)


# -- 2. units ------------------------------------------------------------------------------------
def _units(text: str, blocks: list[_Block], budget: int, cost: Callable[[int, int], int]) -> list[_Unit]:
    """Each block whole if it fits `budget`, else its pieces at the finest boundary needed."""
    units = []
    for index, block in enumerate(blocks):
        whole = cost(block.start, block.end)
        pieces = [(block.start, block.end, whole)] if whole <= budget else _cut(
            text, block.start, block.end, _levels(block.kind), budget, cost)
        for number, (start, end, piece_cost) in enumerate(pieces):
            heading = block.kind == HEADING and number == 0
            units.append(_Unit(start, end, piece_cost, index, heading or _anchor(text, start, piece_cost, budget),
                               heading))
    return units


def _levels(kind: str) -> tuple[str, ...]:
    return ("line",) if kind == CODE else ("line", "sentence", "word")


def _cut(text: str, start: int, end: int, levels: tuple[str, ...], budget: int,
         cost: Callable[[int, int], int]) -> list[tuple[int, int, int]]:
    """[start, end) cut at the boundaries of `levels[0]` (finer levels for parts still too long, any
    character last), as (start, end, cost) pieces of at most `budget`."""
    if not levels:
        return _cut_anywhere(text, start, end, budget, cost)
    pieces = []
    for part_start, part_end in _parts(text, start, end, levels[0]):
        part_cost = cost(part_start, part_end)
        if part_cost <= budget:
            pieces.append((part_start, part_end, part_cost))
        else:
            pieces.extend(_cut(text, part_start, part_end, levels[1:], budget, cost))
    return pieces


def _parts(text: str, start: int, end: int, level: str) -> list[tuple[int, int]]:
    """[start, end) cut after each line end, sentence end or run of spaces; trimmed, non-empty."""
    if level == "line":
        cuts = [m.end() for m in re.finditer("\n", text[start:end])]
    elif level == "sentence":
        cuts = [m.end() for m in _SENTENCE_END.finditer(text[start:end])]
    else:
        cuts = [m.end() for m in _SPACE.finditer(text[start:end])]
    bounds = [start] + [start + c for c in cuts] + [end]
    parts = [_trim(text, a, b) for a, b in zip(bounds, bounds[1:])]
    return [(a, b) for a, b in parts if b > a]


def _cut_anywhere(text: str, start: int, end: int, budget: int,
                  cost: Callable[[int, int], int]) -> list[tuple[int, int, int]]:
    """[start, end) in pieces of at most `budget`, each the longest prefix that fits."""
    pieces = []
    start, end = _trim(text, start, end)
    while start < end:
        low, high = start + 1, end  # the longest fitting prefix ends in [low, high]
        while low < high:
            middle = (low + high + 1) // 2
            if cost(start, middle) <= budget:
                low = middle
            else:
                high = middle - 1
        piece_start, piece_end = _trim(text, start, low)
        pieces.append((piece_start, piece_end, cost(piece_start, piece_end)))
        start = _trim(text, low, end)[0]
    return pieces


def _anchor(text: str, start: int, unit_cost: int, budget: int) -> bool:
    """Whether a run begins at the unit starting at `start`: a hash of its first characters, as a
    fraction of 1, below its share of the budget (so runs average about one budget)."""
    head = " ".join(text[start:start + ANCHOR_CHARS].split())
    return zlib.crc32(head.encode("utf-8")) / 2**32 < unit_cost / budget


# -- 3. runs and 4. packing ----------------------------------------------------------------------
def _runs(units: list[_Unit]) -> list[list[_Unit]]:
    runs: list[list[_Unit]] = []
    for unit in units:
        if unit.starts_run or not runs:
            runs.append([unit])
        else:
            runs[-1].append(unit)
    return runs


def _pack(runs: list[list[_Unit]], budget: int) -> list[tuple[int, int]]:
    """Chunk spans: small runs joined to the next, then each run packed greedily."""
    joined: list[list[_Unit]] = []
    for run in runs:
        previous = joined[-1] if joined else None
        if (previous is not None and _total(previous) < budget / RUN_MIN_SHARE
                and _total(previous) + _total(run) <= budget):
            previous.extend(run)
        else:
            joined.append(list(run))
    spans = []
    for run in joined:
        chunk: list[_Unit] = []
        for index, unit in enumerate(run):
            if chunk and (_total(chunk) + unit.cost > budget or _close_before_block(chunk, run, index, budget)):
                carried = [chunk.pop()] if len(chunk) > 1 and chunk[-1].heading else []  # a heading goes
                spans.append((chunk[0].start, chunk[-1].end))                            # with its text
                chunk = carried
            chunk.append(unit)
        if chunk:
            spans.append((chunk[0].start, chunk[-1].end))
    return spans


def _close_before_block(chunk: list[_Unit], run: list[_Unit], index: int, budget: int) -> bool:
    """Close a half-full chunk where a new block begins that would not fit in it whole."""
    unit = run[index]
    if unit.block == chunk[-1].block or _total(chunk) * 2 < budget:
        return False
    block_cost = sum(u.cost for u in run[index:] if u.block == unit.block)
    return _total(chunk) + block_cost > budget


def _total(units: list[_Unit]) -> int:
    return sum(unit.cost for unit in units)


# -- 6. overlap ----------------------------------------------------------------------------------
def _overlapped(text: str, spans: list[tuple[int, int]], units: list[_Unit], overlap: int,
                cost: Callable[[int, int], int]) -> list[tuple[int, int]]:
    """Each span not starting at a heading extended back over the end of the span before it."""
    headings = {unit.start for unit in units if unit.heading}
    result = [spans[0]]
    for (previous_start, previous_end), (start, end) in zip(spans, spans[1:]):
        if start not in headings:
            start = _overlap_start(text, previous_start, previous_end, overlap, cost, start)
        result.append((start, end))
    return result


def _overlap_start(text: str, previous_start: int, previous_end: int, overlap: int,
                   cost: Callable[[int, int], int], start: int) -> int:
    """The earliest sentence (else word) start in the previous span, after its first, from which
    its end costs at most `overlap` tokens; `start` unchanged when not even the last word fits."""
    for level in ("sentence", "word"):
        best = None
        for part_start, _ in reversed(_parts(text, previous_start, previous_end, level)[1:]):
            if cost(part_start, previous_end) > overlap:
                break
            best = part_start
        if best is not None:
            return best
    return start


# -- 5. the exact count --------------------------------------------------------------------------
def _fit(text: str, start: int, end: int, max_tokens: int, budget: int, cost: Callable[[int, int], int],
         base: int) -> list[tuple[int, int]]:
    """[start, end) if it fits `max_tokens` as a whole, else its pieces repacked with a budget
    tightened by the excess (the parts' counts added up to less than the whole's)."""
    whole = cost(start, end) + base
    if whole <= max_tokens:
        return [(start, end)]
    pieces = _cut(text, start, end, _levels(PROSE), budget, cost)
    tighter = sum(piece_cost for *_, piece_cost in pieces) - (whole - max_tokens) - 1
    if len(pieces) == 1 or tighter < 1:
        spans = [(s, e) for s, e, _ in _cut_anywhere(text, start, end, max(1, min(budget, tighter)), cost)]
    else:
        spans = _pack([[_Unit(s, e, c, 0, False, False) for s, e, c in pieces]], tighter)
    return [piece for s, e in spans for piece in _fit(text, s, e, max_tokens, budget, cost, base)]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) without the whitespace at either end."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
