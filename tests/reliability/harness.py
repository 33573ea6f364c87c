"""Reliability harness: worker subprocesses, a write audit, and the end-of-test invariant.

The invariant every fault test ends with (`check(...)` returns a `Verdict`):

* every row of the watched table (of all its partitions, whichever table the writes named) has an
  embedding equal to the hashing embedding of its current content (to a halfvec column's
  precision), with `autoembed.row_state` holding that content's hash, or an `autoembed.failures`
  record for exactly that content saying why not; a row with neither is *lost*, a row whose
  vector is not its content's is *stale* (also one left from before an `unwatch` and `watch`
  again: the new registration must not take it on trust);
* no row was written twice for the same content (*duplicate writes*, counted by `install_audit`'s
  triggers: two vector writes of one row with no content change between them, and no new
  registration either: watching again, or another model, re-embeds by design);
* nothing is recorded for a key that no row has (*orphans*), and no job is left in
  `pgmq.q_autoembed_jobs`.

Scale: AUTOEMBED_CHAOS_SCALE multiplies rows and kills (bench/chaos.py runs the folder at 10x and
more). Figures: with AUTOEMBED_CHAOS_REPORT set, `report(...)` appends one JSON line per scenario
there for bench/chaos.py to tabulate.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from prometheus_client import REGISTRY
from psycopg import sql

from autoembed.embedders.hashing import HashingEmbedder

DIMS = 16
SCALE = float(os.environ.get("AUTOEMBED_CHAOS_SCALE") or 1)
AUTOEMBED = str(Path(sys.executable).with_name("autoembed"))


def scaled(n: int, minimum: int = 1) -> int:
    """`n` times AUTOEMBED_CHAOS_SCALE, at least `minimum`."""
    return max(minimum, int(round(n * SCALE)))


def report(scenario: str, **figures) -> None:
    """Append one scenario's figures to $AUTOEMBED_CHAOS_REPORT (JSON lines), when set."""
    path = os.environ.get("AUTOEMBED_CHAOS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"scenario": scenario, "scale": SCALE, **figures}, default=str) + "\n")


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns something truthy (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def md5_uuid(text: str | None) -> uuid.UUID | None:
    """PostgreSQL's md5(text)::uuid, the content hash autoembed guards writes with."""
    return None if text is None else uuid.UUID(hashlib.md5(text.encode("utf-8")).hexdigest())


_embedders: dict[int, HashingEmbedder] = {}


def expected(text: str, dims: int = DIMS) -> np.ndarray:
    """The hashing embedder's (and the OpenAI stub's) vector for `text`."""
    embedder = _embedders.setdefault(dims, HashingEmbedder("reliability", dims))
    return embedder.embed([text])[0]


# -- the write audit ---------------------------------------------------------------------------------
AUDIT_SQL = """
create table if not exists public.reliability_audit (
    seq bigint generated always as identity primary key,
    tbl regclass not null,
    id text not null,
    kind text not null,              -- 'content' (inserted or content changed), 'write' (a vector written)
                                     -- or 'registered' (id '*': the table watched anew, or with another
                                     -- model or content)
    app text not null default current_setting('application_name'),
    at timestamptz not null default clock_timestamp()
);
create or replace function public.reliability_audit() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin  -- a partition's rows are logged as the partitioned table's
    insert into public.reliability_audit (tbl, id, kind)
    values (coalesce(pg_partition_root(tg_relid), tg_relid), new.id::text, tg_argv[0]);
    return null;
end $$;
create or replace function public.reliability_registered() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
    insert into public.reliability_audit (tbl, id, kind) values (new.source, '*', 'registered');
    return null;
end $$;
create or replace trigger reliability_registered after insert on autoembed.sources for each row
execute function public.reliability_registered();
create or replace trigger reliability_reregistered after update on autoembed.sources for each row
when ((old.embedder, old.model, old.content_column, old.content_function::text)
      is distinct from (new.embedder, new.model, new.content_column, new.content_function::text))
execute function public.reliability_registered();
"""


def install_audit(conn: psycopg.Connection, table: str = "docs", content: str = "body") -> None:
    """Log content changes and vector writes of `table` (keyed by its `id`) in reliability_audit."""
    conn.execute(AUDIT_SQL)
    t, c = sql.Identifier(table), sql.Identifier(content)
    for stmt in (
        "create trigger reliability_audit_insert after insert on {t} for each row "
        "execute function public.reliability_audit('content')",
        "create trigger reliability_audit_content after update of {c} on {t} for each row "
        "when (old.{c} is distinct from new.{c}) execute function public.reliability_audit('content')",
        "create trigger reliability_audit_write after update of embedding on {t} for each row "
        "when (new.embedding is not null) execute function public.reliability_audit('write')",
    ):
        conn.execute(sql.SQL(stmt).format(t=t, c=c))


def slow_writeback(conn: psycopg.Connection, table: str = "docs", seconds: float = 0.003) -> None:
    """Make every vector write of `table` sleep `seconds` per row: a wide write-back window to kill in."""
    conn.execute(sql.SQL(
        "create or replace function public.reliability_slow() returns trigger language plpgsql "
        "set search_path = pg_catalog, pg_temp as $$ "
        "begin perform pg_sleep({s}); return new; end $$").format(s=sql.Literal(seconds)))
    conn.execute(sql.SQL("create trigger reliability_slow before update of embedding on {} for each row "
                         "execute function public.reliability_slow()").format(sql.Identifier(table)))


def duplicate_writes(conn: psycopg.Connection, table: str = "docs") -> int:
    """Vector writes of a row that followed another write of it with no content change and no new
    registration of the table between."""
    return conn.execute(
        """select count(*) from (
               select seq, kind, lag(kind) over w as previous, lag(seq) over w as previous_seq
               from reliability_audit where tbl = %(t)s::regclass and kind <> 'registered'
               window w as (partition by id order by seq)) e
           where kind = 'write' and previous = 'write'
             and not exists (select from reliability_audit r where r.tbl = %(t)s::regclass and r.kind = 'registered'
                             and r.seq between e.previous_seq and e.seq)""", {"t": table}).fetchone()[0]


def writes_by_app(conn: psycopg.Connection, table: str = "docs") -> dict[str, int]:
    """Vector writes per application_name (each worker subprocess connects under its own name)."""
    return dict(conn.execute("select app, count(*) from reliability_audit where tbl = %s::regclass "
                             "and kind = 'write' group by app", (table,)).fetchall())


# -- the invariant -----------------------------------------------------------------------------------
@dataclass
class Verdict:
    """The end state of one watched table; `ok` when nothing is lost, stale or left over."""

    rows: int = 0
    embedded: int = 0
    failed: int = 0
    lost: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    bad_state: list[str] = field(default_factory=list)  # vector right, row_state hash wrong
    orphans: list[str] = field(default_factory=list)  # keys no row has, still in row_state or failures
    duplicate_writes: int = 0
    queue_left: int = 0
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)  # pk -> (class, message)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.stale or self.bad_state or self.orphans or self.duplicate_writes
                    or self.queue_left)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("failures")
        for key in ("lost", "stale", "bad_state", "orphans"):
            d[key] = len(d[key])
        return d

    def __str__(self) -> str:
        sample = {k: getattr(self, k)[:10] for k in ("lost", "stale", "bad_state", "orphans") if getattr(self, k)}
        return f"{self.summary()} {sample}"


