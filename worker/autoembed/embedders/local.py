"""A sentence-transformers model run in-process: torch, ONNX Runtime fp32, or ONNX Runtime int8.
Where the model comes from, and its ONNX export cache, is models.py's business; which engine and
sub-batch sizes run it fastest on this machine is calibration.py's; which thread count runs the
next sub-batch, switching.py's."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoembed.embedders.base import Embedder
from autoembed.embedders.batching import in_input_order, length_groups
from autoembed.embedders.calibration import DEFAULT_BUDGET, Options, configure, usable_cpus
from autoembed.embedders.models import Engines, ModelFiles
from autoembed.embedders.registry import LOCAL_BACKENDS
from autoembed.embedders.switching import ThreadSwitch
from autoembed.errors import ConfigError, EmbeddingError

logger = logging.getLogger(__name__)

#: characters kept per token of the model window before tokenizing (see `LocalEmbedder.embed`)
CHARS_PER_TOKEN_BOUND = 16


class LocalEmbedder(Embedder):
    """Embeds with a sentence-transformers model on the CPU, in length-grouped sub-batches, with
    the engine and per-length sub-batch sizes of `plan` (pinned, or calibrated), each sub-batch on
    the thread count of `plan.threads` that runs fastest at the moment (`ThreadSwitch`)."""

    kind = "local"
    #: one call per worker batch: `embed` already cuts it into length-grouped sub-batches itself
    max_batch_size = 1024

    def __init__(
        self,
        model: str,
        backend: str | None = None,
        *,
        cache_dir: Path,
        threads: int = 0,
        sub_batch: int = 0,
        calibration_budget: float = DEFAULT_BUDGET,
        refresh: bool = False,
    ):
        """`backend`, `threads` and `sub_batch` pin what they name; None/0 leaves it to the
        calibration (calibration.py), which measures at most `calibration_budget` seconds
        when this machine has no kept result (or `refresh`)."""
        if backend is not None and backend not in LOCAL_BACKENDS:
            raise ConfigError(f"local backend must be one of {', '.join(LOCAL_BACKENDS)}, got {backend!r}")
        if threads < 0 or sub_batch < 0:
            raise ConfigError(f"local threads and sub-batch must be 0 (calibrated) or more, got {threads}, {sub_batch}")
        self.model = model
        started = time.monotonic()
        engines = Engines(ModelFiles(model, cache_dir=cache_dir))
        options = Options.from_pins(backend, threads, sub_batch, usable_cpus())
        #: how `plan` was reached: pinned, kept from an earlier calibration, or measured now
        self.calibration = configure(engines, options, budget=calibration_budget, cache_dir=cache_dir,
                                     refresh=refresh)
        #: the engine, threads and sub-batch size per length this embedder runs
        self.plan = self.calibration.plan
        self.backend = self.plan.backend
        self._st = engines.model(self.plan.backend, self.plan.threads[0])
        self._runs = {threads: engines.encoder(self.plan.backend, threads) for threads in self.plan.threads}
        #: which thread count runs the next sub-batch of each length bucket
        self.switch = ThreadSwitch(self.plan.threads)
        #: where the weights were loaded from, for logs and `autoembed status`
        self.source = engines.source(self.plan.backend, self.plan.threads[0])
        dim = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        self._dimensions = int(dim())
        self._window = self._st.max_seq_length or 512
        self._max_chars = self._window * CHARS_PER_TOKEN_BOUND
        logger.info(
            "local model loaded",
            extra={
                "model": model,
                "plan": self.plan.describe(),
                "plan_from": self.calibration.source,
                "source": self.source,
                "dimensions": self._dimensions,
                "seconds": round(time.monotonic() - started, 2),
            },
        )

    @classmethod
    def from_settings(cls, model: str, settings, *, refresh: bool = False) -> LocalEmbedder:
        """Build from `local_backend`, `local_threads`, `local_sub_batch`,
        `local_calibration_seconds` and `cache_dir`; `refresh` measures again."""
        return cls(
            model,
            settings.local_backend,
            cache_dir=settings.cache_dir,
            threads=settings.local_threads,
            sub_batch=settings.local_sub_batch,
            calibration_budget=settings.local_calibration_seconds,
            refresh=refresh,
        )

    @property
    def dimensions(self) -> int:
        """The model's output dimension (384 for all-MiniLM-L6-v2)."""
        return self._dimensions

    @property
    def max_tokens(self) -> int:
        """Tokens the model reads (`max_seq_length`, special tokens included: 256 for MiniLM)."""
        return self._window

    def count_tokens(self, text: str) -> int:
        """Tokens the model's own tokenizer makes of `text`, special tokens included, untruncated
        (a text fits the model when this is at most `max_tokens`)."""
        encoded = self._st.tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)
        return len(encoded["input_ids"])

    def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One unit-norm float32 vector per text, in input order.

        Texts are sorted by their length in tokens and cut into sub-batches of the plan's size
        for that length and for the thread count the switch picks for it in this call. The tokenizer truncates at the model window (`max_seq_length` tokens);
        each text is first cut to `max_seq_length * CHARS_PER_TOKEN_BOUND` characters, because
        the tokenizer reads the whole string before truncating (4 s for 1 MB of Korean). Only
        text where one token spans more than 16 characters on average (long runs of
        whitespace) loses content that the window would otherwise have kept.
        """
        if not texts:
            return []
        try:
            clipped = [text[: self._max_chars] for text in texts]
            lengths = self._token_counts(clipped)
            # this call's thread count per length bucket, and sub-batches sized for it
            threads = [self.switch.pick(bucket) for bucket in range(len(self.plan.sub_batches))]
            groups = length_groups(lengths, lambda n: self.plan.sub_batch(n, threads[self.plan.bucket(n)]))
            results = [self._encode([clipped[i] for i in group], max(lengths[i] for i in group), threads)
                       for group in groups]
        except Exception as exc:
            raise EmbeddingError(
                f"local model {self.model!r} ({self.backend}) failed on {len(texts)} texts: "
                f"{type(exc).__name__}: {exc}",
                retryable=False,
            ) from exc
        return in_input_order(groups, results)

    def _token_counts(self, texts: list[str]) -> list[int]:
        """Tokens the model reads of each text (cut at the window)."""
        encoded = self._st.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=self._window,
                                     return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def _encode(self, texts: list[str], longest: int, threads: list[int]) -> list[np.ndarray]:
        """One sub-batch, on its bucket's thread count (`threads[bucket]`); its time goes to the switch."""
        bucket = self.plan.bucket(longest)
        started = time.perf_counter()
        vectors = self._runs[threads[bucket]](texts)
        self.switch.record(bucket, threads[bucket], len(texts) * longest, time.perf_counter() - started)
        return list(np.asarray(vectors, dtype=np.float32))
