"""A table watched through a content function survives what moves a database: pg_upgrade, which
Supabase's major-version upgrades run and which refuses user tables with reg* columns such as
regprocedure, and a dump and restore, which renumbers every function. autoembed.sources names the
content function (schema.name) and finds it by that name and the table's row type."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from support import create_docs, drain, expected, watch

from autoembed import connections as db
from autoembed.devdb import LocalCluster, find_pg_bin, free_port


@pytest.fixture
def docs_by_function(conn) -> None:
    create_docs(conn)
    conn.execute("create function doc_input(d docs) returns text language sql immutable "
                 "as $$ select coalesce(d.title, '') || ': ' || coalesce(d.body, '') $$")
    watch(conn, content="doc_input")
    conn.execute("insert into docs (title, body) values ('kept', 'across upgrades')")


def pg_upgrade_check(server) -> subprocess.CompletedProcess:
    """`pg_upgrade --check` of the running test cluster against a new empty one (same version:
    the checks are those of a major upgrade). The new one lives outside pytest's base temp
    directory, whose mode a concurrent pytest session resets to 0700."""
    with tempfile.TemporaryDirectory(prefix="autoembed-upgrade-") as directory:
        new = LocalCluster(Path(directory) / "new", free_port())
        new.init()
        return _check(server.cluster, new)


def _check(old: LocalCluster, new: LocalCluster) -> subprocess.CompletedProcess:
    bin_dir = str(find_pg_bin())
    command = [f"{bin_dir}/pg_upgrade", "--check", "-b", bin_dir, "-B", bin_dir, "-d", str(old.data_dir),
               "-D", str(new.data_dir), "-p", str(old.port), "-P", str(new.port), "-U", "postgres"]
    if os.geteuid() == 0:  # PostgreSQL's tools refuse root, as LocalCluster does
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, cwd=new.directory, capture_output=True, text=True, timeout=120)


def test_pg_upgrade_accepts_a_database_whose_table_is_watched_through_a_content_function(
        server, conn, docs_by_function):
    if server.cluster is None or server.user is not None:
        pytest.skip("needs the plain profile's own cluster (its install user `postgres` is the new cluster's)")
    conn.execute("create table reg_probe (f regprocedure)")  # what autoembed.sources held before
    refused = pg_upgrade_check(server)
    assert refused.returncode != 0 and "reg* data types in user tables" in refused.stdout, refused.stdout
    conn.execute("drop table reg_probe")
    checked = pg_upgrade_check(server)
    assert checked.returncode == 0 and "Clusters are compatible" in checked.stdout, checked.stdout


def test_a_dump_restored_elsewhere_embeds_through_its_content_function(server, dsn, conn, docs_by_function,
                                                                        settings, tmp_path):
    if server.user is not None:
        pytest.skip("restoring a whole database needs a superuser (the plain profile's)")
    bin_dir = find_pg_bin()
    subprocess.run([bin_dir / "pg_dump", "--format=custom", "--file", tmp_path / "docs.dump", "--dbname", dsn],
                   check=True, capture_output=True)
    name = server.new_name("restored")
    restored = server.create_database(name)
    try:
        subprocess.run([bin_dir / "pg_restore", "--exit-on-error", "--dbname", restored, tmp_path / "docs.dump"],
                       check=True, capture_output=True)
        with psycopg.connect(restored, autocommit=True) as other:
            other.execute("alter table docs rename to documents")  # the function is found by the table's row type
            other.execute("insert into documents (title, body) values ('new', 'after the restore')")
        drain(restored, settings)
        with db.connect(restored) as other:
            assert other.execute("select state, rows, embedded from autoembed.status").fetchone() == ("ok", 2, 2)
            vector = other.execute("select embedding from documents where title = 'new'").fetchone()[0]
        assert (vector.to_numpy() == expected("new: after the restore")).all()
    finally:
        server.drop_database(name)
