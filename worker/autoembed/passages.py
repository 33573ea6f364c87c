"""The passages of a batch's rows: what the model is given for each row, and the row's vector.

- A row of a chunked source is split into chunks that fit the model's window
  (autoembed.chunking), and only chunks whose text has no vector yet are embedded: the vectors
  of its other chunks (loaded by `load_previous_chunks` in the fetch stage) are kept. Edit one
  paragraph of a long document and one chunk is embedded again. The row's own vector is the
  normalized mean of its chunks' vectors.
- Any other row is embedded whole; where it is longer than the model's window it is cut at the
  last boundary that fits (block, line, sentence, word), with a warning: no embedder is ever
  sent more than its model reads.

Every passage is embedded after the source's passage prompt (autoembed.embedders.inputs). Equal
passages of a call are embedded once. A source whose rows are Korean but whose model is an English
one is warned about, once (bench/retrieval_korean.py: recall@1 0.11 for MiniLM, 0.62 for e5).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import numpy as np
import psycopg

from autoembed.batch import Batch, Item
from autoembed.chunking import Chunk, split, truncate
from autoembed.embedders.base import Embedder
from autoembed.embedders.inputs import Window, embed_passages, window
from autoembed.errors import EmbeddingError
from autoembed.store import Source, Store, StoredChunk

log = logging.getLogger(__name__)

#: the most tokens of a chunk when the watch names none and the model's window is larger (or unknown)
DEFAULT_CHUNK_TOKENS = 512
#: the overlap when the watch names none, as a share of the chunk size: 64 of e5's 512 tokens took
#: recall@1 from 0.61 to 0.66 in bench/retrieval_korean.py, for 13 % more chunks
DEFAULT_OVERLAP_SHARE = 0.125
#: models that know English only (Hangul falls apart into jamo or unknown tokens)
ENGLISH_MODELS = re.compile(r"all-minilm|all-mpnet|bge-[a-z]+-en|(^|/)e5-|nomic-embed-text|mxbai-embed", re.I)
#: a row whose first LANGUAGE_SAMPLE characters are more than KOREAN_SHARE Hangul (of the letters) is Korean
LANGUAGE_SAMPLE, KOREAN_SHARE = 300, 0.3
_warned_language: set[tuple[int, str]] = set()  # (source id, model) warned about in this process


@dataclass(frozen=True)
class Embedded:
    """A row's vector and, for a chunked source, its chunks (None otherwise)."""

    vector: np.ndarray
    chunks: tuple[StoredChunk, ...] | None


def load_previous_chunks(store: Store, conn: psycopg.Connection, source: Source, batch: Batch) -> None:
    """Give the batch's rows of a chunked `source` the vectors their chunks have now (fetch stage)."""
    if not source.chunked:
        return
    items = [item for item in batch.items if item.source.id == source.id]
    if not items:
        return
    previous = store.load_chunk_vectors(conn, source.id, [item.row.pk for item in items])
    for item in items:
        item.previous_chunks = previous.get(item.row.pk, {})


