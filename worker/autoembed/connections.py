"""Connections: opening connections and the worker's pool, ready for vectors.

Which database to use is the caller's business: the CLI falls back to the dev database, a library
user passes a DSN.
"""

from __future__ import annotations

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

from autoembed.errors import DatabaseUnavailable

CONNECT_TIMEOUT = 10  # seconds


def connect(dsn: str, *, autocommit: bool = False, vectors: bool = True) -> psycopg.Connection:
    """Open a connection; with `vectors`, pgvector's binary adapters are registered on it."""
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT)
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


def worker_pool(dsn: str) -> ConnectionPool:
    """The worker's pool (not opened yet): autocommit connections with pgvector's adapters, checked
    before each use, enough for the fetch and commit threads and the loop's own queries."""
    return ConnectionPool(
        dsn, min_size=1, max_size=3, open=False, configure=register_vector,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT}, check=ConnectionPool.check_connection,
        name="autoembed-worker",
    )
