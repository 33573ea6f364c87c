"""Embedder registry: each source names its embedder kind and model; the worker builds it here."""

from __future__ import annotations

from autoembed.embedders.base import Embedder
from autoembed.errors import ConfigError
from autoembed.settings import Settings

KINDS = ("local", "openai", "hashing")


def build_embedder(kind: str, model: str, dimensions: int, settings: Settings) -> Embedder:
    """Build the embedder `kind` for `model`; `dimensions` is the target column's dimension.

    Backends import lazily so the core install needs no model runtime.
    """
    if kind == "hashing":
        from autoembed.embedders.hashing import HashingEmbedder

        return HashingEmbedder(model, dimensions)
    if kind == "local":
        from autoembed.embedders.local import LocalEmbedder

        return LocalEmbedder.from_settings(model, settings)
    if kind == "openai":
        from autoembed.embedders.openai import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(model, dimensions, settings)
    raise ConfigError(f"unknown embedder {kind!r}: choose one of {', '.join(KINDS)}")


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

    def close(self) -> None:
        """Close every embedder built so far."""
        for embedder in self._built.values():
            embedder.close()
        self._built.clear()


__all__ = ["Embedder", "EmbedderCache", "KINDS", "build_embedder"]
