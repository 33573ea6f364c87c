"""Chunked watches: chunks kept in step with their rows, an edit re-embeds only the chunks it
changed, search ranks rows by their best chunk under the caller's RLS, prompts on both sides, and
no input longer than the model's window is ever sent."""

from __future__ import annotations

import logging

import numpy as np
import psycopg
import pytest
from integration.test_security import as_role, make_role, rls_docs  # noqa: F401 (make_role is a fixture)
from psycopg import sql
from support import DIMS, FixedEmbedders, RecordingEmbedder, create_docs, drain, expected, queue_depth, watch

from autoembed import api
from autoembed.chunking import split
from autoembed.embedders.hashing import HashingEmbedder
from autoembed.embedders.tokens import estimate_tokens
from autoembed.passages import DEFAULT_OVERLAP_SHARE, mean_vector, text_hash

SENTENCES = ["벡터 임베딩은 텍스트를 고차원의 수치 벡터로 바꾸는 방법이다.",
             "의미가 비슷한 문장은 벡터 공간에서 서로 가까운 곳에 놓인다.",
             "HNSW 인덱스를 만들면 근사 최근접 이웃 검색이 훨씬 빨라진다.",
             "행 수준 보안은 각 행에 대한 접근을 사용자마다 따로 제어한다.",
             "김치찌개는 잘 익은 김치와 돼지고기를 볶은 뒤 끓여야 맛있다."]
CHUNK_TOKENS = 64
OVERLAP = int(CHUNK_TOKENS * DEFAULT_OVERLAP_SHARE)  # what a watch naming none gets


def paragraph(i: int) -> str:
    return " ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(2)) + f" (문단 {i})"


def document(paragraphs: int = 16) -> str:
    return "\n\n".join(paragraph(i) for i in range(paragraphs))


def chunk_rows(conn, source_id: int) -> list[tuple]:
    table = conn.execute("select chunk_table::text from autoembed.sources where id = %s", (source_id,)).fetchone()[0]
    return conn.execute(sql.SQL("select parent_pk::text, position, start_char, end_char, chunk, chunk_hash, embedding, "
                                "occurrence, xmin::text from {} order by parent_pk, position")
                        .format(sql.SQL(table))).fetchall()


def chunked(conn, **options) -> int:
    return watch(conn, chunks=True, chunk_tokens=CHUNK_TOKENS, **options)


def recorder() -> RecordingEmbedder:
    return RecordingEmbedder(HashingEmbedder("hashing-test", DIMS))


# -- chunks kept like rows --------------------------------------------------------------------------
def test_a_long_row_is_stored_as_chunks_that_are_slices_of_it_each_with_its_own_vector(conn, dsn, settings):
    create_docs(conn)
    source_id = chunked(conn)
    text = document()
    conn.execute("insert into docs (body) values (%s)", (text,))
    drain(dsn, settings)

    rows = chunk_rows(conn, source_id)
    expected_chunks = split(text, estimate_tokens, CHUNK_TOKENS, OVERLAP)
    assert len(rows) == len(expected_chunks) > 4
    for (pk, position, start, end, chunk, chunk_hash, vector, *_), want in zip(rows, expected_chunks):
        assert (pk, position, start, end, chunk) == ("1", want.position, want.start, want.end, want.text)
        assert text[start:end] == chunk and chunk_hash == text_hash(chunk)
        np.testing.assert_allclose(vector.to_numpy(), expected(chunk), atol=1e-6)
    row_vector = conn.execute("select embedding from docs").fetchone()[0].to_numpy()
    np.testing.assert_allclose(row_vector, mean_vector([r[6].to_numpy() for r in rows]), atol=1e-6)
    assert conn.execute("select rows, embedded, pending, failed from autoembed.status").fetchone() == (1, 1, 0, 0)


