"""Connections: which database to use, and opening connections ready for vectors."""

from __future__ import annotations

import psycopg
from pgvector.psycopg import register_vector

from autoembed.devdb import dev_cluster
from autoembed.errors import DatabaseUnavailable
from autoembed.settings import Settings


def resolve_dsn(settings: Settings) -> str:
    """DATABASE_URL (or --dsn) when given, else the running dev database."""
    if settings.database_url:
        return settings.database_url
    cluster = dev_cluster(settings.home, settings.dev_db_port)
    if cluster.running():
        return cluster.url()
    raise DatabaseUnavailable(
        "no database: set DATABASE_URL, pass --dsn, or start the local one with `autoembed dev-db start`"
    )


def connect(dsn: str, *, autocommit: bool = False, vectors: bool = True) -> psycopg.Connection:
    """Open a connection; with `vectors`, pgvector's binary adapters are registered on it."""
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc}".strip()) from exc
    if vectors:
        try:
            register_vector(conn)
        except psycopg.ProgrammingError:
            pass  # pgvector not installed yet (before `autoembed migrate`)
        if not autocommit:
            conn.rollback()  # register_vector's catalog look-up opened a transaction
    return conn