#: how far a stored vector may be from the embedding of its content: a halfvec holds 16-bit floats
TOLERANCE = {"vector": 1e-5, "halfvec": 1e-3}


def check(conn: psycopg.Connection, table: str = "docs", content_sql: str = "t.body", dims: int = DIMS,
          audited: bool = True) -> Verdict:
    """The invariant's figures for `table` (a watched table, or a partition of one: then its rows
    only); `content_sql` computes a row's content from alias `t`."""
    source_id, watched, vector_type = conn.execute(
        """select s.id, s.source::text, t.typname from autoembed.sources s
           join pg_attribute a on a.attrelid = s.source and a.attnum = s.embedding_attnum
           join pg_type t on t.oid = a.atttypid
           where s.source in (%(t)s::regclass, pg_partition_root(%(t)s::regclass))
           order by s.source = %(t)s::regclass desc limit 1""", {"t": table}).fetchone()
    rows = conn.execute(sql.SQL("select t.id::text, {}, t.embedding from {} t").format(
        sql.SQL(content_sql), sql.Identifier(table))).fetchall()
    state = dict(conn.execute("select pk, content_hash from autoembed.row_state where source_id = %s",
                              (source_id,)).fetchall())
    failures = {pk: (h, cls, msg) for pk, h, cls, msg in conn.execute(
        "select pk, content_hash, error_class, error_message from autoembed.failures where source_id = %s",
        (source_id,))}
    verdict = Verdict(rows=len(rows))
    for pk, text, embedding in rows:
        if embedding is not None:
            vector = embedding.to_numpy() if hasattr(embedding, "to_numpy") else np.asarray(embedding)
            if text is None or not np.allclose(vector, expected(text, dims), atol=TOLERANCE[vector_type]):
                verdict.stale.append(pk)
            elif state.get(pk) != md5_uuid(text):
                verdict.bad_state.append(pk)
            else:
                verdict.embedded += 1
            continue
        failure = failures.get(pk)
        if failure is not None and failure[0] == md5_uuid(text):
            verdict.failed += 1
            verdict.failures[pk] = failure[1:]
        else:
            verdict.lost.append(pk)
    keys = {pk for (pk,) in conn.execute(sql.SQL("select t.id::text from {} t").format(sql.SQL(watched)))}
    verdict.orphans = sorted((state.keys() | failures.keys()) - keys)
    verdict.queue_left = conn.execute("select count(*) from pgmq.q_autoembed_jobs").fetchone()[0]
    if audited:
        verdict.duplicate_writes = duplicate_writes(conn, watched)
    return verdict


