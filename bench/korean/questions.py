"""The question set (`questions.json`): Korean questions, each with the spans that answer it.

An answer is given in the file as a quote that occurs exactly once in its document; loading
turns it into character offsets, so any split of the documents can be scored: a piece of text
is relevant to a question when it overlaps one of its answer spans.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from korean.corpus import Document

QUESTIONS_FILE = Path(__file__).with_name("questions.json")


@dataclass(frozen=True)
class Span:
    """Characters `start:end` of document `doc`."""

    doc: str
    start: int
    end: int

    def overlaps(self, doc: str, start: int, end: int) -> bool:
        """Whether characters `start:end` of `doc` share at least one character with this span."""
        return doc == self.doc and start < self.end and self.start < end


@dataclass(frozen=True)
class Question:
    """A question of corpus `corpus`, answered by any of `answers`."""

    id: str
    text: str
    corpus: str
    answers: tuple[Span, ...]


def load_questions(
    documents: Mapping[str, Document], corpora: Iterable[str], path: Path = QUESTIONS_FILE
) -> list[Question]:
    """The questions of `corpora`, their quotes resolved against `documents` (id -> Document).

    ValueError names the question when a quote is missing from its document, occurs more than
    once, or names a document that is not loaded.
    """
    wanted = set(corpora)
    questions = []
    for entry in json.loads(path.read_text(encoding="utf-8"))["questions"]:
        if entry["corpus"] not in wanted:
            continue
        spans = tuple(_span(entry["id"], answer, documents) for answer in entry["answers"])
        questions.append(Question(entry["id"], entry["question"], entry["corpus"], spans))
    return questions


def _span(question_id: str, answer: Mapping[str, str], documents: Mapping[str, Document]) -> Span:
    doc, quote = answer["doc"], answer["quote"]
    if doc not in documents:
        raise ValueError(f"question {question_id}: document {doc!r} is not loaded")
    text = documents[doc].text
    count = text.count(quote)
    if count != 1:
        raise ValueError(f"question {question_id}: quote {quote!r} occurs {count} times in {doc}, not once")
    start = text.index(quote)
    return Span(doc, start, start + len(quote))
