"""A chunked watch on the Supabase profile: `postgres` (no superuser) watches with chunks, pgvector
lives in `extensions`, the worker fills the chunk table, and `authenticated` searches the chunks of
the rows its RLS policy lets it read, and only those."""

from __future__ import annotations

import psycopg
from support import FixedEmbedders, drain, expected

from autoembed.embedders.hashing import HashingEmbedder
from autoembed.migrate import apply_migrations
from autoembed.settings import Settings

PARAGRAPHS = ["벡터 임베딩은 텍스트를 고차원의 수치 벡터로 바꾸는 방법이다.",
              "행 수준 보안은 각 행에 대한 접근을 사용자마다 따로 제어한다.",
              "김치찌개는 잘 익은 김치와 돼지고기를 볶은 뒤 끓여야 맛있다."]


def test_postgres_watches_with_chunks_and_authenticated_searches_only_its_rows(project, tmp_path):
    with psycopg.connect(project.postgres_dsn, autocommit=True) as conn:
        apply_migrations(conn)
        conn.execute("create table public.notes (id bigint generated always as identity primary key, "
                     "owner text not null, body text not null, embedding extensions.vector(16))")
        conn.execute("alter table public.notes enable row level security")
        conn.execute("create policy own on public.notes for select to authenticated "
                     "using (owner = current_setting('request.jwt.claim.sub', true))")
        conn.execute("grant select on public.notes to authenticated")
        conn.execute("grant autoembed_search to authenticated")
        conn.execute("select autoembed.watch('public.notes', 'body', embedder => 'hashing', model => 'h16', "
                     "chunks => true, chunk_tokens => 64)")
        body = "\n\n".join(PARAGRAPHS * 3)
        conn.execute("insert into public.notes (owner, body) values ('alice', %s), ('bob', %s)", (body, body))
        assert conn.execute("select t.typnamespace::regnamespace::text, a.atttypmod from pg_attribute a "
                            "join pg_type t on t.oid = a.atttypid "
                            "where a.attrelid = 'autoembed.chunks_1'::regclass and a.attname = 'embedding'"
                            ).fetchone() == ("extensions", 16)

    settings = Settings(poll_interval=0.2, home=tmp_path / "home")
    drain(project.postgres_dsn, settings, FixedEmbedders(settings, HashingEmbedder("h16", 16)))

    with psycopg.connect(project.dsn("authenticator"), autocommit=True) as app:
        app.execute("set role authenticated")
        app.execute("select set_config('request.jwt.claim.sub', 'alice', false)")
        query = expected(PARAGRAPHS[1])
        hits = app.execute("select pk, chunk from autoembed.search('public.notes', %s::text::extensions.vector, 5, 5)",
                           (str(query.tolist()),)).fetchall()
        assert hits and {pk for pk, _ in hits} == {"1"} and PARAGRAPHS[1] in hits[0][1]
        assert {pk for (pk,) in app.execute("select distinct pk from autoembed.chunks_of('public.notes')")} == {"1"}
