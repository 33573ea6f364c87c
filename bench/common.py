"""Shared plumbing of the benchmarks in bench/: a throwaway database, watched tables, texts,
workers (in-process or `autoembed worker` subprocesses), timing, memory sampling, reporting.

Every benchmark prints one JSON document and then a short table; each figure carries the
baseline it was measured against in the same run and their ratio, so figures from a noisy or
different machine still compare. `--out FILE` also writes the JSON to a file (bench/run_all.py
collects them into bench/RESULTS.md).

The database is a fresh PostgreSQL cluster in a temp dir (initdb + pg_ctl, as the `postgres`
user when run as root) on a free loopback port, migrated with the project's migrations, and
removed at the end. pg_cron's database is `postgres`, not the benchmark's, so the
every-minute sweep does not run inside a measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "bench"
OUT_DIR = BENCH_DIR / "out"
AUTOEMBED_BIN = REPO / ".venv" / "bin" / "autoembed"
BENCH_DB = "bench"
EXTRA_SQL: list[str] = []  # files run after the migrations in every BenchDatabase (--apply-sql)
LOCAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LOCAL_DIMS = 384

log = logging.getLogger("bench")

# Benchmarks reuse the tests' helpers (tests/support: the OpenAI stub, embedders); never copies.
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

# The benchmarks never download: the model comes from the packaged copy or the ONNX cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from autoembed import connections as ae_db  # noqa: E402  (after the environment above)
from autoembed.devdb import LocalCluster, free_port  # noqa: E402
from autoembed.embedders import EmbedderCache  # noqa: E402
from autoembed.embedders.base import Embedder  # noqa: E402
from autoembed.migrate import apply_migrations  # noqa: E402
from autoembed.settings import Settings  # noqa: E402


# -- texts ---------------------------------------------------------------------------------------
VOCABULARY = """
the a of to and in that is for it as with was on be by at this from or have an they which
one you were her all she there would their we him been has when who will more no if out so
said what up its about into than them can only other new some could time these two may then
do first any my now such like our over man me even most made after also did many before must
through back years where much your way well down should because each just those people how
too little state good very make world still own see men work long get here between both life
being under never day same another know while last might us great old year off come since
against go came right used take three water bread flour oven bake recipe dough yeast salt car
engine brake tire drive road tax income return refund deadline invoice account bank payment
database query index vector search model train data server network cloud price market city
river mountain weather rain summer winter school student teacher book library music song game
team player match doctor patient hospital medicine garden flower tree coffee tea breakfast
""".split()

KOREAN = [
    "빵을 굽는 방법을 알려 주세요.",
    "밀가루, 물, 효모와 소금을 섞어 반죽을 만든 뒤 오븐에서 굽습니다.",
    "자동차 엔진 오일은 얼마나 자주 교체해야 하나요?",
    "올해 종합소득세 신고 기한은 5월 31일입니다.",
    "데이터베이스에 벡터 인덱스를 만들면 검색이 빨라집니다.",
    "오늘 서울은 비가 오고 바람이 많이 붑니다.",
    "도서관에서 책을 빌리려면 회원증이 필요합니다.",
    "커피 한 잔과 토스트로 아침을 먹었어요.",
    "환자는 병원에서 의사의 진료를 받았습니다.",
    "주말에 친구들과 산에 올라갔다가 강가에서 쉬었다.",
]

#: words per English text (≈18 and ≈160 tokens for all-MiniLM-L6-v2's tokenizer);
#: Korean sentences per Korean text (one sentence ≈ 15-25 tokens)
WORDS = {"short": 14, "medium": 155}
KOREAN_SENTENCES = {"short": 1, "medium": 8}
KOREAN_EVERY = 10  # every 10th text is Korean


def make_texts(kind: str, count: int, seed: int = 0) -> list[str]:
    """`count` deterministic texts of about the length `kind` names ('short' or 'medium');
    every KOREAN_EVERY-th is Korean. The same (kind, count, seed) always gives the same list."""
    if kind not in WORDS:
        raise ValueError(f"kind must be one of {', '.join(WORDS)}, got {kind!r}")
    rng = random.Random(f"{kind}-{seed}")
    n = WORDS[kind]
    texts = []
    for i in range(count):
        if i % KOREAN_EVERY == KOREAN_EVERY - 1:
            sentences = [rng.choice(KOREAN) for _ in range(KOREAN_SENTENCES[kind])]
            texts.append(" ".join(sentences) + f" ({i})")
        else:
            words = [rng.choice(VOCABULARY) for _ in range(rng.randint(int(n * 0.85), int(n * 1.15)))]
            texts.append(" ".join(words).capitalize() + ".")
    return texts


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- the database --------------------------------------------------------------------------------
class BenchDatabase:
    """A throwaway, migrated PostgreSQL cluster (context manager)."""

    def __init__(self, fsync: bool = True, keep: bool = False, conf: dict[str, str] | None = None,
                 extra_sql: Sequence[str] = ()):
        self.fsync = fsync
        self.keep = keep
        self.conf = dict(conf or {})
        self.extra_sql = list(extra_sql or EXTRA_SQL)
        self.directory = Path(tempfile.mkdtemp(prefix="autoembed-bench-"))
        self.cluster = LocalCluster(self.directory, free_port(), database=BENCH_DB, cron_database="postgres")

    @property
    def dsn(self) -> str:
        return self.cluster.url()

    def dsn_for(self, application_name: str) -> str:
        """The DSN with an application_name, so a client's backends can be found in pg_stat_activity."""
        return psycopg.conninfo.make_conninfo(self.dsn, application_name=application_name)

    def __enter__(self) -> "BenchDatabase":
        previous = os.environ.get("AUTOEMBED_DEV_DB_FSYNC")
        if not self.fsync:
            os.environ["AUTOEMBED_DEV_DB_FSYNC"] = "off"
        try:
            self.cluster.init()
            if self.conf:
                with open(self.cluster.data_dir / "postgresql.auto.conf", "a") as f:
                    f.writelines(f"{name} = '{value}'\n" for name, value in self.conf.items())
            self.cluster.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        finally:
            if previous is None:
                os.environ.pop("AUTOEMBED_DEV_DB_FSYNC", None)
            else:
                os.environ["AUTOEMBED_DEV_DB_FSYNC"] = previous
        try:
            with ae_db.connect(self.dsn) as conn:
                apply_migrations(conn, REPO / "db" / "migrations")
            for path in self.extra_sql:  # --apply-sql: try a candidate fix without a migration
                with ae_db.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(Path(path).read_text(encoding="utf-8"))
                note(f"applied {path}")
        except BaseException:
            self.keep = False
            self.__exit__(None, None, None)  # __exit__ does not run when __enter__ raises
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.keep:
            print(f"# kept the database: {self.dsn} (data in {self.directory})", file=sys.stderr)
            return
        with contextlib.suppress(Exception):
            self.cluster.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def connect(self, autocommit: bool = True) -> psycopg.Connection:
        return ae_db.connect(self.dsn, autocommit=autocommit)

    def server_log_count(self, needle: str) -> int:
        """How often `needle` occurs in the server's log so far (e.g. 'deadlock detected')."""
        try:
            return self.cluster.log_file.read_text(errors="replace").count(needle)
        except OSError:
            return 0

    def server_version(self) -> str:
        with self.connect() as conn:
            return conn.execute("select version()").fetchone()[0]


