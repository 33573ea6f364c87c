"""Real PostgreSQL for every test: a throwaway cluster (initdb + pg_ctl in a temp dir, pg_cron
preloaded), or the server at $AUTOEMBED_TEST_DSN, or a testcontainers Supabase Postgres where a
Docker engine runs. The schema is migrated once into a template; each test gets a copy."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pgmq.install import install_pgmq_from_sql
from psycopg import sql

from autoembed import connections as db
from autoembed.devdb import LocalCluster, find_pg_bin, free_port
from autoembed.errors import ConfigError
from autoembed.migrate import SQL_ROOT, apply_migrations
from autoembed.settings import Settings

MIGRATIONS = Path(str(SQL_ROOT / "migrations"))  # the package's own copy, as installed
TEMPLATE = "autoembed_template"
CRON_DB = "autoembed_cron"  # the cluster's cron.database_name


class Server:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_dsn: str, cluster: LocalCluster | None = None, *, user: str | None = None,
                 base_template: str | None = None):
        self.admin_dsn = admin_dsn
        self.cluster = cluster
        self.user = user  # the role tests connect as and databases belong to (default: the admin's)
        self.base_template = base_template  # what a new database is copied from (default: template1)
        self._ids = itertools.count()

    def url(self, database: str) -> str:
        return psycopg.conninfo.make_conninfo(self.admin_dsn, dbname=database, **({"user": self.user} if self.user else {}))

    def create_database(self, name: str, template: str | None = None) -> str:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            stmt = sql.SQL("create database {}").format(sql.Identifier(name))
            if template or self.base_template:
                stmt += sql.SQL(" template {}").format(sql.Identifier(template or self.base_template))
            if self.user:
                stmt += sql.SQL(" owner {}").format(sql.Identifier(self.user))
            conn.execute(stmt)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))

    def new_name(self, prefix: str = "t") -> str:
        return f"autoembed_{prefix}_{os.getpid()}_{next(self._ids)}"


def _local_cluster_available() -> bool:
    try:
        find_pg_bin()
        return True
    except ConfigError:
        return False


def _docker_available() -> bool:
    docker = shutil.which("docker")
    return bool(docker) and subprocess.run([docker, "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    if os.environ.get("AUTOEMBED_TEST_PROFILE") == "supabase":  # README: Development
        from support.supabase import FRESH_DATABASE, supabase_test_cluster

        with supabase_test_cluster(CRON_DB) as profile:
            yield Server(profile.admin_dsn, profile.cluster, user="postgres", base_template=FRESH_DATABASE)
        return
    explicit = os.environ.get("AUTOEMBED_TEST_DSN")
    if explicit:
        yield Server(explicit)
        return
    if _local_cluster_available():
        directory = Path(tempfile.mkdtemp(prefix="autoembed-test-"))
        cluster = LocalCluster(directory, free_port(), database=CRON_DB, cron_database=CRON_DB)
        os.environ.setdefault("AUTOEMBED_DEV_DB_FSYNC", "off")
        cluster.start()
        try:
            yield Server(cluster.url("postgres"), cluster)
        finally:
            cluster.stop("immediate")
            shutil.rmtree(directory, ignore_errors=True)
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("supabase/postgres:15.8.1.085", username="postgres", password="postgres",
                               dbname="postgres", driver=None) as container:
            yield Server(container.get_connection_url())
        return
    pytest.exit("no PostgreSQL: install the server (scripts/setup-system.sh), set AUTOEMBED_TEST_DSN, or run Docker", 2)


def plain_pgmq(conn: psycopg.Connection) -> None:
    """The plain profile: pgmq's newest SQL-only install (from the PyPI package), even where this
    machine also offers pgmq as an extension (scripts/setup-supabase-profile.sh installs 1.4.4 and
    a newer one for the Supabase profile's tests)."""
    if conn.execute("select to_regnamespace('pgmq') is null").fetchone()[0]:
        install_pgmq_from_sql(conn=conn)
        conn.commit()


@pytest.fixture(scope="session")
def template(server: Server) -> str:
    """A database with every migration applied, copied for each test."""
    dsn = server.create_database(TEMPLATE)
    with db.connect(dsn) as conn:
        plain_pgmq(conn)
        apply_migrations(conn)
    return TEMPLATE


@pytest.fixture(scope="session")
def cron_dsn(server: Server) -> str:
    """The database pg_cron runs in (cron.database_name), migrated; skips on servers whose cron
    database the tests do not know."""
    if server.cluster is None:
        pytest.skip("needs the tests' own cluster, whose cron.database_name is known")
    url = server.url(CRON_DB)
    with db.connect(url) as conn:
        plain_pgmq(conn)
        apply_migrations(conn)
    return url


@pytest.fixture
def dsn(server: Server, template: str) -> Iterator[str]:
    """A fresh migrated database for this test."""
    name = server.new_name()
    url = server.create_database(name, template=template)
    yield url
    server.drop_database(name)


@pytest.fixture
def empty_dsn(server: Server) -> Iterator[str]:
    """A fresh database with nothing installed."""
    name = server.new_name("empty")
    url = server.create_database(name)
    yield url
    server.drop_database(name)


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to this test's database, vectors registered."""
    with db.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for in-process workers: fast polling and retries."""
    return Settings(poll_interval=0.2, backoff_base=0.2, backoff_max=1.0, visibility_timeout=30,
                    home=tmp_path / "home")
