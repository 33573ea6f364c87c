"""Every autoembed function pins its search_path (Supabase's advisor: function_search_path_mutable),
and an unqualified content function name resolves by a rule that no caller's path changes."""

from __future__ import annotations

import psycopg
import pytest
from support import create_docs, watch


def test_every_autoembed_function_pins_its_search_path(conn):
    create_docs(conn)
    watch(conn, backfill=False)
    mutable = [name for (name,) in conn.execute(
        "select p.oid::regprocedure::text from pg_proc p "
        "where p.pronamespace = 'autoembed'::regnamespace and p.prokind = 'f' "
        "and not exists (select from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%%')")]
    assert mutable == []


@pytest.mark.parametrize("caller_path", ["public", "pg_catalog", "elsewhere, public"])
def test_an_unqualified_content_function_is_found_in_the_tables_schema_then_public(conn, caller_path):
    conn.execute("create schema app")
    conn.execute("create schema elsewhere")
    create_docs(conn, table="app.docs")
    conn.execute("create table public.notes (id int primary key, body text, embedding vector(16))")
    conn.execute("create function app.doc_input(d app.docs) returns text language sql immutable as $$ select d.body $$")
    conn.execute("create function public.note_input(n public.notes) returns text language sql immutable "
                 "as $$ select n.body $$")
    conn.execute("create function elsewhere.doc_input(d app.docs) returns text language sql immutable "
                 "as $$ select 'wrong one' $$")
    conn.execute(f"set search_path = {caller_path}")
    conn.execute("select autoembed.watch('app.docs', 'doc_input', embedder => 'hashing', model => 'h')")
    conn.execute("select autoembed.watch('public.notes', 'note_input', embedder => 'hashing', model => 'h')")
    assert conn.execute("select content_function from autoembed.sources order by id").fetchall() == \
        [("app.doc_input",), ("public.note_input",)]


def test_a_function_of_another_schema_must_be_named_with_its_schema(conn):
    conn.execute("create schema elsewhere")
    create_docs(conn)
    conn.execute("create function elsewhere.doc_input(d docs) returns text language sql immutable "
                 "as $$ select d.body $$")
    conn.execute("set search_path = elsewhere, public")
    with pytest.raises(psycopg.errors.RaiseException) as refused:
        conn.execute("select autoembed.watch('docs', 'doc_input', embedder => 'hashing', model => 'h')")
    assert "schema.function" in refused.value.diag.message_hint
    watch(conn, content="elsewhere.doc_input", backfill=False)
    assert conn.execute("select content_function from autoembed.sources").fetchone()[0] == "elsewhere.doc_input"
