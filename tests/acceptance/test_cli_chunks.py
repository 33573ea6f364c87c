"""The `autoembed` command with a chunked watch: watch options, the worker, search with chunks."""

from __future__ import annotations

import json

from acceptance.test_cli import cli_env, run  # noqa: F401 (cli_env is a fixture)

DOCUMENT = "\n\n".join(f"## 섹션 {i}\n\n벡터 검색 {i}번 문단입니다. 임베딩은 의미를 숫자로 담는다. 문단 번호는 {i}이다."
                       for i in range(12))


def test_watch_with_chunks_then_search_prints_each_rows_best_chunk(conn, cli_env):
    conn.execute("create table notes (id bigint generated always as identity primary key, body text, embedding vector(32))")
    conn.execute("insert into notes (body) values (%s), ('짧은 메모 하나')", (DOCUMENT,))
    out = run("watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h32", "--chunks",
              "--chunk-tokens", "40", "--query-prompt", "q: ", env=cli_env).stdout
    assert "watching notes (source 1)" in out
    run("worker", "--drain", env=cli_env)

    assert conn.execute("select count(*) from autoembed.chunks_of('notes') where pk = '1'").fetchone()[0] >= 12
    hits = json.loads(run("search", "notes", "섹션 7 벡터 검색 7번 문단", "-k", "2", "--json", env=cli_env).stdout)
    assert [h["pk"] for h in hits] == ["1", "2"] and "7번 문단" in hits[0]["chunk"]
    printed = run("search", "notes", "섹션 7 벡터 검색 7번 문단", "-k", "3", "--chunks-per-row", "3", env=cli_env).stdout
    lines = [line.split() for line in printed.splitlines()[1:]]
    assert len(lines) == 3 and all(line[1] == "1" and line[2] == "[chunk" for line in lines), printed


def test_bad_chunk_options_give_a_clear_error_and_exit_2(conn, cli_env):
    conn.execute("create table notes (id int primary key, body text, embedding vector(8))")
    result = run("watch", "notes", "--content", "body", "--embedder", "hashing", "--chunks", "--chunk-tokens", "4",
                 env=cli_env, check=False)
    assert result.returncode == 2 and "chunk_tokens must be at least 16" in result.stderr
