"""What the triggers left behind, and rows made to look embedded without running a worker."""

from __future__ import annotations

import psycopg
from psycopg import sql

from support import DIMS


def queued_keys(conn: psycopg.Connection) -> list[str]:
    """The keys the job queue names, each once, sorted (as text, like autoembed.jobs)."""
    return sorted(pk for (pk,) in conn.execute("select distinct pk from autoembed.jobs"))


def pretend_embedded(conn: psycopg.Connection, source_id: int, table: str = "docs", content_sql: str = "t.body") -> None:
    """Give every row of `table` a vector and the row_state the worker records with it, as a
    worker's write-back would (an UPDATE of the vector column only)."""
    conn.execute(sql.SQL("update {} set embedding = array_fill(0.1, array[{}])::vector")
                 .format(sql.Identifier(table), sql.Literal(DIMS)))
    conn.execute(sql.SQL("insert into autoembed.row_state (source_id, pk, content_hash) "
                         "select %s, t.id::text, md5({})::uuid from {} t "
                         "on conflict on constraint row_state_pkey do nothing")
                 .format(sql.SQL(content_sql), sql.Identifier(table)), (source_id,))
