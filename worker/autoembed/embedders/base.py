"""The embedder interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class Embedder(ABC):
    """Turns texts into vectors of a fixed dimension.

    `embed` returns one float32 vector per input text, in order, or raises
    `autoembed.errors.EmbeddingError` (with `retryable` set) for the whole call.
    """

    #: registry name, e.g. "local"
    kind: str
    #: the model name or path this embedder was built for
    model: str
    #: texts per call the backend handles well; callers split larger inputs
    max_batch_size: int = 64

    @property
    @abstractmethod
    def dimensions(self) -> int:
        """Length of every vector this embedder returns."""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Embed the texts, one vector each, in order."""

    def wanted_batch_rows(self) -> int | None:
        """Rows one batch should bring this embedder to keep it at its pace (a remote one: every
        request it may have in flight busy); None: the worker's batch size is right."""
        return None

    def close(self) -> None:
        """Release sessions or processes the embedder holds (default: nothing)."""
