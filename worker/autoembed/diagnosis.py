"""Database errors that retrying will not cure, told as what to do about them: the database is not
migrated (`autoembed migrate`), or the worker's role lacks a privilege (which GRANT). And the check
a worker makes before it starts."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg_pool import PoolTimeout

from autoembed.connections import connect
from autoembed.errors import AutoembedError
from autoembed.queries import QUERIES
from autoembed.store import Store

#: what a database answers when autoembed's schema, or the part this worker needs, is not there
NOT_MIGRATED = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedColumn,
                psycopg.errors.UndefinedObject, psycopg.errors.InvalidSchemaName)


class LastingDatabaseError(AutoembedError):
    """A database error that will not go away by retrying; the message says what to do."""


def preflight(dsn: str) -> None:
    """Before a worker opens its pool: DatabaseUnavailable when the database cannot be reached,
    LastingDatabaseError when it is not migrated. (The pool sets pgvector's types up on each of its
    connections, so without the extension it would wait 30 s for a connection and say only that.)"""
    with connect(dsn, autocommit=True, vectors=False) as conn:
        vector, migrated = conn.execute(QUERIES["migrated"]).fetchone()
    if not (vector and migrated):
        missing = "autoembed's tables are" if vector else "the vector extension is"
        raise LastingDatabaseError(f"the database is not migrated ({missing} missing): run `autoembed migrate`")


def lasting(store: Store, exc: BaseException) -> str | None:
    """What to do about `exc` when retrying cannot help, in one line; None when it may pass (a lost
    connection, a server restart, a lock conflict)."""
    primary = getattr(getattr(exc, "diag", None), "message_primary", None) or str(exc).strip()
    if isinstance(exc, NOT_MIGRATED):
        return f"the database is not migrated for this version of autoembed ({primary}): run `autoembed migrate`"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"{primary}: {_grant_advice(store)}"
    return None


def _grant_advice(store: Store) -> str:
    """Which GRANT the worker's role is missing, as far as the database can tell."""
    try:
        with store.connection() as conn:
            user, member = store.worker_role(conn)
            if member is None:
                return "the role autoembed_worker does not exist: run `autoembed migrate`"
            if not member:
                role = sql.Identifier(user).as_string(conn)
                return f"run `GRANT autoembed_worker TO {role};` as the database owner"
            missing = store.missing_grants(conn)
    except (psycopg.Error, PoolTimeout):
        missing = []
    if missing:
        return "autoembed_worker lacks a privilege; run " + " ".join(missing)
    return "run `autoembed migrate` as the database owner: it grants autoembed_worker what the worker needs"
