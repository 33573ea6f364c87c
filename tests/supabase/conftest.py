"""The Supabase profile (tests/support/supabase.py) for the tests of this folder: one cluster per
session whose database `postgres` is the one pg_cron and pg_net serve, as on Supabase, and new
databases copied from that one as Supabase set it up (new projects). Skipped with the reason
where this machine lacks a part of the profile."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest

from autoembed import connections as db
from autoembed.migrate import apply_migrations
from support.supabase import (SUPABASE_CLI, SupabaseDatabase, create_project_database, drop_project_database,
                              supabase_test_cluster)


@pytest.fixture(scope="session")
def supabase_db() -> Iterator[SupabaseDatabase]:
    """A Supabase-faithful cluster; its database `postgres` is the one pg_cron and pg_net serve."""
    with supabase_test_cluster("postgres") as profile:
        yield profile


@pytest.fixture(scope="session")
def served(supabase_db: SupabaseDatabase) -> SupabaseDatabase:
    """The database pg_cron and pg_net serve, migrated by `autoembed migrate` as `postgres`.
    Tests share it (pg_net sends from no other): each uses tables of its own and drops them."""
    with db.connect(supabase_db.postgres_dsn) as conn:
        apply_migrations(conn)
    return supabase_db


@pytest.fixture
def project(supabase_db: SupabaseDatabase, request) -> Iterator[SupabaseDatabase]:
    """A new Supabase project's database (nothing of autoembed in it yet), dropped afterwards."""
    made = create_project_database(supabase_db, "project_" + re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40])
    try:
        yield made
    finally:
        drop_project_database(made)


@pytest.fixture
def cli() -> None:
    """Skips where the Supabase CLI is not installed."""
    if not SUPABASE_CLI.exists():
        pytest.skip(f"the Supabase CLI is not at {SUPABASE_CLI} (run scripts/setup-supabase-profile.sh)")


@pytest.fixture
def served_conn(served: SupabaseDatabase) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the served database as `postgres`, vectors registered."""
    with db.connect(served.postgres_dsn, autocommit=True) as conn:
        yield conn