def test_editing_one_paragraph_embeds_one_chunk_and_leaves_the_others_untouched(conn, dsn, settings):
    create_docs(conn)
    source_id = chunked(conn, chunk_overlap=0)  # with overlap, an edit at a chunk's end also changes the next
    text = document(30)
    conn.execute("insert into docs (body) values (%s)", (text,))
    drain(dsn, settings)
    before = {(r[5], r[7]): r for r in chunk_rows(conn, source_id)}  # by (text hash, occurrence)

    edited = text.replace(paragraph(17), paragraph(17).replace(" ", " 아주 ", 1))
    conn.execute("update docs set body = %s", (edited,))
    calls = recorder()
    drain(dsn, settings, FixedEmbedders(settings, calls))

    after = {(r[5], r[7]): r for r in chunk_rows(conn, source_id)}
    assert len(calls.texts) == 1 and "아주" in calls.texts[0], "embedding calls for a one-paragraph edit"
    assert {key[0] for key in set(after) - set(before)} == {text_hash(calls.texts[0])}
    assert [r[4] for r in sorted(after.values(), key=lambda r: r[1])] == \
        [c.text for c in split(edited, estimate_tokens, CHUNK_TOKENS, 0)]
    kept = set(before) & set(after)
    assert any(before[key][2] != after[key][2] for key in kept), "the chunks after the edit moved"
    untouched = [key for key in kept if before[key][1:4] == after[key][1:4]]
    assert untouched and all(after[key][8] == before[key][8] for key in untouched), "unchanged chunks were rewritten"


def test_a_deleted_truncated_or_rekeyed_row_leaves_no_chunks(conn, dsn, settings):
    create_docs(conn, pk="int")
    source_id = chunked(conn)
    conn.execute("insert into docs (id, body) values (1, %s), (2, %s), (3, %s)", (document(), document(8), document(9)))
    drain(dsn, settings)
    assert {r[0] for r in chunk_rows(conn, source_id)} == {"1", "2", "3"}

    conn.execute("delete from docs where id = 2")
    assert {r[0] for r in chunk_rows(conn, source_id)} == {"1", "3"}
    conn.execute("update docs set id = 30 where id = 3")
    assert {r[0] for r in chunk_rows(conn, source_id)} == {"1"}
    drain(dsn, settings)
    assert {r[0] for r in chunk_rows(conn, source_id)} == {"1", "30"}
    conn.execute("truncate docs")
    assert chunk_rows(conn, source_id) == []


def test_a_row_changed_while_its_chunks_are_embedded_ends_with_the_chunks_of_its_new_content(conn, dsn, settings):
    create_docs(conn)
    source_id = chunked(conn)
    first, second = document(10), document(12).replace("문단", "단락")
    conn.execute("insert into docs (body) values (%s)", (first,))

    def change_row_while_embedding(texts):
        if any("문단" in t for t in texts):
            with psycopg.connect(dsn, autocommit=True) as other:
                other.execute("update docs set body = %s", (second,))

    drain(dsn, settings, FixedEmbedders(settings, RecordingEmbedder(HashingEmbedder("hashing-test", DIMS),
                                                                    before=change_row_while_embedding)))
    rows = chunk_rows(conn, source_id)
    assert [r[4] for r in rows] == [c.text for c in split(second, estimate_tokens, CHUNK_TOKENS, OVERLAP)]
    assert all(second[r[2]:r[3]] == r[4] for r in rows)
    assert queue_depth(conn) == 0


def test_the_chunk_write_is_guarded_by_the_rows_content_hash(conn, dsn, settings):
    create_docs(conn)
    source_id = chunked(conn)
    conn.execute("insert into docs (body) values (%s)", (document(),))
    drain(dsn, settings)
    before = chunk_rows(conn, source_id)
    stale = conn.execute(
        "select pk from autoembed.write_chunks(%s, 'hashing', 'hashing-test', array['1'], array[md5('old text')::uuid], "
        "array[%s::vector], array['1'], array[md5('old')::uuid], array[0], array[0], array[0], array[3], "
        "array['old'], array[%s::vector])", (source_id, expected("old text"), expected("old"))).fetchall()
    assert stale == []
    assert chunk_rows(conn, source_id) == before


