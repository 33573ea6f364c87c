"""Login roles for tests that write as an application would: cluster-wide, so uniquely named, and
dropped again after the test, also where the test's role is not a superuser (Supabase)."""

from __future__ import annotations

import itertools
import os

import psycopg
import pytest
from psycopg import sql

from autoembed.connections import register_vectors

_suffix = itertools.count()


@pytest.fixture
def make_role(conn):
    """`make(prefix, *member_of, application=True)` creates a login role and returns its name; an
    application role also gets what Supabase gives its API roles, usage on pgvector's schema."""
    made: list[str] = []

    def make(prefix: str, *member_of: str, application: bool = True) -> str:
        name = f"{prefix}_{os.getpid()}_{next(_suffix)}"
        conn.execute(sql.SQL("create role {} login").format(sql.Identifier(name)))
        # so that a non-superuser creator (Supabase's `postgres`) may drop what the role owns
        conn.execute(sql.SQL("grant {} to current_user").format(sql.Identifier(name)))
        # what an application role has on Supabase (as anon and authenticated do): pgvector's schema
        schema = conn.execute("select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace "
                              "where e.extname = 'vector' and n.nspname <> 'public'").fetchone()
        if schema and application:
            conn.execute(sql.SQL("grant usage on schema {} to {}").format(sql.Identifier(schema[0]), sql.Identifier(name)))
        for group in member_of:
            conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(name)))
        made.append(name)
        return name

    yield make
    for name in made:
        conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def as_role(dsn: str, role: str) -> psycopg.Connection:
    """An autocommit connection to `dsn` as `role`, vectors registered (from whichever schema holds
    pgvector: `extensions` on Supabase)."""
    conn = psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user=role), autocommit=True)
    register_vectors(conn)
    return conn
