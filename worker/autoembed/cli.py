"""The `autoembed` command: argument parsing, printing and logging set-up only; the work is in
autoembed.api (and the worker, migrate and dev-db modules)."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
import unicodedata

import click

from autoembed import __version__, api, hints, logs
from autoembed.connections import connect
from autoembed.devdb import dev_cluster
from autoembed.embedders import DEFAULT_MODEL, KINDS, LOCAL_BACKENDS, default_model
from autoembed.errors import AutoembedError, ConfigError, DatabaseUnavailable
from autoembed.settings import Settings

log = logging.getLogger("autoembed")

#: --watch, for the commands that take a table: which of its watches
watch_option = click.option("--watch", "watch_name", default=None, metavar="NAME",
                            help="The watch of TABLE to use, where it has several (their names: `autoembed status`).")


class Context:
    """What every command needs: settings (environment + flags) and the DSN they resolve to."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def dsn(self) -> str:
        """DATABASE_URL (or --dsn) when given, else the running dev database."""
        if self.settings.database_url:
            return self.settings.database_url
        cluster = dev_cluster(self.settings.home, self.settings.dev_db_port)
        if cluster.running():
            return cluster.url()
        raise DatabaseUnavailable(
            "no database: set DATABASE_URL, pass --dsn, or start the local one with `autoembed dev-db start`"
        )

    def connect(self, autocommit: bool = True):
        """A connection to that database."""
        return connect(self.dsn(), autocommit=autocommit)


def fail(exc: BaseException, command: str | None = None, dsn: str | None = None) -> None:
    """Print `autoembed: error: <what>` (and `autoembed: hint: <what to do>` when there is a fix to
    name) on stderr, and exit with status 2."""
    click.echo(f"autoembed: error: {hints.message(exc)}", err=True)
    advice = hints.hint(exc, command, dsn)
    if advice:
        click.echo(f"autoembed: hint: {advice}", err=True)
    sys.exit(2)