def test_search_ranks_rows_by_their_best_chunk_and_names_it(conn, dsn, settings):
    create_docs(conn)
    chunked(conn)
    docs = [document(10), "\n\n".join(f"고양이와 강아지 이야기 {i}. 반려동물을 키우는 법을 알아보자." for i in range(12)),
            "\n\n".join(f"서울 지하철 {i}호선은 도심을 지난다. 교통카드를 찍고 탄다." for i in range(12))]
    with conn.cursor() as cur:
        cur.executemany("insert into docs (body) values (%s)", [(d,) for d in docs])
    drain(dsn, settings)
    target = split(docs[0], estimate_tokens, CHUNK_TOKENS, OVERLAP)[3]

    hits = api.search(conn, "docs", target.text, k=2, settings=settings)

    assert [h.pk for h in hits][0] == "1"
    assert (hits[0].chunk, hits[0].chunk_position) == (target.text, 3)
    assert hits[0].distance == pytest.approx(0, abs=1e-6) and hits[0].content == docs[0]
    assert len({h.pk for h in hits}) == 2, "one hit per row"
    by_sql = conn.execute("select pk, chunk_position from autoembed.search('docs', %s, 3)",
                          (expected(target.text),)).fetchall()
    assert by_sql[0] == ("1", 3) and len(by_sql) == 3


@pytest.mark.parametrize("chunk_index", ["hnsw", "none"])
def test_search_finds_k_rows_whatever_the_index_and_however_many_chunks_each_has(conn, dsn, settings, chunk_index):
    create_docs(conn)
    watch(conn, chunks=True, chunk_tokens=24, chunk_index=chunk_index)
    with conn.cursor() as cur:
        cur.executemany("insert into docs (body) values (%s)", [(document(6 + i % 5),) for i in range(30)])
    drain(dsn, settings)
    has_index = conn.execute("select count(*) from pg_indexes where tablename like 'chunks_%' "
                             "and indexdef like '%hnsw%'").fetchone()[0]
    assert has_index == (chunk_index == "hnsw")

    hits = api.search(conn, "docs", SENTENCES[2], k=25, settings=settings)
    assert len(hits) == 25 and len({h.pk for h in hits}) == 25
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)


def test_search_shows_a_role_only_the_chunks_of_rows_it_may_read(conn, dsn, settings, make_role):
    rls_docs(conn)
    alice, bob = make_role("alice", "autoembed_search"), make_role("bob", "autoembed_search")
    for role in (alice, bob):
        conn.execute(sql.SQL("grant select, insert on docs to {}").format(sql.Identifier(role)))
    source_id = chunked(conn, backfill=False)
    for role, body in ((alice, document(8)), (bob, document(9).replace("문단", "bob"))):
        with as_role(dsn, role) as app:
            app.execute("insert into docs (body) values (%s)", (body,))
    drain(dsn, settings)
    assert {r[0] for r in chunk_rows(conn, source_id)} == {"1", "2"}

    for role, own in ((alice, "1"), (bob, "2")):
        with as_role(dsn, role) as app:
            hits = app.execute("select pk from autoembed.search('docs', %s, 5)", (expected(SENTENCES[0]),)).fetchall()
            assert hits == [(own,)], role
            seen = app.execute(f"select distinct parent_pk::text from autoembed.chunks_{source_id}").fetchall()
            assert seen == [(own,)], "the chunk table leaks rows the role cannot read"
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(f"delete from autoembed.chunks_{source_id}")


def test_a_row_whose_content_changed_is_not_found_by_its_old_chunks(conn, dsn, settings):
    create_docs(conn)
    chunked(conn)
    conn.execute("insert into docs (body) values (%s)", (document(),))
    drain(dsn, settings)
    conn.execute("update docs set body = '전혀 다른 내용의 짧은 글이다.'")  # the row's vector is cleared at once
    assert api.search(conn, "docs", SENTENCES[0], k=5, settings=settings) == []


# -- the chunk table's life -------------------------------------------------------------------------
def test_rewatching_changes_the_chunk_table_as_needed_and_unwatch_drops_it(conn, dsn, settings):
    create_docs(conn)
    source_id = chunked(conn)
    conn.execute("insert into docs (body) values (%s)", (document(),))
    drain(dsn, settings)
    table = f"autoembed.chunks_{source_id}"
    count = sql.SQL("select count(*) from {}").format(sql.SQL(table))

    chunked(conn, model="hashing-other")  # vectors of another model are no use: emptied, re-embedded
    assert conn.execute(count).fetchone()[0] == 0
    drain(dsn, settings)
    assert conn.execute(count).fetchone()[0] > 0
    calls = recorder()
    watch(conn, chunks=True, chunk_tokens=CHUNK_TOKENS * 2, model="hashing-other")  # same model: vectors kept
    drain(dsn, settings, FixedEmbedders(settings, calls))
    assert calls.texts and all(estimate_tokens(t) > CHUNK_TOKENS for t in calls.texts), "only new chunk texts"

    watch(conn)  # no chunks any more
    assert conn.execute("select to_regclass(%s)", (table,)).fetchone()[0] is None
    chunked(conn)
    conn.execute("select autoembed.unwatch('docs')")
    assert conn.execute("select to_regclass(%s)", (table,)).fetchone()[0] is None
    assert conn.execute("select count(*) from pg_trigger where tgname like 'autoembed%'").fetchone()[0] == 0