def chunk_size(source: Source, limit: Window) -> tuple[int, int]:
    """The most tokens of a chunk of `source` and its overlap: the watch's, within the model's window
    (and the overlap within half a chunk, as watch checks against the chunk size it was given)."""
    size = source.chunk_tokens or DEFAULT_CHUNK_TOKENS
    if limit.max_tokens is not None:
        size = min(size, limit.max_tokens)
    overlap = source.chunk_overlap if source.chunk_overlap is not None else int(size * DEFAULT_OVERLAP_SHARE)
    return size, min(overlap, size // 2)


def embed_items(embedder: Embedder, items: Sequence[Item]) -> list[Embedded]:
    """The vector (and chunks) of each item, in order, in as few embedder calls of at most its
    `max_batch_size` as the passages allow. Raises EmbeddingError for the whole call."""
    windows: dict[str, Window] = {}
    plans = []
    cut: dict[int, list[Item]] = defaultdict(list)  # source id -> rows cut to the window
    for item in {item.source.id: item for item in reversed(items)}.values():  # each source's first row
        _check_language(item)
    for item in items:
        prompt = item.source.passage_prompt
        if prompt not in windows:
            windows[prompt] = window(embedder, prompt)
        if item.source.chunked:
            plans.append(_chunks(item, windows[prompt]))
            continue
        whole = _whole(item, windows[prompt])
        if len(whole.text) < len(item.content.strip()):
            cut[item.source.id].append(item)
        plans.append([whole])
    for rows in cut.values():
        log.warning("%d row(s) of %s are longer than the model's window of %d tokens: embedded from their first "
                    "part only, cut at a sentence or paragraph end (watch with chunks => true to embed all of it)",
                    len(rows), rows[0].source.table_name, windows[rows[0].source.passage_prompt].max_tokens,
                    extra={"source_id": rows[0].source.id, "pks": [item.row.pk for item in rows]})
    vectors = _embed_new(embedder, items, plans)
    return [_assemble(item, pieces, vectors) for item, pieces in zip(items, plans, strict=True)]


def _check_language(item: Item) -> None:
    """Warn, once per source and model, when a row is Korean and the model knows English only."""
    key = (item.source.id, item.source.model)
    if key in _warned_language or not ENGLISH_MODELS.search(item.source.model):
        return
    sample = item.content[:LANGUAGE_SAMPLE]
    letters = sum(ch.isalpha() for ch in sample)
    if letters and sum("\uac00" <= ch <= "\ud7a3" for ch in sample) > KOREAN_SHARE * letters:
        _warned_language.add(key)
        log.warning("%s holds Korean text but %s is an English model: search will miss most of it; watch it with "
                    "embedder => 'e5' (multilingual-e5-small, the `korean` extra)", item.source.table_name,
                    item.source.model, extra={"source_id": item.source.id})


def _chunks(item: Item, limit: Window) -> list[Chunk]:
    size, overlap = chunk_size(item.source, limit)
    try:
        return split(item.content, limit.count, size, overlap)
    except ValueError as exc:
        raise EmbeddingError(f"cannot split the rows of {item.source.table_name}: {exc}", retryable=False) from exc


def _whole(item: Item, limit: Window) -> Chunk:
    """The row's content as one passage, cut to the window where it is longer."""
    text = item.content if limit.fits(item.content) else truncate(item.content, limit.count, limit.max_tokens)
    return Chunk(0, 0, len(text), text)


def _embed_new(embedder: Embedder, items: Sequence[Item], plans: list[list[Chunk]]) -> dict[tuple[str, str], np.ndarray]:
    """Vectors of the passages that have none yet, by (prompt, text)."""
    todo: dict[str, dict[str, None]] = defaultdict(dict)  # prompt -> texts, in order, once each
    for item, pieces in zip(items, plans):
        for piece in pieces:
            if not item.source.chunked or text_hash(piece.text) not in item.previous_chunks:
                todo[item.source.passage_prompt][piece.text] = None
    vectors: dict[tuple[str, str], np.ndarray] = {}
    step = max(1, embedder.max_batch_size)
    for prompt, texts in todo.items():
        ordered = list(texts)
        for start in range(0, len(ordered), step):
            part = ordered[start:start + step]
            for text, vector in zip(part, embed_passages(embedder, part, prompt), strict=True):
                vectors[(prompt, text)] = vector
    return vectors


def _assemble(item: Item, pieces: list[Chunk], vectors: dict[tuple[str, str], np.ndarray]) -> Embedded:
    prompt = item.source.passage_prompt
    if not item.source.chunked:
        return Embedded(vectors[(prompt, pieces[0].text)], None)
    seen: dict[UUID, int] = defaultdict(int)
    stored = []
    for piece in pieces:
        chunk_hash = text_hash(piece.text)
        vector = item.previous_chunks.get(chunk_hash)
        if vector is None:
            vector = vectors[(prompt, piece.text)]
        stored.append(StoredChunk(chunk_hash, seen[chunk_hash], piece.position, piece.start, piece.end, piece.text,
                                  vector))
        seen[chunk_hash] += 1
    return Embedded(mean_vector([chunk.vector for chunk in stored]), tuple(stored))


def mean_vector(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of `vectors`, normalized to unit length (unless it is zero)."""
    mean = np.mean(np.stack(vectors), axis=0).astype(np.float32)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def text_hash(text: str) -> UUID:
    """The md5 of a text as a UUID, as the chunk table keeps it (and as SQL's md5(...)::uuid)."""
    return UUID(hashlib.md5(text.encode("utf-8")).hexdigest())
