"""Health of a worker process, for HTTP probes (GET /healthz and /readyz of autoembed.server).

Alive: the worker loop in this process is not failing. It is judged from the loop's own metrics:
failing while database errors keep rising and no batch is committed (a worker denied its queue
loops on `permission denied` and never embeds a row); a drain past its time limit is stuck.
Ready: the database answers, autoembed is migrated, and every watched table can be served.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from prometheus_client import REGISTRY

from autoembed.connections import connect
from autoembed.embed import check_sources
from autoembed.embedders import KINDS, EmbedderCache
from autoembed.errors import AutoembedError
from autoembed.migrate import migration_files
from autoembed.queries import QUERIES
from autoembed.store import served_sources

WINDOW = 60.0  # seconds of loop history liveness looks at
SAMPLE_EVERY = 5.0  # seconds between samples of the loop's metrics


def _loop_counters() -> tuple[float, float]:
    """(database errors, batches committed) so far in this process."""
    return (REGISTRY.get_sample_value("autoembed_database_errors_total") or 0.0,
            REGISTRY.get_sample_value("autoembed_batch_seconds_count") or 0.0)


class Liveness:
    """Samples the loop's metrics in a daemon thread; `check()` says whether the loop is alive.
    `stuck` may name a further reason to report failure (None: nothing stuck)."""

    def __init__(self, window: float = WINDOW, stuck: Callable[[], str | None] = lambda: None):
        self.window = window
        self.stuck = stuck
        self._samples: deque[tuple[float, float, float]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autoembed-liveness", daemon=True)

    def start(self) -> "Liveness":
        """Start sampling; returns self."""
        self.sample()
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop sampling."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self.sample()

    def sample(self) -> None:
        """Record the loop's counters now, forgetting samples older than the window."""
        now = time.monotonic()
        with self._lock:
            self._samples.append((now, *_loop_counters()))
            while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
                self._samples.popleft()

    def check(self) -> tuple[bool, str]:
        """(alive, why): not alive when something is stuck, or when over the window database
        errors rose and no batch was committed."""
        reason = self.stuck()
        if reason:
            return False, reason
        self.sample()
        with self._lock:
            (_, errors_then, batches_then), (_, errors_now, batches_now) = self._samples[0], self._samples[-1]
        if errors_now > errors_then and batches_now == batches_then:
            return False, (f"the worker loop is failing: {errors_now - errors_then:.0f} database error(s) "
                           f"in the last {self.window:.0f} s and no batch committed (see its log)")
        return True, "the worker loop is running"


@dataclass
class Readiness:
    """The checks of GET /readyz, each `ok` or what is wrong."""

    checks: dict[str, str] = field(default_factory=dict)
    ready: bool = True

    def fail(self, name: str, why: str) -> None:
        """Record a failed check."""
        self.checks[name] = why
        self.ready = False


def readiness(dsn: str, embedders: EmbedderCache | None = None, watches: Sequence[str] = ()) -> Readiness:
    """Is this database ready for a worker: reachable, every packaged migration applied, and each
    watch it serves (`watches`, as Settings.watches names them; empty: every watch) servable (with
    `embedders`: built and of the column's dimension; without: of a kind this worker knows)."""
    result = Readiness()
    try:
        conn = connect(dsn, autocommit=True, vectors=False)
    except AutoembedError as exc:
        result.fail("database", str(exc))
        return result
    with conn:
        result.checks["database"] = "ok"
        try:
            applied = {name for name, _ in conn.execute(QUERIES["applied_migrations"])}
            sources = served_sources(conn, watches)
        except psycopg.Error as exc:
            result.fail("migrated", f"cannot read autoembed's tables ({exc.diag.message_primary}): "
                                    "run `autoembed migrate`, or grant autoembed_worker to this role")
            return result
    pending = sorted({m.name for m in migration_files()} - applied)
    if pending:
        result.fail("migrated", f"{len(pending)} migration(s) pending ({pending[0]}...): run `autoembed migrate`")
    else:
        result.checks["migrated"] = "ok"
    try:
        if embedders is not None:
            check_sources(sources, embedders)
        else:
            unknown = [s.table_name for s in sources if s.embedder not in KINDS]
            if unknown:
                raise AutoembedError(f"unknown embedder kind for {', '.join(unknown)}")
        result.checks["sources"] = f"ok ({len(sources)} watched)"
    except AutoembedError as exc:
        result.fail("sources", str(exc))
    return result
