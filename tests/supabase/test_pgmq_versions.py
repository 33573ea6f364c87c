"""The same migrations and worker on pgmq as an extension, Supabase's 1.4.4 and the newest (plain
PostgreSQL's SQL-only pgmq is the rest of the suite's): migrated as `postgres`, rows embedded, and
a stopped worker's prefetched batch given back at once, not after its visibility timeout."""

from __future__ import annotations

import pytest
from support import DIMS, FixedEmbedders, RecordingEmbedder, drain
from support.supabase import PGMQ_NEWEST_VERSION, PGMQ_SUPABASE_VERSION, missing_parts, use_pgmq

from autoembed import connections as db
from autoembed.embedders.hashing import HashingEmbedder
from autoembed.migrate import apply_migrations
from autoembed.settings import Settings
from autoembed.worker import Worker


@pytest.fixture(params=[PGMQ_SUPABASE_VERSION, PGMQ_NEWEST_VERSION])
def pgmq_project(request, project):
    """A new project's database with pgmq `version` as an extension, migrated by `postgres`."""
    version = request.param
    if version != PGMQ_SUPABASE_VERSION:
        missing = missing_parts(version)
        if missing:
            pytest.skip("missing " + "; ".join(missing))
        use_pgmq(project, version)
    with db.connect(project.postgres_dsn) as conn:
        apply_migrations(conn)
    return project, version


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(poll_interval=0.2, backoff_base=0.2, backoff_max=1.0, visibility_timeout=30, home=tmp_path)


def docs(conn, rows: int) -> None:
    conn.execute(f"create table docs (id bigint generated always as identity primary key, body text, "
                 f"embedding vector({DIMS}))")
    conn.execute("select autoembed.watch('docs', 'body', embedder => 'hashing', model => 'hashing-test')")
    conn.execute("insert into docs (body) select 'doc ' || g from generate_series(1, %s) g", (rows,))


def test_rows_are_embedded_and_reported(pgmq_project, settings):
    project, version = pgmq_project
    with db.connect(project.postgres_dsn, autocommit=True) as conn:
        assert conn.execute("select detail from autoembed.capabilities() where feature = 'pgmq'").fetchone() == (
            f"pgmq extension {version}",)
        docs(conn, 25)
        drain(project.postgres_dsn, settings)
        assert conn.execute("select rows, embedded, pending from autoembed.status").fetchone() == (25, 25, 0)
        assert conn.execute("select queue_length, queue_visible_length, queue_rows from autoembed.queue_status"
                            ).fetchone() == (0, 0, 0)


def test_a_stopped_worker_gives_its_prefetched_batch_back_at_once(pgmq_project, settings):
    project, _ = pgmq_project
    with db.connect(project.postgres_dsn, autocommit=True) as conn:
        docs(conn, 30)
        worker = None

        def stop_during_first_embed(texts):
            worker.stop()

        recorder = RecordingEmbedder(HashingEmbedder("hashing-test", DIMS), before=stop_during_first_embed)
        worker = Worker(settings.replace(batch_size=10), project.postgres_dsn, FixedEmbedders(settings, recorder))
        try:
            worker.run()
        finally:
            worker.close()
        assert conn.execute("select count(embedding) from docs").fetchone() == (10,)
        visible = conn.execute("select count(*) from autoembed.jobs where visible_at <= clock_timestamp()").fetchone()
        assert visible == (20,)  # the prefetched 10 are visible again, beside the 10 never read
