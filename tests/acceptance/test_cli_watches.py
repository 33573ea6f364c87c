"""A table watched twice from the command line: `--name`, `--watch NAME`, `worker --watches`."""

from __future__ import annotations

import json
import re

import pytest
from acceptance.test_cli import cli_env, run  # noqa: F401 (cli_env is a fixture)


@pytest.fixture
def notes(conn, cli_env):  # noqa: F811
    """notes watched twice: body into `embedding` (32 dimensions), title into `title_vec` (8) by the watch `titles`."""
    conn.execute("create table notes (id bigint generated always as identity primary key, title text, body text, "
                 "embedding vector(32), title_vec vector(8))")
    conn.execute("insert into notes (title, body) values ('cats', 'the cat sat on the mat'), ('food', '김치찌개 레시피')")
    run("watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h32", env=cli_env)
    out = run("watch", "notes", "--content", "title", "--embedding-column", "title_vec", "--name", "titles",
              "--embedder", "hashing", "--model", "h8", env=cli_env).stdout
    assert "watching notes (source 2)" in out
    return conn


def jobs_of(conn, source_id: int) -> list[tuple]:
    return conn.execute("select msg_id, read_ct, vt from pgmq.q_autoembed_jobs "
                        "where message ->> 'source_id' = %s order by msg_id", (str(source_id),)).fetchall()


def test_a_worker_limited_to_one_watch_drains_it_and_leaves_the_other(notes, cli_env):  # noqa: F811
    untouched = jobs_of(notes, 1)
    result = run("worker", "--drain", "--watches", "notes.titles", env=cli_env, timeout=60)
    assert result.returncode == 0
    assert notes.execute("select count(title_vec), count(embedding) from notes").fetchone() == (2, 0)
    assert jobs_of(notes, 1) == untouched  # not read: no attempt counted, not delayed
    status = json.loads(run("status", "--json", env=cli_env).stdout)
    assert [(s["source"], s["watch"], s["embedded"], s["pending"], s["failed"]) for s in status["sources"]] == \
        [("public.notes", "embedding", 0, 2, 0), ("public.notes", "titles", 2, 0, 0)]
    table = run("status", env=cli_env).stdout.splitlines()
    assert re.match(r"source\s+watch\s+state", table[0])
    assert re.match(r"public\.notes\s+embedding\s+ok\s+2\s+0\s+2\s+0", table[1]), table
    assert re.match(r"public\.notes\s+titles\s+ok\s+2\s+2\s+0\s+0", table[2]), table

    run("worker", "--drain", env={**cli_env, "AUTOEMBED_WATCHES": "notes"}, timeout=60)  # every watch of notes
    assert notes.execute("select count(title_vec), count(embedding) from notes").fetchone() == (2, 2)


def test_unknown_watches_are_refused_before_the_worker_starts(notes, cli_env):  # noqa: F811
    for flag in (["--watches", "notes.nope"], ["--watches", "notes.titles, nope"]):
        result = run("worker", "--drain", *flag, env=cli_env, check=False, timeout=60)
        assert result.returncode == 2
        assert re.match(r"autoembed: error: AUTOEMBED_WATCHES \(--watches\): '(notes\.)?nope' names no watch", result.stderr), \
            result.stderr
    result = run("worker", "--drain", env={**cli_env, "AUTOEMBED_WATCHES": "other.embedding"}, check=False, timeout=60)
    assert result.returncode == 2 and "'other.embedding' names no watch" in result.stderr
    assert notes.execute("select count(*) from autoembed.jobs").fetchone()[0] == 4  # nothing was read


def test_commands_take_the_watch_by_name(notes, cli_env):  # noqa: F811
    run("worker", "--drain", env=cli_env, timeout=60)
    result = run("search", "notes", "cats", env=cli_env, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "autoembed: error: table public.notes has 2 watches ('embedding', 'titles'): say which one",
        "autoembed: hint: Pass watch => '<name>' (CLI: --watch NAME).",
    ]
    hits = json.loads(run("search", "notes", "cats", "-k", "1", "--watch", "titles", "--json", env=cli_env).stdout)
    assert (hits[0]["pk"], hits[0]["content"]) == ("1", "cats")
    hits = json.loads(run("search", "notes", "김치찌개 레시피", "-k", "1", "--watch", "embedding", "--json", env=cli_env).stdout)
    assert hits[0]["content"] == "김치찌개 레시피"

    assert "enqueued 2 row(s) of notes" in run("backfill", "notes", "--all", "--watch", "titles", env=cli_env).stdout
    assert notes.execute("select distinct source_id from autoembed.jobs").fetchall() == [(2,)]
    assert run("retry-failures", "notes", env=cli_env, check=False).returncode == 2
    assert "re-enqueued 0 failed row(s)" in run("retry-failures", "notes", "--watch", "titles", env=cli_env).stdout
    assert "no failures" in run("failures", "notes", "--watch", "embedding", env=cli_env).stdout

    out = run("unwatch", "notes", "--watch", "titles", env=cli_env).stdout
    assert out.startswith("the watch 'titles' of public.notes is no longer watched: 2 queued row(s)")
    out = run("unwatch", "notes", env=cli_env).stdout  # one watch left: no name needed
    assert out.startswith("public.notes is no longer watched")
