"""What is declared once in Python and mirrored in SQL stays equal: the embedder kinds, the index kinds."""

from __future__ import annotations

import pytest

from autoembed.embedders import KINDS


def test_sql_embedder_kinds_equal_the_registry(conn):
    assert tuple(conn.execute("select autoembed.embedder_kinds()").fetchone()[0]) == KINDS


def test_watch_names_the_kinds_when_refusing_an_unknown_one(conn):
    conn.execute("create table notes (id int primary key, body text, embedding vector(4))")
    import psycopg

    with pytest.raises(psycopg.errors.RaiseException, match=f"unknown embedder 'nope': choose {', '.join(KINDS)}"):
        conn.execute("select autoembed.watch('notes', 'body', embedder => 'nope')")


def test_watch_refuses_an_unknown_index_naming_the_kinds_the_cli_offers(conn):
    import psycopg

    from autoembed.api import INDEXES

    conn.execute("create table notes (id int primary key, body text, embedding vector(4))")
    *first, last = INDEXES
    with pytest.raises(psycopg.errors.RaiseException, match=f"unknown index 'nope': choose {', '.join(first)} or {last}\n"):
        conn.execute("select autoembed.watch('notes', 'body', embedder => 'hashing', index => 'nope')")