@pytest.mark.parametrize("pk,vector_type", [("text", "vector"), ("uuid default gen_random_uuid()", "halfvec"),
                                            ("bigint generated always as identity", "halfvec")])
def test_any_key_type_and_halfvec_columns_are_chunked(conn, dsn, settings, pk, vector_type):
    create_docs(conn, pk=pk, vector_type=vector_type)
    source_id = chunked(conn)
    key = "('doc-1', %s)" if pk == "text" else "(default, %s)"
    conn.execute(f"insert into docs (id, body) values {key}", (document(),))
    drain(dsn, settings)
    assert len(chunk_rows(conn, source_id)) > 4
    assert api.search(conn, "docs", SENTENCES[1], k=1, settings=settings)[0].chunk is not None
    conn.execute("delete from docs")
    assert chunk_rows(conn, source_id) == []


@pytest.mark.parametrize("options,message", [
    ({"chunk_tokens": 8}, "chunk_tokens must be at least 16"),
    ({"chunk_tokens": 100, "chunk_overlap": 50}, "chunk_overlap must be from 0 to less than half"),
    ({"chunk_index": "ivfflat"}, "unknown chunk_index 'ivfflat'"),
])
def test_watch_refuses_chunk_options_that_cannot_work_and_changes_nothing(conn, options, message):
    create_docs(conn)
    with pytest.raises(psycopg.errors.RaiseException, match=message):
        watch(conn, chunks=True, **options)
    assert conn.execute("select count(*) from autoembed.sources").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.RaiseException, match="need chunks => true"):
        watch(conn, chunk_tokens=100)


# -- prompts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("embedder,model,prompts", [
    ("local", "intfloat/multilingual-e5-small", ("query: ", "passage: ")),
    ("e5", "intfloat/multilingual-e5-small", ("query: ", "passage: ")),
    ("openai", "intfloat/e5-base-v2", ("query: ", "passage: ")),
    ("local", "BAAI/bge-small-en-v1.5", ("Represent this sentence for searching relevant passages: ", "")),
    ("local", "BAAI/bge-m3", ("", "")),
    ("openai", "nomic-embed-text", ("search_query: ", "search_document: ")),
    ("local", "sentence-transformers/all-MiniLM-L6-v2", ("", "")),
    ("openai", "text-embedding-3-small", ("", "")),
])
def test_known_model_families_get_their_prompts_without_configuration(conn, embedder, model, prompts):
    assert conn.execute("select * from autoembed.model_prompts(%s, %s)", (embedder, model)).fetchone() == prompts
    create_docs(conn)
    watch(conn, embedder=embedder, model=model)
    assert conn.execute("select query_prompt, passage_prompt from autoembed.sources").fetchone() == prompts


def test_an_explicit_prompt_overrides_the_family_and_e5_refuses_other_prompts(conn):
    create_docs(conn)
    watch(conn, embedder="local", model="intfloat/multilingual-e5-small", passage_prompt="")
    assert conn.execute("select query_prompt, passage_prompt from autoembed.sources").fetchone() == ("query: ", "")
    with pytest.raises(psycopg.errors.RaiseException, match="e5 embedder puts 'query: ' before queries"):
        watch(conn, embedder="e5", model="intfloat/multilingual-e5-small", query_prompt="question: ")


