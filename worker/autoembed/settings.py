"""The one place that reads the environment. CLI flags override these values."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from autoembed.embedders.calibration import DEFAULT_BUDGET
from autoembed.embedders.registry import LOCAL_BACKENDS
from autoembed.errors import ConfigError
from autoembed.secrets import clean_secret


def _env_number(env: dict, name: str, default, kind: type):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {noun}, got {raw!r}") from None


def _env_int(env: dict, name: str, default: int) -> int:
    return _env_number(env, name, default, int)


def _env_float(env: dict, name: str, default: float) -> float:
    return _env_number(env, name, default, float)


def _env_secret(env: dict, *names: str) -> str | None:
    """The first of `names` that is set, stripped of surrounding whitespace (see secrets.clean_secret)."""
    for name in names:
        if env.get(name, "").strip():
            return clean_secret(env[name], name)
    return None


def _env_bool(env: dict, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


#: PostgreSQL's memory units, as maintenance_work_mem takes them ('512MB', '1GB', '65536' kB)
_MEMORY = re.compile(r"^\d+\s*(kB|MB|GB|TB)?$")


def _index_workers() -> int:
    """The default parallel maintenance workers of an index build: the CPUs this process may use, less one."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, usable - 1)


def parse_watches(raw: str | None) -> tuple[str, ...]:
    """The watches a worker is limited to, from a comma-separated list of `table` (all its watches)
    or `table.name` (one of them); empty: all. Whether they exist is the database's to say
    (api.check_watches)."""
    return tuple(entry.strip() for entry in (raw or "").split(",") if entry.strip())


