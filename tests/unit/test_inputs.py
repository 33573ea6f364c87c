"""What embedders are given (autoembed.embedders.inputs): prompts before passages and queries,
except where the engine adds its own, and each model's window, by its tokenizer or an estimate."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from autoembed.embedders.hashing import HashingEmbedder
from autoembed.embedders.inputs import embed_passages, embed_query, window
from autoembed.embedders.tokens import estimate_tokens


class Recording(HashingEmbedder):
    """The hashing embedder, remembering what it was given."""

    def __init__(self):
        super().__init__("hashing-test", 8)
        self.given: list[str] = []

    def embed(self, texts):
        self.given.extend(texts)
        return super().embed(texts)


class Tokenized(Recording):
    """A model with a tokenizer (like the local embedder): one token a character, 2 special ones."""

    max_tokens = 30

    def count_tokens(self, text: str) -> int:
        return 2 + len(text)


class Estimated(Recording):
    """A remote model (like the openai embedder): an estimate and a known input limit."""

    max_input_tokens = 40

    def estimate_tokens(self, text: str) -> int:
        return estimate_tokens(text)


class Prompting(Tokenized):
    """An engine that adds `query: ` / `passage: ` itself (like the e5 embedder)."""

    adds_prompts = True
    queries: list[str]

    def count_tokens(self, text: str, input_type: str = "passage") -> int:
        return 2 + len(f"{input_type}: {text}")

    def embed_queries(self, texts):
        self.queries = list(texts)
        return HashingEmbedder.embed(self, ["query: " + t for t in texts])


@pytest.mark.parametrize("embedder,prompt,text,tokens,limit", [
    (Tokenized(), "p: ", "가나다", 2 + 3 + 3, 30),
    (Estimated(), "p: ", "hello world", estimate_tokens("p: hello world"), 40),
    (Prompting(), "ignored: ", "가나다", 2 + len("passage: 가나다"), 30),
    (Recording(), "p: ", "hello world", estimate_tokens("p: hello world"), None),
])
def test_the_window_counts_a_text_as_it_is_sent_prompt_included(embedder, prompt, text, tokens, limit):
    measured = window(embedder, prompt)
    assert (measured.count(text), measured.max_tokens) == (tokens, limit)
    assert measured.fits("") and (limit is None or not measured.fits("가" * limit))


def test_passages_and_queries_get_their_prompts_before_them():
    embedder = Tokenized()
    embed_passages(embedder, ["문서 하나", "문서 둘"], "passage: ")
    vector = embed_query(embedder, "질문", "query: ")
    assert embedder.given == ["passage: 문서 하나", "passage: 문서 둘", "query: 질문"]
    np.testing.assert_allclose(vector, HashingEmbedder("hashing-test", 8).embed(["query: 질문"])[0])


def test_an_engine_that_adds_prompts_gets_raw_texts_and_its_query_method():
    embedder = Prompting()
    embed_passages(embedder, ["문서"], "passage: ")
    embed_query(embedder, "질문", "query: ")
    assert embedder.given == ["문서"] and embedder.queries == ["질문"]


def test_a_query_longer_than_the_window_is_cut_at_a_word_with_a_warning(caplog):
    embedder = Tokenized()
    with caplog.at_level(logging.WARNING, logger="autoembed.embedders.inputs"):
        embed_query(embedder, "벡터 검색은 의미가 비슷한 문서를 찾는다. 그리고 아주 긴 질문은 잘린다.", "q: ")
    sent = embedder.given[0]
    assert embedder.count_tokens(sent) <= 30 and sent == "q: 벡터 검색은 의미가 비슷한 문서를 찾는다."
    assert "longer than the model's window of 30 tokens" in caplog.records[0].getMessage()
