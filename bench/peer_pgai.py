"""autoembed against a peer: pgai's vectorizer worker (PyPI `pgai` 0.12.1), same table, texts and endpoint.

    .venv/bin/python bench/peer_pgai.py [--rows 10000] [--probes 20] [--spacing 0.2] [--latency-ms 200]
        [--batch-size N] [--pgai-poll 1] [--quick] [--out FILE]

Both run against one OpenAIStub (an OpenAI-compatible server on 127.0.0.1 in this process, every
request answered after a fixed --latency-ms, 200 by default: a slow remote API, where how many requests
a worker keeps in flight decides its throughput) with model text-embedding-3-small at 384 dimensions,
one worker process each, in two databases of one throwaway cluster, one after the other:

- throughput: the worker runs idle; --rows short texts are inserted in one statement; rows/s until
  every row has its vector (so pgai's wake-up by polling is included once);
- latency: --probes single-row inserts, each --spacing s plus a random 0..--pgai-poll s after the
  previous vector; from the insert's commit to the commit of the vector's write, both from the
  server's commit timestamps.

autoembed: a watched table (statement triggers -> pgmq), `autoembed worker`, woken by NOTIFY.
pgai: `pgai install`, then `ai.create_vectorizer(..., loading => ai.loading_column('body'),
embedding => ai.embedding_openai('text-embedding-3-small', 384, base_url => <stub>),
chunking => ai.chunking_none(), destination => ai.destination_column('embedding'), ...)`, and
`pgai vectorizer worker --poll-interval <--pgai-poll>s`. pgai polls (no NOTIFY); its poll interval is
whole seconds (it truncates to int), so 1 s is the shortest that does not spin.

Batch sizes are each tool's default (autoembed: 100 jobs per batch, 64 texts per request;
pgai: 50 rows per batch and request) unless --batch-size sets both.

pgai runs from its own virtualenv, bench/.venv-pgai, created on first use: `pgai==0.12.1` plus the
libraries its vectorizer worker imports for column loading and the OpenAI embedder. Not the
`pgai[vectorizer-worker]` extra: that also pulls docling (PDF parsing) and with it torch and
several GB of CUDA wheels that an OpenAI-only worker never imports. If pgai cannot be installed
or run, the script says exactly why and still measures autoembed.

Default scale ≈ 2 minutes (first run: + the pgai install); --quick ≈ 40 s.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import psycopg
from common import note, percentile, sql

from support.openai_stub import OpenAIStub

PGAI_VERSION = "0.12.1"
#: an endpoint this slow (ms per request) is where issue 13 asks for >= SLOW_TARGET x pgai's throughput
SLOW_ENDPOINT_MS = 100.0
SLOW_TARGET = 5.0
PGAI_VENV = common.BENCH_DIR / ".venv-pgai"
# What pgai 0.12.1's vectorizer worker imports for column loading + OpenAI embeddings (read from
# its source: pgai/vectorizer/*.py); version bounds are the ones its vectorizer-worker extra sets.
PGAI_REQUIREMENTS = [
    f"pgai=={PGAI_VERSION}", "openai>=1.44,<2.0", "tiktoken>=0.7,<1.0", "ijson>=3.3.0", "pgvector>=0.3,<1.0",
    "langchain-text-splitters>=0.2,<1.0", "filetype==1.2.0", "exceptiongroup>=1.0,<2.0", "tokenizers", "numpy",
]
MODEL = "text-embedding-3-small"
API_KEY = "sk-bench-not-a-real-key"
PEER_DB = "peer_pgai"


class PeerUnavailable(Exception):
    """pgai could not be installed or run here; the message says why."""


def ensure_pgai_venv() -> Path:
    """bench/.venv-pgai/bin/pgai, creating the virtualenv when missing."""
    pgai = PGAI_VENV / "bin" / "pgai"
    python = PGAI_VENV / "bin" / "python"
    if not pgai.exists():
        note(f"creating {PGAI_VENV} with pgai {PGAI_VERSION} (one time)")
        base = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable
        result = subprocess.run([base, "-m", "venv", str(PGAI_VENV)], capture_output=True, text=True)
        if result.returncode != 0:
            raise PeerUnavailable(f"`python3 -m venv {PGAI_VENV}` failed: {result.stderr.strip()[-1500:]}")
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                 *PGAI_REQUIREMENTS], capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join(line for line in (result.stdout + result.stderr).splitlines()
                             if not line.startswith("WARNING: Location"))[-2000:]
            shutil.rmtree(PGAI_VENV, ignore_errors=True)
            raise PeerUnavailable(f"pip install {' '.join(PGAI_REQUIREMENTS)} failed:\n{tail}")
    check = subprocess.run([str(python), "-c", "import pgai, pgai.vectorizer; print(pgai.__version__)"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise PeerUnavailable(f"pgai does not import in {PGAI_VENV}: {check.stderr.strip()[-1500:]}")
    if check.stdout.strip() != PGAI_VERSION:
        raise PeerUnavailable(f"{PGAI_VENV} holds pgai {check.stdout.strip()}, not {PGAI_VERSION}: delete it")
    return pgai


def probe_latency(dsn: str, table: str, count: int, spacing: float, jitter: float,
                  timeout: float = 30.0) -> list[float]:
    """Single-row inserts; seconds from the insert's commit to the commit of its vector's write
    (track_commit_timestamp), waiting for each before the next. Each insert comes `spacing` s
    plus a seeded random 0..`jitter` s after the previous vector: without the jitter, inserts
    would fall at the same phase of a polling worker's cycle every time."""
    texts = common.make_texts("short", count, seed=11)
    gaps = random.Random(5)
    ident = sql.Identifier(table)
    insert = sql.SQL("insert into {} (body) values (%s) returning id, xmin").format(ident)
    check = sql.SQL("select embedding is not null from {} where id = %s").format(ident)
    stamps = sql.SQL(
        "select extract(epoch from pg_xact_commit_timestamp(t.xmin) - pg_xact_commit_timestamp(%s::text::xid)) "
        "from {} t where t.id = %s").format(ident)
    out = []
    with psycopg.connect(dsn) as writer, psycopg.connect(dsn, autocommit=True) as reader:
        for text in texts:
            time.sleep(spacing + gaps.uniform(0, jitter))
            row_id, xid = writer.execute(insert, (text,)).fetchone()
            writer.commit()
            deadline = time.monotonic() + timeout
            while not reader.execute(check, (row_id,), prepare=True).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"row {row_id} of {table} got no vector within {timeout:.0f}s")
                time.sleep(0.005)
            out.append(float(reader.execute(stamps, (str(xid), row_id)).fetchone()[0]))
    return out


