"""What an embedder is given: passages and queries with their prompts, and how long an input may be.

A watch stores a query prompt and a passage prompt (autoembed.sources; db/idempotent/025_prompts.sql
fills in those of known model families). An embedder that adds them itself (`adds_prompts`, the
e5 embedder: its engine puts `query: ` and `passage: ` before texts) gets raw texts, queries through
its `embed_queries`; any other embedder gets each prompt put before its texts.

An input's window: the most tokens the model reads, and how to count a text as it will be sent,
prompt and special tokens included. By the model's own tokenizer where the embedder has one
(`count_tokens` and `max_tokens`: e5, local); by the `openai` embedder's conservative estimate
(`estimate_tokens` and `max_input_tokens`); embedders with neither (hashing) have no limit and are
counted by the same estimate, so that chunks of them still have a size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from autoembed.chunking import truncate
from autoembed.embedders.base import Embedder
from autoembed.embedders.tokens import estimate_tokens

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """`max_tokens`: the most tokens one input may have (None: no limit); `count(text)`: the tokens
    `text` costs as it is sent, prompt and special tokens included (by the model's tokenizer where
    the embedder has one, else estimated high)."""

    max_tokens: int | None
    count: Callable[[str], int]

    def fits(self, text: str) -> bool:
        """Whether `text` may be sent whole. A text of at most half as many UTF-8 bytes as the
        window leaves is not counted: no tokenizer spends more than two tokens on a byte."""
        if self.max_tokens is None:
            return True
        if 2 * len(text.encode("utf-8")) + self.count("") <= self.max_tokens:
            return True
        return self.count(text) <= self.max_tokens


def adds_prompts(embedder: Embedder) -> bool:
    """Whether the embedder puts its own prompts before passages and queries."""
    return bool(getattr(embedder, "adds_prompts", False))


def window(embedder: Embedder, prompt: str, input_type: str = "passage") -> Window:
    """The window of `embedder` for inputs of `input_type` ("passage" or "query") sent after `prompt`."""
    if adds_prompts(embedder):
        return Window(embedder.max_tokens, lambda text: embedder.count_tokens(text, input_type))
    if hasattr(embedder, "count_tokens") and hasattr(embedder, "max_tokens"):
        return Window(embedder.max_tokens, lambda text: embedder.count_tokens(prompt + text))
    if hasattr(embedder, "estimate_tokens") and hasattr(embedder, "max_input_tokens"):
        return Window(embedder.max_input_tokens, lambda text: embedder.estimate_tokens(prompt + text))
    return Window(None, lambda text: estimate_tokens(prompt + text))


def embed_passages(embedder: Embedder, texts: Sequence[str], prompt: str) -> list[np.ndarray]:
    """Vectors of documents (row content or chunks), each after the passage prompt."""
    if adds_prompts(embedder):
        return embedder.embed(texts)
    return embedder.embed([prompt + text for text in texts] if prompt else texts)


def embed_query(embedder: Embedder, text: str, prompt: str) -> np.ndarray:
    """The vector of a search query after the query prompt, cut to the window (with a warning)."""
    limit = window(embedder, prompt, "query")
    if not limit.fits(text):
        kept = truncate(text, limit.count, limit.max_tokens)
        log.warning("the search query is longer than the model's window of %d tokens: searching with its first "
                    "%d of %d characters", limit.max_tokens, len(kept), len(text))
        text = kept
    if adds_prompts(embedder):
        return embedder.embed_queries([text])[0]
    return embedder.embed([prompt + text])[0]
