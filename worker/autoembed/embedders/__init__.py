"""Embedders: each source names its embedder kind and model; the worker builds them here, once each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autoembed.embedders.base import Embedder
from autoembed.embedders.registry import DEFAULT_MODEL, KINDS, LOCAL_BACKENDS, build_embedder, default_model

if TYPE_CHECKING:
    from autoembed.settings import Settings


class EmbedderCache:
    """Builds each (kind, model, dimensions) embedder once and keeps it for the worker's life."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._built: dict[tuple[str, str, int], Embedder] = {}

    def get(self, kind: str, model: str, dimensions: int) -> Embedder:
        """The embedder for a source; ConfigError when it cannot be built."""
        key = (kind, model, dimensions)
        if key not in self._built:
            self._built[key] = build_embedder(kind, model, dimensions, self._settings)
        return self._built[key]

    def wanted_batch_rows(self) -> int | None:
        """The most rows any embedder built so far wants a batch to bring (None: none asks)."""
        return max((w for w in (e.wanted_batch_rows() for e in self._built.values()) if w), default=None)

    def close(self) -> None:
        """Close every embedder built so far."""
        for embedder in self._built.values():
            embedder.close()
        self._built.clear()


__all__ = ["DEFAULT_MODEL", "Embedder", "EmbedderCache", "KINDS", "LOCAL_BACKENDS", "build_embedder", "default_model"]