def test_the_worker_puts_the_passage_prompt_before_chunks_and_search_the_query_prompt_before_queries(conn, dsn, settings):
    create_docs(conn)
    chunked(conn, query_prompt="query: ", passage_prompt="passage: ")
    conn.execute("insert into docs (body) values (%s)", (document(),))
    calls = recorder()
    embedders = FixedEmbedders(settings, calls)
    drain(dsn, settings, embedders)
    assert calls.texts and all(t.startswith("passage: ") and not t.startswith("passage: passage: ")
                               for t in calls.texts)
    calls.calls.clear()

    hits = api.search(conn, "docs", SENTENCES[0], k=1, settings=settings, embedders=embedders)
    assert calls.texts == ["query: " + SENTENCES[0]] and hits


def test_changing_the_passage_prompt_re_embeds_every_row(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('one'), ('two')")
    drain(dsn, settings)
    watch(conn, passage_prompt="passage: ")
    calls = recorder()
    drain(dsn, settings, FixedEmbedders(settings, calls))
    assert sorted(calls.texts) == ["passage: one", "passage: two"]


# -- the window -------------------------------------------------------------------------------------
class WindowedEmbedder(RecordingEmbedder):
    """A recording hashing embedder whose model reads at most `max_tokens` tokens (one a character)."""

    max_tokens = 40

    def __init__(self):
        super().__init__(HashingEmbedder("hashing-test", DIMS))

    def count_tokens(self, text: str) -> int:
        return 2 + len(text)


def test_a_row_longer_than_the_window_is_cut_at_a_sentence_end_with_a_warning(conn, dsn, settings, caplog):
    create_docs(conn)
    watch(conn)
    text = " ".join(SENTENCES)
    conn.execute("insert into docs (body) values (%s)", (text,))
    embedder = WindowedEmbedder()
    with caplog.at_level(logging.WARNING, logger="autoembed.passages"):
        drain(dsn, settings, FixedEmbedders(settings, embedder))

    assert embedder.texts == [SENTENCES[0]]
    warnings = [r.getMessage() for r in caplog.records if "window" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("1 row(s) of ")
    assert "docs are longer than the model's window of 40 tokens" in warnings[0] and "chunks => true" in warnings[0]
    np.testing.assert_allclose(conn.execute("select embedding from docs").fetchone()[0].to_numpy(),
                               expected(SENTENCES[0]), atol=1e-6)


def test_chunks_never_exceed_the_window_whatever_chunk_tokens_says(conn, dsn, settings):
    create_docs(conn)
    watch(conn, chunks=True, chunk_tokens=500, passage_prompt="p: ")
    conn.execute("insert into docs (body) values (%s)", (document(),))
    embedder = WindowedEmbedder()
    drain(dsn, settings, FixedEmbedders(settings, embedder))
    assert embedder.texts and all(embedder.count_tokens(t) <= 40 for t in embedder.texts)
    assert queue_depth(conn) == 0


def test_korean_rows_embedded_by_an_english_model_are_warned_about_once(conn, dsn, settings, caplog):
    create_docs(conn)
    create_docs(conn, table="notes")
    watch(conn, model="all-MiniLM-like")  # the hashing embedder, under an English model's name
    watch(conn, "notes", model="all-MiniLM-like")
    conn.execute("insert into docs (body) select %s || g from generate_series(1, 3) g", (SENTENCES[0],))
    conn.execute("insert into notes (body) values ('plain English text'), ('more English')")
    with caplog.at_level(logging.WARNING, logger="autoembed.passages"):
        drain(dsn, settings)
        conn.execute("insert into docs (body) values (%s)", (SENTENCES[1],))
        drain(dsn, settings)
    warnings = [r.getMessage() for r in caplog.records if "is an English model" in r.getMessage()]
    assert len(warnings) == 1 and "docs holds Korean text" in warnings[0] and "embedder => 'e5'" in warnings[0]


def test_a_row_whose_content_becomes_empty_loses_its_chunks(conn, dsn, settings):
    create_docs(conn)
    source_id = chunked(conn)
    conn.execute("insert into docs (body) values (%s), ('')", (document(),))
    drain(dsn, settings)
    assert {r[0] for r in chunk_rows(conn, source_id)} == {"1"}
    conn.execute("update docs set body = '   ' where id = 1")
    drain(dsn, settings)
    assert chunk_rows(conn, source_id) == []
    assert conn.execute("select count(*) from autoembed.failures where error_class = 'EmptyContent'").fetchone()[0] == 2