def wait_settled(conn: psycopg.Connection, timeout: float, table: str = "docs",
                 workers: tuple["WorkerProcess", ...] = (), **kwargs) -> Verdict:
    """Wait until the queue is empty and no row is lost or stale (failed rows are settled too);
    fail showing the last verdict on timeout, or as soon as one of `workers` dies."""
    deadline = time.monotonic() + timeout
    while True:
        for worker in workers:
            worker.assert_alive()
        verdict = check(conn, table, **kwargs)
        if verdict.queue_left == 0 and not (verdict.lost or verdict.stale):
            return verdict
        if time.monotonic() > deadline:
            raise AssertionError(f"{table} did not settle within {timeout:g}s: {verdict}")
        time.sleep(0.1)


# -- worker subprocesses -----------------------------------------------------------------------------
class WorkerProcess:
    """`autoembed --dsn DSN worker` as a subprocess, connecting as application_name `name`.

    Restartable: every start appends to the same log file, so `log()` holds all its lives.
    """

    def __init__(self, dsn: str, name: str, log_path: Path, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), log_level: str = "INFO"):
        self.dsn = psycopg.conninfo.make_conninfo(dsn, application_name=name)
        self.name = name
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.args = args
        self.log_level = log_level
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> "WorkerProcess":
        assert self.process is None or self.process.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [AUTOEMBED, "--dsn", self.dsn, "--log-level", self.log_level, "worker", *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.starts += 1
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def assert_alive(self) -> None:
        """Fail, showing the end of its log, when it exited on its own."""
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"worker {self.name} exited with {self.process.returncode}:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        if self.running():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM (finish the batch in hand), SIGKILL if it does not exit in `timeout` s."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def activity(self, conn: psycopg.Connection) -> list[tuple[str, str]]:
        """(state, query) of this worker's database sessions."""
        return conn.execute("select state, query from pg_stat_activity where application_name = %s",
                            (self.name,)).fetchall()

    def writing_back(self, conn: psycopg.Connection) -> bool:
        """True while one of its sessions is executing autoembed.write_embeddings."""
        return any(state == "active" and "write_embeddings" in query for state, query in self.activity(conn))


def openai_env(stub, *, batch_size: int = 25, timeout: float = 2.0, **extra: object) -> dict[str, str]:
    """Environment for a worker subprocess embedding through the OpenAI stub."""
    env = {
        "AUTOEMBED_OPENAI_BASE_URL": stub.base_url,
        "OPENAI_API_KEY": "sk-test",
        "AUTOEMBED_OPENAI_TIMEOUT": str(timeout),
        "AUTOEMBED_OPENAI_BATCH_SIZE": str(batch_size),
        "AUTOEMBED_BATCH_SIZE": str(batch_size),
        "AUTOEMBED_POLL_INTERVAL": "0.5",
        "AUTOEMBED_VISIBILITY_TIMEOUT": "3",
        "AUTOEMBED_BACKOFF_BASE": "0.5",
        "AUTOEMBED_BACKOFF_MAX": "2",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


def ok_inputs(stub) -> int:
    """Texts the stub embedded successfully (inputs of its "ok" requests), probes included."""
    return sum(r.inputs for r in stub.request_log if r.outcome == "ok")


def answered_probes() -> int:
    """Probes this process's workers sent and got vectors for (autoembed/breaker.py): each is one
    input of the stub's "ok" requests that is no row's text."""
    return int(REGISTRY.get_sample_value("autoembed_embedder_probes_total", {"outcome": "answered"}) or 0)