def _subcommand_dsn(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """`-d/--dsn` given after the command name: it wins over the one before it and DATABASE_URL."""
    if value:
        obj = ctx.find_object(Context)
        obj.settings = obj.settings.replace(database_url=value)


class AutoembedGroup(click.Group):
    """Turns project errors into one clear line on stderr (and a hint) and exit status 2; gives
    every command of its own `-d/--dsn`, so it may follow the command name too."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Register `cmd`; a command (not a group of them) also takes `-d/--dsn`."""
        if not isinstance(cmd, click.Group):
            cmd.params.append(click.Option(["-d", "--dsn"], expose_value=False, is_eager=True,
                                           callback=_subcommand_dsn, help="PostgreSQL DSN (wins over one before the command and DATABASE_URL)."))
        super().add_command(cmd, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:  # database errors raised by SQL API checks carry clear messages
            import psycopg

            if isinstance(exc, (AutoembedError, psycopg.Error)):
                obj = ctx.find_object(Context)
                fail(exc, ctx.invoked_subcommand, obj.settings.database_url if obj else None)
            raise


@click.group(cls=AutoembedGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, "-V", "--version", prog_name="autoembed")
@click.option("-d", "--dsn", envvar="DATABASE_URL",
              help="PostgreSQL DSN [env DATABASE_URL]; default: the running dev database. Also accepted after the command.")
@click.option("--log-level", default="INFO", envvar="AUTOEMBED_LOG_LEVEL",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Log level [env AUTOEMBED_LOG_LEVEL].")
@click.option("--log-format", default="text", envvar="AUTOEMBED_LOG_FORMAT", type=click.Choice(logs.FORMATS),
              help="Log lines as text, or one JSON object each [env AUTOEMBED_LOG_FORMAT].")
@click.pass_context
def main(ctx: click.Context, dsn: str | None, log_level: str, log_format: str) -> None:
    """autoembed: automatic embeddings for PostgreSQL and Supabase.

    Settings come from the environment (AUTOEMBED_*, DATABASE_URL, OPENAI_API_KEY); flags override them.
    """
    logs.configure(log_level, log_format)  # third-party libraries (ONNX quantizer, pgmq) log WARNING and up
    try:
        settings = Settings.from_env().replace(database_url=dsn)
    except AutoembedError as exc:
        fail(exc)
    ctx.obj = Context(settings)


# -- dev database ----------------------------------------------------------------------------------
@main.group("dev-db")
def dev_db() -> None:
    """The embedded local PostgreSQL (pg_cron preloaded) under $AUTOEMBED_HOME/devdb."""


@dev_db.command("start")
@click.pass_obj
def dev_db_start(obj: Context) -> None:
    """Create (once) and start the dev database; prints its DSN."""
    cluster = dev_cluster(obj.settings.home, obj.settings.dev_db_port)
    cluster.start()
    click.echo(cluster.url())


@dev_db.command("stop")
@click.pass_obj
def dev_db_stop(obj: Context) -> None:
    """Stop the dev database (its data stays)."""
    cluster = dev_cluster(obj.settings.home, obj.settings.dev_db_port)
    if not cluster.running():
        click.echo("the dev database was not running" + ("" if cluster.initialized() else " (not created yet)"))
        return
    cluster.stop()
    click.echo(f"stopped the dev database on port {obj.settings.dev_db_port} (its data stays in {cluster.data_dir})")


@dev_db.command("status")
@click.pass_obj
def dev_db_status(obj: Context) -> None:
    """Say whether the dev database runs; exit 1 when it does not."""
    cluster = dev_cluster(obj.settings.home, obj.settings.dev_db_port)
    if cluster.running():
        click.echo(f"running: {cluster.url()} (data in {cluster.data_dir})")
    else:
        click.echo("not running" + ("" if cluster.initialized() else " (not created yet)"))
        sys.exit(1)


@dev_db.command("url")
@click.pass_obj
def dev_db_url(obj: Context) -> None:
    """Print the dev database's DSN."""
    click.echo(dev_cluster(obj.settings.home, obj.settings.dev_db_port).url())


# -- schema -----------------------------------------------------------------------------------------
@main.command()
@click.pass_obj
def migrate(obj: Context) -> None:
    """Apply pending migrations and the current SQL definitions (installs SQL-only pgmq first where
    the extension is missing)."""
    from autoembed.migrate import apply_migrations

    with obj.connect(autocommit=False) as conn:
        applied = apply_migrations(conn)
    click.echo(f"applied {len(applied)} migration(s)" + "".join(f"\n  {name}" for name in applied)
               if applied else "database is up to date")


# -- watching ---------------------------------------------------------------------------------------
@main.command()
@click.argument("table")
@click.option("--content", required=True, help="Column holding the text, or a function f(row) returning text.")
@click.option("--embedding-column", default="embedding", help="vector(N) or halfvec(N) column to fill.")
@click.option("--embedder", default="local", type=click.Choice(KINDS))
@click.option("--model", default=None, show_default=False,
              help=f"Model name or path [default: {DEFAULT_MODEL}; for e5: {default_model('e5')}].")
@click.option("--distance", default="cosine", type=click.Choice(api.DISTANCES))
@click.option("--max-attempts", default=5, type=int, help="Tries before a row goes to autoembed.failures.")
@click.option("--keep-stale/--clear-on-change", default=False,
              help="On a content change, keep the old vector until the new one is written (default: clear it).")
@click.option("--no-backfill", is_flag=True, help="Do not enqueue existing rows without an embedding.")
@click.option("--check-model/--no-check-model", default=True,
              help="Build the embedder now and check its dimension against the column.")
@click.option("--chunks", is_flag=True, help="Split long content into chunks, each with its own vector (for search).")
@click.option("--chunk-tokens", type=int, default=None, show_default=False,
              help="Most tokens of a chunk [default: the model's window, at most 512].")
@click.option("--chunk-overlap", type=int, default=None, show_default=False,
              help="Tokens a chunk repeats of the text before it [default: an eighth of the chunk size].")
@click.option("--chunk-index", default="hnsw", type=click.Choice(api.CHUNK_INDEXES), help="Vector index of the chunks.")
@click.option("--query-prompt", default=None, show_default=False,
              help="Put before search queries [default: the model family's, e.g. 'query: ' for e5].")
@click.option("--passage-prompt", default=None, show_default=False,
              help="Put before content and chunks [default: the model family's, e.g. 'passage: ' for e5].")
@click.option("--name", default=None, show_default=False,
              help="The watch's name, unique per table [default: the embedding column's]; a table may have several watches.")
@click.option("--index", "index_kind", default="none", type=click.Choice(api.INDEXES),
              help="Vector index on the embedding column, built by the worker (CONCURRENTLY) once the backfill is done.")
@click.pass_obj
def watch(obj: Context, table, content, embedding_column, embedder, model, distance, max_attempts, keep_stale,
          no_backfill, check_model, chunks, chunk_tokens, chunk_overlap, chunk_index, query_prompt,
          passage_prompt, name, index_kind) -> None:
    """Watch TABLE: every insert or content change gets embedded (watching again under the same
    --name changes that watch; under another, adds one that fills another column)."""
    with obj.connect() as conn:
        source_id = api.watch(conn, table, content, settings=obj.settings, embedding_column=embedding_column,
                              embedder=embedder, model=model, distance=distance, max_attempts=max_attempts,
                              clear_on_change=not keep_stale, backfill=not no_backfill, chunks=chunks,
                              chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, chunk_index=chunk_index,
                              query_prompt=query_prompt, passage_prompt=passage_prompt, name=name,
                              index=index_kind, check_model=check_model)
    click.echo(f"watching {table} (source {source_id})")


@main.command("index")
@click.argument("table", required=False)
@watch_option
@click.pass_obj
def index_command(obj: Context, table: str | None, watch_name: str | None) -> None:
    """Build now the missing vector indexes the watches of TABLE (its watch --watch; default: every
    watched table) want, CONCURRENTLY: searches and writes go on meanwhile. Run it as the tables'
    owner [env AUTOEMBED_INDEX_MAINTENANCE_WORK_MEM, AUTOEMBED_INDEX_PARALLEL_WORKERS]."""
    with obj.connect() as conn:
        started = time.monotonic()
        builds = api.build_indexes(conn, table, watch=watch_name, settings=obj.settings)
    for build in builds:
        click.echo(f"{build.source} ({build.watch}): {'built, ' if build.built else ''}{build.state}")
    if not builds:
        click.echo("(no table is watched: see `autoembed watch --help`)")
    elif any(build.built for build in builds):
        click.echo(f"done in {time.monotonic() - started:.1f} s")


@main.command()
@click.argument("table")
@watch_option
@click.pass_obj
def unwatch(obj: Context, table: str, watch_name: str | None) -> None:
    """Stop watching TABLE, or its watch --watch (stored vectors stay; pending jobs are dropped)."""
    with obj.connect() as conn:
        click.echo(api.unwatch(conn, table, watch=watch_name))


@main.command()
@click.argument("table")
@click.option("--all", "all_rows", is_flag=True, help="Re-enqueue every row, not only those without an embedding.")
@click.option("--wait", is_flag=True, help="Show a progress bar until the table is fully embedded.")
@watch_option
@click.pass_obj
def backfill(obj: Context, table: str, all_rows: bool, wait: bool, watch_name: str | None) -> None:
    """Enqueue existing rows of TABLE for embedding (by its watch --watch)."""
    with obj.connect() as conn:
        count = api.backfill(conn, table, only_missing=not all_rows, watch=watch_name)
        click.echo(f"enqueued {count} row(s) of {table}")
        if wait and count:
            _progress(conn, table, count, watch_name)


def _progress(conn, table: str, total: int, watch_name: str | None) -> None:
    """Progress bar with rate and ETA until no job of `table`'s watch is pending."""
    started = time.monotonic()
    with click.progressbar(length=total, label=f"embedding {table}", show_eta=True, show_percent=True,
                           item_show_func=lambda rate: f"{rate:.0f} rows/s" if rate else None) as bar:
        done = 0
        while True:
            now = api.progress(conn, table, watch=watch_name)
            now_done = max(done, total - now.pending)
            bar.update(now_done - done, (now_done / max(1e-9, time.monotonic() - started)))
            done = now_done
            if now.pending == 0:
                break
            time.sleep(1.0)
    click.echo(f"{table}: {now.embedded} of {now.rows} rows embedded, {now.failed} failed")


@main.command("retry-failures")
@click.argument("table", required=False)
@watch_option
@click.pass_obj
def retry_failures(obj: Context, table: str | None, watch_name: str | None) -> None:
    """Re-enqueue failed rows (of TABLE or its watch --watch, or of every table) and clear their failure records."""
    with obj.connect() as conn:
        count = api.retry_failures(conn, table, watch=watch_name)
    click.echo(f"re-enqueued {count} failed row(s)")


@main.command()
@click.pass_obj
def sweep(obj: Context) -> None:
    """Re-enqueue rows missing an embedding with no job and no failure (pg_cron does this each minute)."""
    with obj.connect() as conn:
        count = api.sweep(conn)
    click.echo(f"re-enqueued {count} row(s)")


# -- operating ----------------------------------------------------------------------------------------
@main.command()
@click.option("--drain", is_flag=True, help="Exit 0 once the queue is empty instead of waiting for more.")
@click.option("--once", is_flag=True,
              help="Work through the jobs visible now and exit (for scripts): exit 0, or non-zero at any database error.")
@click.option("--listen/--no-listen", default=None,
              help="Wake on NOTIFY (turn off behind transaction-mode poolers) [env AUTOEMBED_LISTEN].")
@click.option("--batch-size", type=int, default=None,
              help="Rows per batch, at least [env AUTOEMBED_BATCH_SIZE; 100]; a remote embedder that keeps more "
                   "requests busy gets up to AUTOEMBED_MAX_BATCH_SIZE [1000].")
@click.option("--poll-interval", type=float, default=None, help="Seconds between polls when idle [env AUTOEMBED_POLL_INTERVAL; 5].")
@click.option("--visibility-timeout", type=int, default=None,
              help="Seconds a read job stays hidden [env AUTOEMBED_VISIBILITY_TIMEOUT; 120].")
@click.option("--local-backend", type=click.Choice(LOCAL_BACKENDS), default=None,
              help="Engine of the local embedder [env AUTOEMBED_LOCAL_BACKEND].")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics [env AUTOEMBED_METRICS_PORT].")
@click.option("--watches", default=None, metavar="LIST",
              help="Embed only these watches, comma-separated: TABLE (all its watches) or TABLE.NAME "
                   "[env AUTOEMBED_WATCHES; default: all]. Other watches' jobs stay queued for other workers.")
@click.pass_obj
def worker(obj: Context, drain, once, listen, batch_size, poll_interval, visibility_timeout, local_backend, metrics_port,
           watches) -> None:
    """Embed queued rows until stopped (SIGTERM/SIGINT finish the batch in hand, then exit 0)."""
    from autoembed.settings import parse_watches
    from autoembed.worker import run_worker

    settings = obj.settings.replace(listen=listen, batch_size=batch_size, poll_interval=poll_interval,
                                    visibility_timeout=visibility_timeout, local_backend=local_backend,
                                    metrics_port=metrics_port, watches=parse_watches(watches) if watches else None)
    _require_migrated(obj.dsn())
    if settings.watches:
        with obj.connect() as conn:
            api.check_watches(conn, settings.watches)
    if settings.metrics_port:  # /metrics, /healthz, /readyz and the status page (autoembed.server)
        from autoembed.queue_gauges import QueueGauges
        from autoembed.server import start_in_background

        start_in_background(obj.dsn(), host="0.0.0.0", port=settings.metrics_port, watches=settings.watches)
        QueueGauges(obj.dsn()).start()
    run_worker(settings, obj.dsn(), drain=drain, once=once)


@main.command()
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model (hub name or path) of the local embedder.")
@click.option("--refresh", is_flag=True, help="Measure again, though this machine's result is kept.")
@click.option("--budget", type=float, default=120.0, show_default=True, help="Most seconds to spend measuring.")
@click.pass_obj
def calibrate(obj: Context, model: str, refresh: bool, budget: float) -> None:
    """Measure which engine, threads and sub-batch sizes run the local model fastest on this machine,
    and keep the result in AUTOEMBED_CACHE_DIR (a worker does it at its first start, within
    AUTOEMBED_LOCAL_CALIBRATION_SECONDS). AUTOEMBED_LOCAL_BACKEND/_THREADS/_SUB_BATCH pin what they name."""
    from autoembed.embedders.calibration import measurements_table
    from autoembed.embedders.local import LocalEmbedder

    settings = obj.settings.replace(local_calibration_seconds=budget)
    result = LocalEmbedder.from_settings(model, settings, refresh=refresh).calibration
    for line in measurements_table(result.measurements):
        click.echo(line)
    cost = f"; measuring took {result.seconds:.1f} s ({result.cpu_seconds:.1f} s of CPU)" if result.measurements else ""
    click.echo(f"{model}: {result.plan.describe()} (from: {result.source}{cost})")
    if not result.complete:
        click.echo(f"the budget of {budget:g} s ran out before the end: not kept; give a larger --budget", err=True)


def _require_migrated(dsn: str) -> None:
    """Refuse at once, saying what to run, to work on a database autoembed is not installed in (or
    not fully); an unreachable one is left to the worker, which waits for it."""
    from autoembed.health import readiness

    problem = readiness(dsn).checks.get("migrated", "ok")
    if problem != "ok":
        raise ConfigError(problem)


@main.command()
@click.option("--host", default="127.0.0.1", envvar="AUTOEMBED_SERVE_HOST", help="Address to listen on [env AUTOEMBED_SERVE_HOST].")
@click.option("--port", default=8080, type=int, envvar="AUTOEMBED_SERVE_PORT", help="Port [env AUTOEMBED_SERVE_PORT].")
@click.option("--max-drain-seconds", default=300.0, type=float, envvar="AUTOEMBED_MAX_DRAIN_SECONDS",
              help="A drain stops after the batch in hand once it has run this long [env AUTOEMBED_MAX_DRAIN_SECONDS].")
@click.option("--drain-token", envvar="AUTOEMBED_DRAIN_TOKEN", default=None, show_default=False,
              help="Bearer token POST /drain requires; set the variable, not the flag (flags show in `ps`) "
                   "[env AUTOEMBED_DRAIN_TOKEN]; without it POST /drain is off.")
@click.pass_obj
def serve(obj: Context, host: str, port: int, max_drain_seconds: float, drain_token: str | None) -> None:
    """Serve HTTP: POST /drain drains the queue (push mode: pg_cron + pg_net call it), GET /healthz,
    /readyz, /metrics and the status page at /."""
    from autoembed.queue_gauges import QueueGauges
    from autoembed.secrets import clean_secret
    from autoembed.server import serve as run_server

    QueueGauges(obj.dsn()).start()
    run_server(obj.settings, obj.dsn(), host=host, port=port, max_drain_seconds=max_drain_seconds,
               token=clean_secret(drain_token, "AUTOEMBED_DRAIN_TOKEN"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--watch", "watch_seconds", type=float, default=None, help="Refresh every N seconds.")
@click.pass_obj
def status(obj: Context, as_json: bool, watch_seconds: float | None) -> None:
    """Per-table progress, queue metrics and which optional extensions are present."""
    with obj.connect() as conn:
        while True:
            snapshot = api.status(conn)
            if as_json:
                click.echo(json.dumps({"sources": snapshot.sources, "queue": snapshot.queue,
                                       "capabilities": snapshot.capabilities}, default=str, indent=2))
            else:
                _print_status(snapshot)
            if watch_seconds is None:
                return
            time.sleep(watch_seconds)
            click.clear()


def _print_status(snapshot) -> None:
    click.echo(f"{'source':<28} {'watch':<18} {'state':<14} {'rows':>8} {'embedded':>9} {'pending':>8} {'failed':>7} "
               f"{'oldest pending':>15}  last success")
    for s in snapshot.sources:
        age = s["oldest_pending_age"]
        click.echo(f"{s['source']:<28} {s['watch']:<18} {s['state']:<14} {s['rows'] if s['rows'] is not None else '-':>8} "
                   f"{s['embedded'] if s['embedded'] is not None else '-':>9} {s['pending']:>8} {s['failed']:>7} "
                   f"{(f'{age.total_seconds():.1f}s' if age else '-'):>15}  {s['last_success_at'] or '-'}")
        if s["index"] and s["index"] != "none wanted":
            click.echo(f"{'':<28} vector index: {s['index']}")
    if not snapshot.sources:
        click.echo("(no table is watched: see `autoembed watch --help`)")
    q = snapshot.queue
    click.echo(f"\nqueue {q.get('queue_name')}: {q.get('queue_rows')} row(s) in {q.get('queue_length')} message(s) "
               f"({q.get('queue_visible_length')} visible), oldest {q.get('oldest_msg_age_sec') or 0}s")
    click.echo("\ncapabilities:")
    for c in snapshot.capabilities:
        click.echo(f"  {'yes' if c['available'] else 'NO ':<4} {c['feature']:<8} {c['detail']}")


@main.command()
@click.argument("table", required=False)
@click.option("--limit", default=50, type=int)
@watch_option
@click.pass_obj
def failures(obj: Context, table: str | None, limit: int, watch_name: str | None) -> None:
    """List failure records (of TABLE or its watch --watch, or of every table)."""
    with obj.connect() as conn:
        rows = api.failures(conn, table, limit, watch=watch_name)
    for f in rows:
        click.echo(f"{f['source']} ({f['watch']})  pk={f['pk']}  {f['error_class']}: {f['error_message']}  "
                   f"(attempts {f['attempts']}, {f['failed_at']:%Y-%m-%d %H:%M:%S})")
    if not rows:
        click.echo("no failures")


@main.command("search")
@click.argument("table")
@click.argument("query")
@click.option("-k", default=5, type=int, help="How many rows.")
@click.option("--chunks-per-row", default=1, type=int,
              help="For a chunked watch: chunks a row may contribute (then K is a number of chunks).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@watch_option
@click.pass_obj
def search_command(obj: Context, table: str, query: str, k: int, chunks_per_row: int, as_json: bool,
                   watch_name: str | None) -> None:
    """The K rows of TABLE nearest to QUERY (embedded with the watch's own embedder and query
    prompt); for a chunked watch each row's nearest chunk."""
    with obj.connect() as conn:
        hits = api.search(conn, table, query, k, settings=obj.settings, chunks_per_row=chunks_per_row,
                          watch=watch_name)
    if as_json:
        click.echo(json.dumps([hit.__dict__ for hit in hits], ensure_ascii=False))
        return
    _print_hits(hits)


def _print_hits(hits: list[api.Hit]) -> None:
    """A table of hits: distance, key and a one-line excerpt of the content (of the chunk, for a
    chunked watch) that fits the terminal."""
    if not hits:
        click.echo("no results: no row this role can read has an embedding yet")
        return
    key_width = min(36, max(3, *(len(hit.pk) for hit in hits)))
    room = max(20, shutil.get_terminal_size().columns - key_width - 12)
    click.echo(f"{'distance':>8}  {'key':<{key_width}}  content")
    for hit in hits:
        text = hit.content if hit.chunk is None else f"[chunk {hit.chunk_position}] {hit.chunk}"
        click.echo(f"{hit.distance:>8.4f}  {hit.pk:<{key_width}}  {_excerpt(text or '', room)}")


def _excerpt(text: str, width: int) -> str:
    """`text` on one line (whitespace folded), cut to `width` terminal columns with an ellipsis
    (East Asian wide characters take two)."""
    line = " ".join(text.split())
    columns = [2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in line]
    if sum(columns) <= width:
        return line
    used = end = 0
    while used + columns[end] <= width - 1:
        used += columns[end]
        end += 1
    return line[:end] + "…"


@main.command()
@click.pass_obj
def demo(obj: Context) -> None:
    """Start the dev database if needed, migrate, and embed + search a sample table."""
    from autoembed.demo import run_demo
    from autoembed.migrate import apply_migrations

    if not obj.settings.database_url:
        dev_cluster(obj.settings.home, obj.settings.dev_db_port).start()
    with obj.connect(autocommit=False) as conn:
        apply_migrations(conn)
    run_demo(obj.settings, obj.dsn())


# -- Supabase projects ------------------------------------------------------------------------------
@main.group("supabase")
def supabase_group() -> None:
    """Add autoembed to a Supabase CLI project's migrations (then `supabase db push`)."""


@supabase_group.command("add-migration")
@click.option("--dir", "folder", type=click.Path(file_okay=False), default="supabase/migrations",
              help="The project's migrations folder.")
def supabase_add_migration(folder: str) -> None:
    """Write autoembed's SQL as one new migration file: every migration (each runs once, whichever of
    `supabase db push` and `autoembed migrate` gets there first) and the current definitions.
    Run it again after upgrading autoembed: the new file applies only what is new."""
    from pathlib import Path

    from autoembed.supabase_migrations import add_migration

    click.echo(f"wrote {add_migration(Path(folder))}")


if __name__ == "__main__":
    main()