def throughput(dsn: str, table: str, texts: list[str], timeout: float) -> dict:
    """Insert all texts in one statement (worker already running); rows/s until all have vectors,
    from the insert's commit timestamp to the last vector write's."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        ident = sql.Identifier(table)
        with conn.transaction():
            xid = conn.execute(sql.SQL("insert into {} (body) select unnest(%s::text[]) returning xmin")
                               .format(ident), (texts,)).fetchone()[0]
        started = time.monotonic()
        common.wait_until(
            lambda: conn.execute(sql.SQL("select count(embedding) from {}").format(ident)).fetchone()[0] >= len(texts),
            timeout, 0.1, f"{len(texts)} vectors in {table}")
        wall = time.monotonic() - started
        first, last, inserted = conn.execute(sql.SQL(
            "select extract(epoch from min(pg_xact_commit_timestamp(xmin))), "
            "extract(epoch from max(pg_xact_commit_timestamp(xmin))), "
            "extract(epoch from pg_xact_commit_timestamp(%s::text::xid)) from {}").format(ident),
            (str(xid),)).fetchone()
    first, last, inserted = float(first), float(last), float(inserted)
    return {"rows": len(texts), "rows_per_s": len(texts) / (last - inserted), "seconds": last - inserted,
            "first_write_after_s": first - inserted, "processing_span_s": last - first, "wall_s": wall}


# -- autoembed -------------------------------------------------------------------------------------
def run_autoembed(bench_db: common.BenchDatabase, stub: OpenAIStub, args, texts: list[str]) -> dict:
    with bench_db.connect() as conn:
        common.create_table(conn, "ae_tput", common.LOCAL_DIMS, embedder="openai", model=MODEL)
        common.create_table(conn, "ae_lat", common.LOCAL_DIMS, embedder="openai", model=MODEL)
        settings = {"openai_base_url": stub.base_url, "openai_api_key": API_KEY, "poll_interval": 5}
        if args.batch_size:
            settings.update(batch_size=args.batch_size, openai_batch_size=args.batch_size)
        with common.WorkerPool(bench_db, 1, common.worker_env(**settings), prefix="bench-peer-ae") as pool:
            pool.wait_listening(conn)
            stub.reset()
            result = throughput(bench_db.dsn, "ae_tput", texts, timeout=600)
            result["requests"] = len(stub.requests)
            note(f"autoembed: {result['rows_per_s']:,.0f} rows/s ({result['requests']} requests)")
            result["latency_s"] = probe_latency(bench_db.dsn, "ae_lat", args.probes, args.spacing, args.pgai_poll)
            note(f"autoembed: p50 latency {percentile(result['latency_s'], 50) * 1000:.1f} ms")
        return result


# -- pgai ------------------------------------------------------------------------------------------
def run_pgai(bench_db: common.BenchDatabase, stub: OpenAIStub, args, texts: list[str]) -> dict:
    pgai = ensure_pgai_venv()
    bench_db.cluster.create_database(PEER_DB)
    dsn = bench_db.cluster.url(PEER_DB)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOEMBED_", "OPENAI_"))}
    env.update(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=stub.base_url, PYTHONUNBUFFERED="1")
    # pgai ships tiktoken's encodings (pgai/vectorizer/tiktoken_cache) and names the folder in
    # vectorizer.TIKTOKEN_CACHE_DIR, but 0.12.1 never exports it: without this, the worker's first
    # batch for a text-embedding-3 model downloads cl100k_base from the internet (and fails here).
    caches = sorted(PGAI_VENV.glob("lib/python*/site-packages/pgai/vectorizer/tiktoken_cache"))
    if not caches:
        raise PeerUnavailable(f"no pgai/vectorizer/tiktoken_cache under {PGAI_VENV}")
    env["TIKTOKEN_CACHE_DIR"] = str(caches[0])
    result = subprocess.run([str(pgai), "install", "-d", dsn], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise PeerUnavailable(f"`pgai install -d {dsn}` failed ({result.returncode}):\n"
                              f"{(result.stdout + result.stderr).strip()[-2000:]}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create extension if not exists vector")
        ids = {}
        for table in ("pg_tput", "pg_lat"):
            conn.execute(sql.SQL(
                "create table {} (id bigint generated always as identity primary key, body text, "
                "views int not null default 0, embedding vector({}))").format(
                    sql.Identifier(table), sql.Literal(common.LOCAL_DIMS)))
            processing = ("ai.processing_default(batch_size => %(batch)s)" if args.batch_size
                          else "ai.processing_default()")
            ids[table] = conn.execute(
                "select ai.create_vectorizer(%(table)s::regclass, name => %(name)s::text, "
                "loading => ai.loading_column('body'), "
                "embedding => ai.embedding_openai(%(model)s, %(dims)s, api_key_name => 'OPENAI_API_KEY', "
                "                                 base_url => %(base_url)s), "
                "chunking => ai.chunking_none(), destination => ai.destination_column('embedding'), "
                "formatting => ai.formatting_python_template('$chunk'), indexing => ai.indexing_none(), "
                f"scheduling => ai.scheduling_none(), processing => {processing}, enqueue_existing => false)",
                {"table": table, "name": f"bench_{table}", "model": MODEL, "dims": common.LOCAL_DIMS, "base_url": stub.base_url,
                 "batch": args.batch_size}).fetchone()[0]
        version = conn.execute("select ai._worker_version()").fetchone() if conn.execute(
            "select to_regprocedure('ai._worker_version()') is not null").fetchone()[0] else None

    def start_worker(vectorizer_id: int) -> tuple[subprocess.Popen, Path]:
        log = Path(tempfile.mkstemp(prefix="pgai-worker-", suffix=".log")[1])
        with open(log, "wb") as f:
            popen = subprocess.Popen(
                [str(pgai), "vectorizer", "worker", "-d", dsn, "-i", str(vectorizer_id),
                 "--poll-interval", f"{args.pgai_poll}s", "--log-level", "warn"],
                env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return popen, log

    def stop_worker(popen: subprocess.Popen, log: Path) -> None:
        if popen.poll() is None:
            popen.send_signal(signal.SIGINT)
            try:
                popen.wait(20)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        log.unlink(missing_ok=True)

    def warm(popen: subprocess.Popen, log: Path, table: str) -> None:
        """One row through, so the worker has imported and connected before the clock runs."""
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("insert into {} (body) values ('warm-up row')").format(sql.Identifier(table)))

            def done() -> bool:
                if popen.poll() is not None:
                    raise PeerUnavailable(f"`pgai vectorizer worker` exited with {popen.returncode}:\n"
                                          f"{log.read_text(errors='replace')[-2000:]}")
                errors = conn.execute("select message, details::text from ai.vectorizer_errors limit 1").fetchone()
                if errors:
                    raise PeerUnavailable(f"pgai's worker recorded an error: {errors[0]}: {errors[1]}")
                return conn.execute(sql.SQL("select count(embedding) from {}").format(
                    sql.Identifier(table))).fetchone()[0] > 0

            common.wait_until(done, 120, 0.1, f"pgai's first vector in {table}")
            conn.execute(sql.SQL("delete from {}").format(sql.Identifier(table)))

    out: dict = {"pgai_version": PGAI_VERSION, "worker_version": version[0] if version else None}
    popen, log = start_worker(ids["pg_tput"])
    try:
        warm(popen, log, "pg_tput")
        stub.reset()
        out.update(throughput(dsn, "pg_tput", texts, timeout=1200))
        out["requests"] = len(stub.requests)
        note(f"pgai: {out['rows_per_s']:,.0f} rows/s ({out['requests']} requests)")
    finally:
        stop_worker(popen, log)
    popen, log = start_worker(ids["pg_lat"])
    try:
        warm(popen, log, "pg_lat")
        out["latency_s"] = probe_latency(dsn, "pg_lat", args.probes, args.spacing, args.pgai_poll,
                                         timeout=args.pgai_poll * 5 + 30)
        note(f"pgai: p50 latency {percentile(out['latency_s'], 50) * 1000:.1f} ms")
    finally:
        stop_worker(popen, log)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--probes", type=int, default=20, help="single-row inserts for latency")
    parser.add_argument("--spacing", type=float, default=0.2, help="seconds between latency probes")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="the stub's fixed time per request")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per batch and request, both tools")
    parser.add_argument("--pgai-poll", type=int, default=1, help="pgai worker --poll-interval, whole seconds")
    parser.add_argument("--skip-peer", action="store_true", help="measure autoembed only")
    args = parser.parse_args(argv)
    common.apply_quick(args, {"rows": 1500, "probes": 8})
    common.quiet_logs()

    report = common.Report("peer_pgai", {k: v for k, v in vars(args).items() if k != "out"})
    texts = common.make_texts("short", args.rows)
    with OpenAIStub(dimensions=common.LOCAL_DIMS, latency=args.latency_ms / 1000) as stub, \
            common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db,
                                 conf={"track_commit_timestamp": "on"}) as bench_db:
        report.machine = common.machine_facts(bench_db.server_version())
        ae = run_autoembed(bench_db, stub, args, texts)
        peer, reason = None, None
        if args.skip_peer:
            reason = "skipped (--skip-peer)"
        else:
            try:
                peer = run_pgai(bench_db, stub, args, texts)
            except (PeerUnavailable, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                note(f"pgai not measured: {reason}")
    ae_p50, ae_p99 = percentile(ae["latency_s"], 50) * 1000, percentile(ae["latency_s"], 99) * 1000
    if peer:
        pg_p50, pg_p99 = percentile(peer["latency_s"], 50) * 1000, percentile(peer["latency_s"], 99) * 1000
        slow = args.latency_ms >= SLOW_ENDPOINT_MS
        report.add("throughput: autoembed rows/s", ae["rows_per_s"], "rows/s", baseline=peer["rows_per_s"],
                   baseline_name="pgai", target=f"ratio >= {SLOW_TARGET:g}" if slow else None,
                   passed=ae["rows_per_s"] >= SLOW_TARGET * peer["rows_per_s"] if slow else None,
                   note=f"pgai polls every {args.pgai_poll}s; its wake-up is inside this")
        span = lambda r: r["rows"] / r["processing_span_s"]  # noqa: E731
        report.add("throughput, first to last write: autoembed rows/s", span(ae), "rows/s", baseline=span(peer),
                   baseline_name="pgai", note="leaves out the wake-up (NOTIFY vs poll) and the first batch")
        report.add("latency p50: autoembed", ae_p50, "ms", baseline=pg_p50, baseline_name="pgai",
                   note="ratio < 1: autoembed is faster")
        report.add("latency p99: autoembed", ae_p99, "ms", baseline=pg_p99, baseline_name="pgai")
    else:
        report.add("throughput: autoembed rows/s", ae["rows_per_s"], "rows/s", note=f"no peer: {reason}"[:300])
        report.add("latency p50: autoembed", ae_p50, "ms")
        report.add("latency p99: autoembed", ae_p99, "ms")
    for name, result in (("autoembed", ae), ("pgai", peer)):
        if result:
            latency = result.pop("latency_s")
            report.details[name] = {**result, "latency_ms": [round(v * 1000, 2) for v in latency]}
    if not peer:
        report.details["peer_unavailable"] = reason
    return report.emit(args.out)


if __name__ == "__main__":
    main()
    sys.exit(0)
