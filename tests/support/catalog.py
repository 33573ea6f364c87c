"""What a migrated database's schema is, as comparable text: pg_dump of the autoembed schema
(tables, columns, constraints, indexes, types, functions with their attributes, views, triggers,
comments, grants) plus what lives outside it (the roles, the queue tables' grants, pg_cron jobs)."""

from __future__ import annotations

import re
import subprocess

import psycopg

from autoembed.devdb import find_pg_bin

_OUTSIDE = {
    "roles": "select rolname, rolcanlogin, rolinherit, shobj_description(oid, 'pg_authid') from pg_roles "
             "where rolname like 'autoembed%' order by 1",
    "queue_grants": "select c.relname, c.relacl::text from pg_class c "
                    "where c.relnamespace = 'pgmq'::regnamespace and c.relname like '%autoembed_jobs%' order by 1",
    "queue_storage": "select attname, attstorage from pg_attribute "
                     "where attrelid = 'pgmq.q_autoembed_jobs'::regclass and attnum > 0 order by attnum",
    "schema_acl": "select nspacl::text from pg_namespace where nspname = 'autoembed'",
}


def schema_dump(dsn: str) -> str:
    """pg_dump --schema-only of the autoembed schema, without its version banner and the ledger's rows."""
    dump = subprocess.run(
        [str(find_pg_bin() / "pg_dump"), "--schema-only", "--schema=autoembed", "--no-owner", "--dbname", dsn],
        check=True, capture_output=True, text=True,
    ).stdout
    dump = re.sub(r"^-- Dumped (from|by) .*\n", "", dump, flags=re.M)
    return re.sub(r"^\\(un)?restrict \S+\n", "", dump, flags=re.M)  # pg_dump 15.14+: a random key


def snapshot(dsn: str) -> dict[str, object]:
    """The schema and the objects outside it that autoembed's SQL sets up."""
    facts: dict[str, object] = {"autoembed schema": schema_dump(dsn)}
    with psycopg.connect(dsn) as conn:
        for name, query in _OUTSIDE.items():
            facts[name] = conn.execute(query).fetchall()
        if conn.execute("select to_regclass('cron.job') is not null").fetchone()[0]:
            facts["cron_jobs"] = conn.execute("select jobname, schedule, command from cron.job "
                                              "where jobname like 'autoembed%' order by 1").fetchall()
    return facts