def create_table(conn: psycopg.Connection, table: str, dims: int, *, watched: bool = True,
                 embedder: str = "hashing", model: str = "bench-hashing", backfill: bool = False) -> None:
    """`table` (id bigint identity pk, body text, views int, embedding vector(dims)), watched on body."""
    conn.execute(sql.SQL(
        "create table {} (id bigint generated always as identity primary key, body text, "
        "views int not null default 0, embedding vector({}))"
    ).format(sql.Identifier(table), sql.Literal(dims)))
    if watched:
        watch(conn, table, embedder=embedder, model=model, backfill=backfill)


def watch(conn: psycopg.Connection, table: str, *, embedder: str, model: str, backfill: bool = False) -> int:
    return conn.execute(
        "select autoembed.watch(%s::regclass, 'body', embedder => %s, model => %s, backfill => %s)",
        (table, embedder, model, backfill),
    ).fetchone()[0]


def insert_texts(conn: psycopg.Connection, table: str, texts: Sequence[str]) -> None:
    """One INSERT statement for all texts (so one statement trigger, one send_batch), committed."""
    with conn.transaction():
        conn.execute(sql.SQL("insert into {} (body) select unnest(%s::text[])").format(sql.Identifier(table)),
                     (list(texts),))


def wait_drained(conn: psycopg.Connection, table: str, rows: int, timeout: float, interval: float = 0.02) -> float:
    """Wait until the job queue is empty (a job is deleted in the transaction that writes its
    vector), then check that `rows` rows of `table` have a vector. Cheaper to poll than counting
    vectors, which scans the table. Returns the monotonic time the queue was first seen empty."""
    def drained() -> bool:
        return conn.execute("select not exists (select from pgmq.q_autoembed_jobs)", prepare=True).fetchone()[0]

    at = wait_until(drained, timeout, interval, f"the queue to empty ({table})")
    done = count_embedded(conn, table)
    if done < rows:
        failure = conn.execute("select error_class, error_message from autoembed.failures limit 1").fetchone()
        raise RuntimeError(f"{table}: queue empty but only {done} of {rows} rows embedded"
                           + (f"; a failure: {failure[0]}: {failure[1]}" if failure else ""))
    return at


