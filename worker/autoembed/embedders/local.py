"""A sentence-transformers model run in-process: torch, ONNX Runtime fp32, or ONNX Runtime int8.
Where the model comes from, and its ONNX export cache, is models.py's business."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoembed.embedders.base import Embedder
from autoembed.embedders.batching import in_input_order, length_groups
from autoembed.embedders.models import ModelFiles
from autoembed.embedders.registry import LOCAL_BACKENDS
from autoembed.errors import ConfigError, EmbeddingError

logger = logging.getLogger(__name__)

#: texts per forward pass by intra-op threads, from bench/embedder_engines.py on 2 cores: on
#: texts of mixed lengths 8 was fastest with 2 threads and 4 with 1, for every backend
SUB_BATCH = {1: 4}
DEFAULT_SUB_BATCH = 8
#: characters kept per token of the model window before tokenizing (see `LocalEmbedder.embed`)
CHARS_PER_TOKEN_BOUND = 16


class LocalEmbedder(Embedder):
    """Embeds with a sentence-transformers model on the CPU, in length-grouped sub-batches."""

    kind = "local"
    #: one call per worker batch: `embed` already cuts it into length-grouped sub-batches itself
    max_batch_size = 1024

    def __init__(
        self,
        model: str,
        backend: str = "onnx",
        *,
        cache_dir: Path,
        threads: int = 0,
        sub_batch: int | None = None,
    ):
        if backend not in LOCAL_BACKENDS:
            raise ConfigError(f"local backend must be one of {', '.join(LOCAL_BACKENDS)}, got {backend!r}")
        self.model = model
        self.backend = backend
        self.sub_batch = sub_batch or SUB_BATCH.get(threads, DEFAULT_SUB_BATCH)
        started = time.monotonic()
        files = ModelFiles(model, cache_dir=cache_dir, threads=threads)
        self._st = files.load(backend)
        #: where the weights were loaded from, for logs and `autoembed status`
        self.source = files.source
        dim = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        self._dimensions = int(dim())
        window = self._st.max_seq_length or 512
        self._max_chars = window * CHARS_PER_TOKEN_BOUND
        logger.info(
            "local model loaded",
            extra={
                "model": model,
                "backend": backend,
                "source": self.source,
                "dimensions": self._dimensions,
                "seconds": round(time.monotonic() - started, 2),
            },
        )

    @classmethod
    def from_settings(cls, model: str, settings) -> LocalEmbedder:
        """Build from `local_backend`, `local_threads` and `cache_dir`."""
        return cls(
            model,
            settings.local_backend,
            cache_dir=settings.cache_dir,
            threads=settings.local_threads,
        )

    @property
    def dimensions(self) -> int:
        """The model's output dimension (384 for all-MiniLM-L6-v2)."""
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One unit-norm float32 vector per text, in input order.

        Texts are grouped by length into sub-batches of `sub_batch`. The tokenizer truncates
        at the model window (`max_seq_length` tokens); each text is first cut to
        `max_seq_length * CHARS_PER_TOKEN_BOUND` characters, because the tokenizer reads the
        whole string before truncating (4 s for 1 MB of Korean). Only text where one token
        spans more than 16 characters on average (long runs of whitespace) loses content
        that the window would otherwise have kept.
        """
        if not texts:
            return []
        try:
            clipped = [text[: self._max_chars] for text in texts]
            groups = length_groups(clipped, self.sub_batch)
            results = [self._encode([clipped[i] for i in group]) for group in groups]
        except Exception as exc:
            raise EmbeddingError(
                f"local model {self.model!r} ({self.backend}) failed on {len(texts)} texts: "
                f"{type(exc).__name__}: {exc}",
                retryable=False,
            ) from exc
        return in_input_order(groups, results)

    def _encode(self, texts: list[str]) -> list[np.ndarray]:
        vectors = self._st.encode(
            texts,
            batch_size=len(texts),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return list(np.asarray(vectors, dtype=np.float32))