@dataclass(frozen=True)
class Settings:
    """Worker and CLI settings. Environment variable names are given beside each field."""

    database_url: str | None = None  # DATABASE_URL
    home: Path = Path(".autoembed")  # AUTOEMBED_HOME: dev database and caches
    dev_db_port: int = 55432  # AUTOEMBED_DEV_DB_PORT
    batch_size: int = 100  # AUTOEMBED_BATCH_SIZE: rows read per cycle (at least)
    max_batch_size: int = 2000  # AUTOEMBED_MAX_BATCH_SIZE: most rows, for an embedder that keeps more busy
    visibility_timeout: int = 120  # AUTOEMBED_VISIBILITY_TIMEOUT (s) a read job stays hidden
    poll_interval: float = 5.0  # AUTOEMBED_POLL_INTERVAL (s) between polls when idle
    listen: bool = True  # AUTOEMBED_LISTEN: wake on NOTIFY (off behind transaction poolers)
    backoff_base: float = 2.0  # AUTOEMBED_BACKOFF_BASE (s): first retry delay, doubled each try
    backoff_max: float = 300.0  # AUTOEMBED_BACKOFF_MAX (s)
    local_backend: str | None = None  # AUTOEMBED_LOCAL_BACKEND: one of registry.LOCAL_BACKENDS; unset: calibrated
    local_threads: int = 0  # AUTOEMBED_LOCAL_THREADS: intra-op threads; 0: switched by speed (e5: all cores)
    local_sub_batch: int = 0  # AUTOEMBED_LOCAL_SUB_BATCH: texts per forward pass; 0: calibrated per length
    local_calibration_seconds: float = DEFAULT_BUDGET  # AUTOEMBED_LOCAL_CALIBRATION_SECONDS: budget; 0: none
    cache_dir: Path = Path.home() / ".cache" / "autoembed"  # AUTOEMBED_CACHE_DIR: exported models
    openai_base_url: str = "https://api.openai.com/v1"  # AUTOEMBED_OPENAI_BASE_URL
    openai_api_key: str | None = dataclasses.field(default=None, repr=False)  # OPENAI_API_KEY
    openai_timeout: float = 30.0  # AUTOEMBED_OPENAI_TIMEOUT (s): shortest request timeout; longer ones follow latency
    openai_batch_size: int = 64  # AUTOEMBED_OPENAI_BATCH_SIZE: most texts per request (requests start smaller)
    openai_max_concurrency: int = 16  # AUTOEMBED_OPENAI_MAX_CONCURRENCY: most requests in flight (adapted below it)
    openai_rpm: int | None = None  # AUTOEMBED_OPENAI_RPM: the provider's requests per minute, if it has a limit
    openai_tpm: int | None = None  # AUTOEMBED_OPENAI_TPM: the provider's tokens per minute, if it has a limit
    openai_max_input_tokens: int | None = None  # AUTOEMBED_OPENAI_MAX_INPUT_TOKENS: default: the model's window
    metrics_port: int | None = None  # AUTOEMBED_METRICS_PORT: Prometheus /metrics when set
    watches: tuple[str, ...] = ()  # AUTOEMBED_WATCHES: the worker embeds only these ('table' or 'table.name'); empty: all
    index_maintenance_work_mem: str = "512MB"  # AUTOEMBED_INDEX_MAINTENANCE_WORK_MEM: for vector index builds
    #: AUTOEMBED_INDEX_PARALLEL_WORKERS: max_parallel_maintenance_workers of a vector index build
    index_parallel_workers: int = dataclasses.field(default_factory=_index_workers)

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        """Build settings from the environment (or the given mapping)."""
        env = dict(os.environ if env is None else env)
        home = Path(env.get("AUTOEMBED_HOME") or ".autoembed")
        settings = cls(
            database_url=env.get("DATABASE_URL") or None,
            home=home,
            dev_db_port=_env_int(env, "AUTOEMBED_DEV_DB_PORT", cls.dev_db_port),
            batch_size=_env_int(env, "AUTOEMBED_BATCH_SIZE", cls.batch_size),
            max_batch_size=_env_int(env, "AUTOEMBED_MAX_BATCH_SIZE", cls.max_batch_size),
            visibility_timeout=_env_int(env, "AUTOEMBED_VISIBILITY_TIMEOUT", cls.visibility_timeout),
            poll_interval=_env_float(env, "AUTOEMBED_POLL_INTERVAL", cls.poll_interval),
            listen=_env_bool(env, "AUTOEMBED_LISTEN", cls.listen),
            backoff_base=_env_float(env, "AUTOEMBED_BACKOFF_BASE", cls.backoff_base),
            backoff_max=_env_float(env, "AUTOEMBED_BACKOFF_MAX", cls.backoff_max),
            local_backend=env.get("AUTOEMBED_LOCAL_BACKEND") or cls.local_backend,
            local_threads=_env_int(env, "AUTOEMBED_LOCAL_THREADS", cls.local_threads),
            local_sub_batch=_env_int(env, "AUTOEMBED_LOCAL_SUB_BATCH", cls.local_sub_batch),
            local_calibration_seconds=_env_float(env, "AUTOEMBED_LOCAL_CALIBRATION_SECONDS",
                                                 cls.local_calibration_seconds),
            cache_dir=Path(env.get("AUTOEMBED_CACHE_DIR") or cls.cache_dir),
            openai_base_url=env.get("AUTOEMBED_OPENAI_BASE_URL") or cls.openai_base_url,
            openai_api_key=_env_secret(env, "AUTOEMBED_OPENAI_API_KEY", "OPENAI_API_KEY"),
            openai_timeout=_env_float(env, "AUTOEMBED_OPENAI_TIMEOUT", cls.openai_timeout),
            openai_batch_size=_env_int(env, "AUTOEMBED_OPENAI_BATCH_SIZE", cls.openai_batch_size),
            openai_max_concurrency=_env_int(env, "AUTOEMBED_OPENAI_MAX_CONCURRENCY", cls.openai_max_concurrency),
            openai_rpm=_env_int(env, "AUTOEMBED_OPENAI_RPM", None),
            openai_tpm=_env_int(env, "AUTOEMBED_OPENAI_TPM", None),
            openai_max_input_tokens=_env_int(env, "AUTOEMBED_OPENAI_MAX_INPUT_TOKENS", None),
            metrics_port=_env_int(env, "AUTOEMBED_METRICS_PORT", None),
            watches=parse_watches(env.get("AUTOEMBED_WATCHES")),
            index_maintenance_work_mem=(env.get("AUTOEMBED_INDEX_MAINTENANCE_WORK_MEM") or "").strip()
            or cls.index_maintenance_work_mem,
            index_parallel_workers=_env_int(env, "AUTOEMBED_INDEX_PARALLEL_WORKERS", _index_workers()),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ConfigError naming the first setting that cannot work."""
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_batch_size < 1:
            raise ConfigError(f"AUTOEMBED_MAX_BATCH_SIZE must be at least 1, got {self.max_batch_size}")
        if self.visibility_timeout < 1:
            raise ConfigError(f"visibility timeout must be at least 1 s, got {self.visibility_timeout}")
        if self.poll_interval <= 0:
            raise ConfigError(f"poll interval must be positive, got {self.poll_interval}")
        if self.metrics_port is not None and not 0 < self.metrics_port < 65536:
            raise ConfigError(f"AUTOEMBED_METRICS_PORT (--metrics-port) must be from 1 to 65535, "
                              f"got {self.metrics_port}")
        if min(self.local_threads, self.local_sub_batch, self.local_calibration_seconds) < 0:
            raise ConfigError("AUTOEMBED_LOCAL_THREADS, _SUB_BATCH and _CALIBRATION_SECONDS must be 0 "
                              "(calibrated / no calibration) or more")
        if not _MEMORY.match(self.index_maintenance_work_mem):
            raise ConfigError("AUTOEMBED_INDEX_MAINTENANCE_WORK_MEM must be an amount of memory as PostgreSQL "
                              f"takes it, e.g. 512MB or 2GB, got {self.index_maintenance_work_mem!r}")
        if self.index_parallel_workers < 0:
            raise ConfigError(f"AUTOEMBED_INDEX_PARALLEL_WORKERS must be 0 or more, got {self.index_parallel_workers}")
        if self.local_backend is not None and self.local_backend not in LOCAL_BACKENDS:
            *first, last = LOCAL_BACKENDS
            raise ConfigError(f"local backend must be {', '.join(first)} or {last}, got {self.local_backend!r}")

    def read_size(self, wanted: int | None) -> int:
        """Rows a batch reads: `batch_size`, or more when an embedder `wanted` more to keep its
        requests busy, up to `max_batch_size` (never below `batch_size`)."""
        return max(self.batch_size, min(wanted or 0, self.max_batch_size))

    def replace(self, **changes) -> "Settings":
        """A copy with the given fields changed (flags given on the command line), validated."""
        changed = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        changed.validate()
        return changed