def count_embedded(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(sql.SQL("select count(embedding) from {}").format(sql.Identifier(table))).fetchone()[0]


def queue_length(conn: psycopg.Connection) -> int:
    return conn.execute("select count(*) from pgmq.q_autoembed_jobs").fetchone()[0]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition") -> float:
    """Poll `predicate` until true; returns the monotonic time it first held. TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_embedded(conn: psycopg.Connection, table: str, rows: int, timeout: float, interval: float = 0.05) -> float:
    """Wait until `rows` rows of `table` have a vector; RuntimeError as soon as any row failed."""
    def done() -> bool:
        if count_embedded(conn, table) >= rows:
            return True
        failure = conn.execute("select error_class, error_message from autoembed.failures limit 1").fetchone()
        if failure:
            raise RuntimeError(f"rows failed while waiting for {table}: {failure[0]}: {failure[1]}")
        return False

    return wait_until(done, timeout, interval, f"{rows} embedded rows in {table}")


# -- workers -------------------------------------------------------------------------------------
class PrebuiltEmbedders(EmbedderCache):
    """Hands the worker an embedder built (and warmed) by the benchmark, for every source, so the
    worker and the raw baseline use the very same object."""

    def __init__(self, settings: Settings, embedder: Embedder):
        super().__init__(settings)
        self.embedder = embedder

    def get(self, kind: str, model: str, dimensions: int) -> Embedder:
        return self.embedder

    def wanted_batch_rows(self) -> int | None:
        return self.embedder.wanted_batch_rows()

    def close(self) -> None:  # the benchmark owns the embedder
        pass


def drain_in_process(dsn: str, settings: Settings, embedder: Embedder) -> float:
    """Run an in-process Worker until the queue is empty; returns the seconds it took."""
    from autoembed.worker import Worker

    worker = Worker(settings, dsn, PrebuiltEmbedders(settings, embedder))
    try:
        started = time.perf_counter()
        worker.run(drain=True)
        return time.perf_counter() - started
    finally:
        worker.close()


def worker_env(**settings: Any) -> dict[str, str]:
    """The environment for `autoembed worker` subprocesses: ours plus AUTOEMBED_* settings
    (keyword `batch_size=50` becomes AUTOEMBED_BATCH_SIZE=50). The OpenAI endpoint is always a
    loopback one: the benchmarks never call out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOEMBED_") and k != "OPENAI_API_KEY"}
    env["AUTOEMBED_LOG_LEVEL"] = os.environ.get("AUTOEMBED_LOG_LEVEL", "WARNING")
    env["AUTOEMBED_OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"  # discard port: refused at once
    for name, value in settings.items():
        if value is not None:
            env[f"AUTOEMBED_{name.upper()}"] = str(value)
    if not env["AUTOEMBED_OPENAI_BASE_URL"].startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise ValueError(f"benchmarks only use loopback endpoints, got {env['AUTOEMBED_OPENAI_BASE_URL']}")
    return env


@dataclass
class WorkerProcess:
    """One `autoembed worker` subprocess."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    max_rss_kb: int | None = None  # from wait4 once it has exited: the kernel's own peak RSS
    sampled: "RssSampler | None" = None

    def alive(self) -> bool:
        """True while the process runs. Does not reap it (WNOWAIT), so wait() still gets its rusage."""
        if self.popen.returncode is not None:
            return False
        try:
            return os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (finish the batch in hand), wait; SIGKILL after `timeout`. Returns the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit, collecting the child's peak RSS (ru_maxrss) with wait4."""
        if self.popen.returncode is not None:
            return self.popen.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                pid, status, usage = os.wait4(self.popen.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (Popen.poll): the exit status is there
                self.popen.wait()
                return self.popen.returncode
            if pid:
                self.max_rss_kb = usage.ru_maxrss
                self.popen.returncode = os.waitstatus_to_exitcode(status)
                return self.popen.returncode
            if deadline is not None and time.monotonic() > deadline:
                self.popen.kill()
                deadline = None
            time.sleep(0.02)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class WorkerPool:
    """N `autoembed --dsn DSN worker` subprocesses; each one's connections carry the
    application_name `bench-worker-<i>` so they can be found in pg_stat_activity."""

    def __init__(self, bench_db: BenchDatabase, count: int, env: dict[str, str], args: Sequence[str] = (),
                 prefix: str = "bench-worker"):
        self.bench_db = bench_db
        self.count = count
        self.env = env
        self.args = list(args)
        self.prefix = prefix
        self.logs = Path(tempfile.mkdtemp(prefix="autoembed-bench-logs-"))
        self.workers: list[WorkerProcess] = []

    def start(self) -> "WorkerPool":
        for i in range(self.count):
            name = f"{self.prefix}-{i}"
            log_path = self.logs / f"{name}.log"
            with open(log_path, "wb") as log_file:
                popen = subprocess.Popen(
                    [str(AUTOEMBED_BIN), "--dsn", self.bench_db.dsn_for(name), "worker", *self.args],
                    env=self.env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            self.workers.append(WorkerProcess(name, popen, log_path))
        return self

    def wait_listening(self, conn: psycopg.Connection, timeout: float = 180.0) -> float:
        """Wait until every worker has reached its idle wait (LISTEN issued: sources checked,
        embedder built); returns the seconds it took."""
        started = time.monotonic()
        names = [w.name for w in self.workers]

        def ready() -> bool:
            for w in self.workers:
                if not w.alive():
                    raise RuntimeError(f"worker {w.name} exited with {w.wait()}:\n{w.log_tail()}")
            n = conn.execute(
                "select count(distinct application_name) from pg_stat_activity "
                "where application_name = any(%s) and query ilike 'listen%%'", (names,)).fetchone()[0]
            return n == len(names)

        wait_until(ready, timeout, 0.1, f"{len(names)} workers to listen")
        return time.monotonic() - started

    def count_in_logs(self, needle: str) -> int:
        """How often `needle` occurs in the workers' logs so far."""
        return sum(w.log_tail(10**9).count(needle) for w in self.workers)

    def stop(self) -> list[int]:
        for w in self.workers:
            if w.alive():
                w.popen.send_signal(signal.SIGTERM)
        return [w.wait(30) for w in self.workers]

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.logs, ignore_errors=True)

    def __enter__(self) -> "WorkerPool":
        return self.start()

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            for w in self.workers:
                tail = w.log_tail(1500)
                if tail:
                    print(f"# --- log of {w.name} ---\n{tail}", file=sys.stderr)
        self.close()


# -- memory --------------------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem (kB) of a process; {} once it is gone."""
    wanted = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in wanted:
                    out[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    return out


class RssSampler:
    """Samples the memory of a set of processes every `interval` s on a thread, keeping the peak of
    each field per process and a coarse time series. `pids()` is called each round, so backends
    that appear later (found through pg_stat_activity) are picked up."""

    def __init__(self, pids: Callable[[], dict[str, int]], interval: float = 0.05, series_every: float = 1.0):
        self._pids = pids
        self.interval = interval
        self.series_every = series_every
        self.peaks: dict[str, dict[str, int]] = {}
        self.series: list[tuple[float, dict[str, int]]] = []  # (seconds, label -> VmRSS kB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._started = 0.0

    def _run(self) -> None:
        next_series = 0.0
        while not self._stop.is_set():
            try:
                pids = self._pids()
            except Exception:  # a query on a busy database may fail: try again next round
                pids = {}
            now = time.monotonic() - self._started
            current = {}
            for label, pid in pids.items():
                status = proc_status(pid)
                if not status:
                    continue
                peak = self.peaks.setdefault(label, {})
                for key, value in status.items():
                    peak[key] = max(peak.get(key, 0), value)
                current[label] = status.get("VmRSS", 0)
            if now >= next_series:
                self.series.append((round(now, 2), current))
                next_series = now + self.series_every
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def backend_pids(conn: psycopg.Connection, application_names: Iterable[str]) -> dict[str, int]:
    """label -> pid of the server backends of the given application names (label `name#k`)."""
    rows = conn.execute(
        "select application_name, pid from pg_stat_activity where application_name = any(%s) order by backend_start",
        (list(application_names),)).fetchall()
    out, seen = {}, {}
    for name, pid in rows:
        k = seen[name] = seen.get(name, 0) + 1
        out[f"{name}/backend{k}"] = pid
    return out


# -- timing --------------------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def timed(fn: Callable[[], Any]) -> float:
    """Seconds `fn()` took."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def raw_embed_rate(embedder: Embedder, texts: Sequence[str], batch_size: int) -> float:
    """Texts/s of `embedder.embed` over `texts` in calls of `batch_size` texts (what the worker does)."""
    started = time.perf_counter()
    for chunk in chunks(texts, batch_size):
        embedder.embed(list(chunk))
    return len(texts) / (time.perf_counter() - started)


# -- machine facts -------------------------------------------------------------------------------
def machine_facts(pg_version: str | None = None) -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "postgres": pg_version,
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_at_start": os.getloadavg()[0],
    }


# -- reporting -----------------------------------------------------------------------------------
@dataclass
class Figure:
    """One measured figure, its same-run baseline, and the target it is judged against."""

    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str | None = None
    ratio: float | None = None
    target: str | None = None  # human-readable, e.g. "ratio >= 0.9"
    passed: bool | None = None
    note: str = ""


@dataclass
class Report:
    """Collects figures and details; prints JSON, then a table."""

    bench: str
    params: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def add(self, name: str, value: float | None, unit: str, *, baseline: float | None = None,
            baseline_name: str | None = None, ratio: float | None = None, target: str | None = None,
            passed: bool | None = None, note: str = "") -> Figure:
        if ratio is None and baseline and value is not None:
            ratio = value / baseline
        figure = Figure(name, value, unit, baseline, baseline_name, ratio, target, passed, note)
        self.figures.append(figure)
        return figure

    def as_dict(self) -> dict[str, Any]:
        machine = dict(self.machine)
        machine["loadavg_at_end"] = os.getloadavg()[0]
        return {
            "bench": self.bench,
            "params": self.params,
            "machine": machine,
            "seconds": round(time.monotonic() - self.started, 1),
            "figures": [_rounded(f.__dict__) for f in self.figures],
            "details": self.details,
        }

    def emit(self, out: str | None) -> dict[str, Any]:
        """Print JSON then the table to stdout; write the JSON to `out` if given."""
        data = self.as_dict()
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
        print(text)
        if out:
            path = Path(out)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")
        print()
        print(format_table(data))
        return data


def _rounded(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:
        return "nan"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def format_table(data: dict[str, Any]) -> str:
    """A fixed-width table of a report's figures."""
    rows = [("figure", "value", "baseline", "ratio", "target", "pass")]
    for f in data["figures"]:
        verdict = "-" if f["passed"] is None else ("PASS" if f["passed"] else "FAIL")
        base = "-" if f["baseline"] is None else f"{fmt(f['baseline'], f['unit'])} ({f['baseline_name']})"
        rows.append((f["name"], fmt(f["value"], f["unit"]), base,
                     "-" if f["ratio"] is None else f"{f['ratio']:.3f}", f["target"] or "-", verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"== {data['bench']} ({data['seconds']} s, load {data['machine'].get('loadavg_at_start', 0):.2f}"
             f" -> {data['machine'].get('loadavg_at_end', 0):.2f}) =="]
    for i, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[k]) for k, cell in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"- {f['name']}: {f['note']}" for f in data["figures"] if f.get("note")]
    return "\n".join(lines + notes)


# -- command line --------------------------------------------------------------------------------
def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", help="also write the JSON report to this file")
    parser.add_argument("--quick", action="store_true",
                        help="small scale (seconds): checks that the benchmark runs, the figures mean little")
    parser.add_argument("--fsync-off", action="store_true", help="run the throwaway cluster with fsync = off")
    parser.add_argument("--keep-db", action="store_true", help="leave the throwaway cluster running at the end")
    parser.add_argument("--apply-sql", action=_ApplySql, default=[], metavar="FILE",
                        help="run this SQL file after the migrations (repeatable): measure a candidate fix")
    return parser


class _ApplySql(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        files = list(getattr(namespace, self.dest) or []) + [values]
        setattr(namespace, self.dest, files)
        EXTRA_SQL[:] = files


def apply_quick(args: argparse.Namespace, quick: dict[str, Any]) -> None:
    """With --quick, replace the options named in `quick` unless they were given explicitly."""
    if not args.quick:
        return
    given = {a.split("=")[0] for a in sys.argv[1:] if a.startswith("--")}
    for name, value in quick.items():
        if f"--{name.replace('_', '-')}" not in given:
            setattr(args, name, value)


def quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for name in ("pgmq", "autoembed", "sentence_transformers", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def note(message: str) -> None:
    """Progress on stderr (stdout carries the JSON and the table)."""
    print(f"# {message}", file=sys.stderr, flush=True)
