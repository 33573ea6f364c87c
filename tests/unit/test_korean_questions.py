"""The Korean benchmark's data: every answer quote resolves to one span of its document, the
questions paraphrase instead of copying, and the paragraph split covers every answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from korean.corpus import CorpusMissing, Document, load_konlpy, load_seeds  # noqa: E402
from korean.paragraphs import paragraph_passages  # noqa: E402
from korean.questions import Span, load_questions  # noqa: E402

#: the longest run of characters a question may share with its document (names, terms)
MAX_SHARED_CHARS = 25


def _load(loader):
    try:
        return loader()
    except CorpusMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def seeds() -> dict[str, Document]:
    return {d.id: d for d in _load(load_seeds)}


def _longest_shared_run(question: str, text: str) -> int:
    best = 0
    for start in range(len(question)):
        while start + best < len(question) and question[start : start + best + 1] in text:
            best += 1
    return best


def test_the_seed_questions_resolve_to_one_span_each(seeds):
    questions = load_questions(seeds, ["seeds"])

    assert len(questions) >= 30
    assert len({q.id for q in questions}) == len(questions)
    assert {span.doc for q in questions for span in q.answers} == set(seeds)  # every document asked about
    for question in questions:
        for span in question.answers:
            assert 0 <= span.start < span.end <= len(seeds[span.doc].text)


def test_questions_paraphrase_their_documents(seeds):
    for question in load_questions(seeds, ["seeds"]):
        for span in question.answers:
            shared = _longest_shared_run(question.text, seeds[span.doc].text)
            assert shared <= MAX_SHARED_CHARS, f"{question.id} copies {shared} characters of {span.doc}"


def test_the_konlpy_questions_resolve_when_konlpy_is_installed():
    documents = {d.id: d for d in _load(load_konlpy)}

    questions = load_questions(documents, ["konlpy"])

    assert {"kolaw/constitution", "kobill/1809890"} <= set(documents)
    assert len(questions) >= 10


def test_a_quote_that_is_missing_or_ambiguous_names_its_question(tmp_path):
    documents = {"d": Document("d", "seeds", "가나다 가나다 라마")}
    for quote, complaint in (("없는 말", "occurs 0 times"), ("가나다", "occurs 2 times")):
        path = tmp_path / "questions.json"
        entry = {"id": "q7", "corpus": "seeds", "question": "?", "answers": [{"doc": "d", "quote": quote}]}
        path.write_text(json.dumps({"questions": [entry]}), encoding="utf-8")
        with pytest.raises(ValueError, match=f"question q7: .*{complaint}"):
            load_questions(documents, ["seeds"], path)


def test_missing_seeds_are_reported_with_where_they_were_looked_for(tmp_path):
    with pytest.raises(CorpusMissing, match=str(tmp_path)):
        load_seeds(tmp_path)


@pytest.mark.parametrize("max_chars", [200, 800, 2000])
def test_paragraph_passages_are_exact_bounded_slices_covering_every_answer(seeds, max_chars):
    questions = load_questions(seeds, ["seeds"])
    for document in seeds.values():
        passages = paragraph_passages(document, max_chars)

        assert all(document.text[p.start : p.end] == p.text for p in passages)
        assert all(0 < len(p.text) <= max_chars for p in passages)
        assert all(a.end <= b.start for a, b in zip(passages, passages[1:]))  # in order, disjoint
        for question in questions:
            for span in question.answers:
                if span.doc == document.id:
                    assert any(span.overlaps(p.doc, p.start, p.end) for p in passages), question.id


def test_paragraphs_break_at_blank_lines_first():
    text = "첫 문단입니다.\n둘째 줄.\n\n두 번째 문단.\n\n\n세 번째 문단은 조금 더 깁니다."
    passages = paragraph_passages(Document("d", "seeds", text), max_chars=20)

    assert [p.text for p in passages] == ["첫 문단입니다.\n둘째 줄.", "두 번째 문단.", "세 번째 문단은 조금 더 깁니다."]


def test_span_overlap_needs_a_shared_character_of_the_same_document():
    span = Span("d", 10, 20)
    assert span.overlaps("d", 19, 30) and span.overlaps("d", 0, 11) and span.overlaps("d", 12, 15)
    assert not span.overlaps("d", 20, 30) and not span.overlaps("d", 0, 10) and not span.overlaps("e", 12, 15)
