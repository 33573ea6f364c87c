"""A deterministic feature-hashing embedder: no model, no network.

Words and character trigrams are hashed into a fixed number of signed buckets and the
vector is L2-normalised, so texts sharing words are near each other. It exists for tests,
benchmarks of the pipeline itself, and trying autoembed out before choosing a model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from autoembed.embedders.base import Embedder

_WORD = re.compile(r"\w+", re.UNICODE)


def _features(text: str) -> list[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    grams = [w[i : i + 3] for w in words if len(w) > 3 for i in range(len(w) - 2)]
    return words + grams or [text]


class HashingEmbedder(Embedder):
    """Signed feature hashing of words and character trigrams into `dimensions` buckets."""

    kind = "hashing"
    max_batch_size = 1024

    def __init__(self, model: str, dimensions: int):
        self.model = model
        self._dimensions = dimensions

    @property
    def dimensions(self) -> int:
        """The bucket count, which is the dimension of the column it fills."""
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One normalised float32 vector per text."""
        return [self._embed_one(t) for t in texts]

    def _embed_one(self, text: str) -> np.ndarray:
        vec = np.zeros(self._dimensions, dtype=np.float32)
        for feature in _features(text):
            digest = hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            vec[value % self._dimensions] += 1.0 if value >> 63 else -1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0
            return vec
        return vec / norm
