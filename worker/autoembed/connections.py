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


#: search_path for the type look-ups: the schema pgvector is installed in (`extensions` on Supabase),
#: which need not be on the role's own search_path (a login granted only autoembed_worker)
_VECTOR_SEARCH_PATH = """
select set_config('search_path', quote_ident(n.nspname) || ', pg_catalog', true)
from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'vector'
"""


def register_vectors(conn: psycopg.Connection) -> None:
    """Register pgvector's adapters on `conn`, wherever the extension lives; raises
    psycopg.ProgrammingError where pgvector is not installed. Leaves no transaction open on an
    autocommit connection."""
    with conn.transaction():  # set_config(..., true) lasts until its end
        if conn.execute(_VECTOR_SEARCH_PATH).fetchone() is None:
            raise psycopg.ProgrammingError("vector type not found in the database")
        register_vector(conn)


def register_vectors_if_visible(conn: psycopg.Connection) -> None:
    """register_vectors where this role can see pgvector's type; elsewhere nothing (pgvector is not
    installed yet, before `autoembed migrate`, or the role may not use its schema: the first query
    that needs a vector then fails saying so, and the CLI names the GRANT)."""
    try:
        register_vectors(conn)
    except psycopg.ProgrammingError:
        pass


def connect(dsn: str, *, autocommit: bool = False, vectors: bool = True) -> psycopg.Connection:
    """Open a connection; with `vectors`, pgvector's binary adapters are registered on it."""
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc}".strip()) from exc
    if vectors:
        register_vectors_if_visible(conn)
        if not autocommit:
            conn.rollback()  # the look-up's transaction
    return conn


def worker_pool(dsn: str) -> ConnectionPool:
    """The worker's pool (not opened yet): autocommit connections with pgvector's adapters (where
    the role can see the type: a pool whose every new connection failed would only time out),
    checked before each use, enough for the fetch and commit threads and the loop's own queries."""
    return ConnectionPool(
        dsn, min_size=1, max_size=3, open=False, configure=register_vectors_if_visible,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT}, check=ConnectionPool.check_connection,
        name="autoembed-worker",
    )
