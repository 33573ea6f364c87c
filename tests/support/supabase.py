"""A throwaway PostgreSQL 15 cluster set up the way Supabase's Postgres 15 image sets one up, from
Supabase's own scripts in ../shared/vendor/supabase-postgres (applied from there, never copied).

What the profile has, as on Supabase:
- `supabase_admin` is the bootstrap superuser; `postgres` owns the database but is demoted to a
  non-superuser (CREATEDB CREATEROLE REPLICATION BYPASSRLS) by Supabase's demote migration, with
  Supabase's later grants (`anon`, `authenticated`, `service_role`, `pg_monitor`,
  `pg_read_all_data`, `pg_signal_backend`, everything in schema `extensions`);
- the roles `anon`, `authenticated`, `service_role` (inherit), `authenticator`, `dashboard_user`,
  `supabase_auth_admin`, `supabase_storage_admin`, `supabase_replication_admin`,
  `supabase_read_only_user`; the schemas `extensions`, `auth` and `storage` (tables and helper
  functions such as `auth.uid()`, without the services that use them); Supabase's event triggers
  (PostgREST's schema-reload notice, the grants that follow `create extension pg_net/pg_cron`);
- `shared_preload_libraries` with pg_stat_statements, pg_cron and pg_net; `cron.database_name` and
  `pg_net.database_name` name this profile's database (pg_net sends only from that one);
- extensions created as Supabase creates them, by the superuser on the user's behalf (what
  supautils does there): `vector` in `extensions`, `pg_net` in `extensions` (its functions in
  `net`, made security definer by Supabase's event trigger), `pg_cron` followed by Supabase's
  after-create script, `pgmq` (1.4.4 unless told otherwise; by default as Supabase's dashboard and
  docs enable it, in a schema `pgmq` that `postgres` created first) handed to `postgres` as
  Supabase's after-create script does, and `plpgsql_check` (which `supabase db lint` creates).

What it leaves out: the services (GoTrue auth, Storage API, Realtime, PostgREST), supautils (so
`postgres` cannot create privileged extensions itself: they are created here beforehand),
pgsodium and Vault, pg_graphql, pgjwt (no Debian package), safeupdate, pgaudit, plan_filter,
timescaledb, pg_tle and the other extensions the image carries; the migrations that only concern
those (listed in SKIPPED_MIGRATIONS) and the lines of applied files that need them (LEFT_OUT_LINES).
Differences in versions, where the machine's setup cannot provide Supabase's: pg_cron is whatever
scripts/setup-supabase-profile.sh installed (1.6.5, else Debian 12's 1.4).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from autoembed.devdb import LocalCluster, find_pg_bin, free_port
from autoembed.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
VENDOR_DIR = REPO_ROOT.parent / "shared" / "vendor"
SUPABASE_DIR = VENDOR_DIR / "supabase-postgres"
INIT_SCRIPTS = SUPABASE_DIR / "migrations" / "db" / "init-scripts"
ROLE_MIGRATIONS = SUPABASE_DIR / "migrations" / "db" / "migrations"
EXTENSION_SCRIPTS = SUPABASE_DIR / "ansible" / "files" / "postgresql_extension_custom_scripts"
PGMQ_OWNER_SQL = Path(__file__).with_name("supabase_pgmq_owner.sql")
#: where scripts/setup-supabase-profile.sh installs the Supabase CLI (npm supabase@2.117.0)
SUPABASE_CLI = Path(os.environ.get("AUTOEMBED_SUPABASE_CLI", "/opt/autoembed/supabase-cli/node_modules/.bin/supabase"))

ADMIN = "supabase_admin"
PASSWORD = "postgres"  # the Supabase CLI's local default; the cluster trusts loopback anyway
PGMQ_SUPABASE_VERSION = "1.4.4"
PGMQ_NEWEST_VERSION = "1.13.0"  # the newest pgmq extension scripts/setup-supabase-profile.sh installs
PRELOAD = "pg_stat_statements, pg_cron, pg_net"
_BOOTSTRAP = "supabase_bootstrap"
#: the test profile's copy of a new Supabase project's database, before autoembed: the template of
#: every database tests create (tests/conftest.py's Server under AUTOEMBED_TEST_PROFILE=supabase)
FRESH_DATABASE = "supabase_fresh"  # a superuser that exists only while the bootstrap role is renamed

#: Supabase migrations this profile does not apply, and why.
SKIPPED_MIGRATIONS = {
    "20211115181400_update-auth-permissions.sql": "GoTrue's own grants",
    "20211118015519_create-realtime-schema.sql": "Realtime",
    "20211122051245_update-realtime-permissions.sql": "Realtime",
    "20211124212715_update-auth-owner.sql": "GoTrue's own ownership",
    "20211130151719_update-realtime-permissions.sql": "Realtime",
    "20220118070449_enable-safeupdate-postgrest.sql": "safeupdate is not installed (authenticator could not log in)",
    "20220224211803_fix-postgrest-supautils.sql": "supautils",
    "20220317095840_pg_graphql.sql": "pg_graphql",
    "20220322085208_gotrue-session-limit.sql": "GoTrue",
    "20220404205710_pg_graphql-on-by-default.sql": "pg_graphql",
    "20220613123923_pg_graphql-pg-dump-perms.sql": "pg_graphql",
    "20221207154255_create_pgsodium_and_vault.sql": "pgsodium and Vault",
    "20231017062225_grant_pg_graphql_permissions_for_custom_roles.sql": "pg_graphql",
}
#: Lines left out of applied Supabase files because they need a part the profile lacks.
LEFT_OUT_LINES = {
    "00000000000000-initial-schema.sql": re.compile(r"\bpgjwt\b"),
    "20230529180330_alter_api_roles_for_inherit.sql": re.compile(r"\bpgsodium_keyholder\b"),
}


@dataclass(frozen=True)
class SupabaseDatabase:
    """The profile's cluster and the one database it serves (pg_cron's and pg_net's)."""

    cluster: LocalCluster
    database: str

    def dsn(self, role: str = "postgres") -> str:
        """A DSN of the profile's database as `role` (with Supabase's local password)."""
        return make_conninfo(self.cluster.url(self.database), user=role, password=PASSWORD)

    @property
    def postgres_dsn(self) -> str:
        """As `postgres`: the non-superuser that owns the database and runs migrations."""
        return self.dsn("postgres")

    @property
    def admin_dsn(self) -> str:
        """As `supabase_admin`, the superuser."""
        return self.dsn(ADMIN)

    def url(self, role: str = "postgres") -> str:
        """A URL for the Supabase CLI's --db-url (it wants one, with sslmode=disable locally)."""
        return (f"postgresql://{role}:{PASSWORD}@127.0.0.1:{self.cluster.port}/{self.database}"
                "?sslmode=disable")

    def stop(self) -> None:
        """Stop the server (immediately: it is throwaway)."""
        self.cluster.stop("immediate")


def _extension_files(sharedir: Path, pgmq_version: str) -> dict[str, Path]:
    return {
        "pg_net": sharedir / "pg_net.control",
        f"pgmq {pgmq_version}": sharedir / f"pgmq--{pgmq_version}.sql",
        "pg_cron": sharedir / "pg_cron.control",
        "pgvector": sharedir / "vector.control",
        "plpgsql_check": sharedir / "plpgsql_check.control",
    }


def missing_parts(pgmq_version: str = PGMQ_SUPABASE_VERSION) -> list[str]:
    """What the profile needs and this machine lacks (empty: it can start), each with its remedy."""
    missing = [] if SUPABASE_DIR.is_dir() else [f"Supabase's scripts ({SUPABASE_DIR} is absent)"]
    try:
        pg_config = find_pg_bin() / "pg_config"
    except ConfigError as exc:
        return [*missing, str(exc)]
    sharedir = Path(subprocess.run([pg_config, "--sharedir"], capture_output=True, text=True,
                                   check=True).stdout.strip()) / "extension"
    missing += [f"{name} (scripts/setup-system.sh and scripts/setup-supabase-profile.sh install it)"
                for name, path in _extension_files(sharedir, pgmq_version).items() if not path.exists()]
    return missing


def _vendor_sql(path: Path) -> str:
    """A Supabase file's text, less the lines that need a part the profile lacks."""
    text = path.read_text(encoding="utf-8")
    pattern = LEFT_OUT_LINES.get(path.name)
    if pattern:
        text = "\n".join(line for line in text.splitlines() if not pattern.search(line))
    return text


def _run_files(dsn: str, paths: Iterable[Path]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for path in paths:
            try:
                conn.execute(_vendor_sql(path))
            except psycopg.Error as exc:
                raise RuntimeError(f"Supabase profile: {path.name} failed: {exc}") from exc


def _become_supabase_bootstrap(profile: SupabaseDatabase) -> None:
    """Rename LocalCluster's bootstrap role `postgres` to `supabase_admin` and create `postgres` as
    the superuser Supabase's migrate.sh creates before its init scripts run."""
    with psycopg.connect(profile.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} superuser login").format(sql.Identifier(_BOOTSTRAP)))
    with psycopg.connect(profile.dsn(_BOOTSTRAP), dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("alter role postgres rename to {}").format(sql.Identifier(ADMIN)))
        conn.execute(sql.SQL("create role postgres superuser login password {}").format(sql.Literal(PASSWORD)))
        conn.execute(sql.SQL("alter role {} password {}").format(sql.Identifier(ADMIN), sql.Literal(PASSWORD)))
        for database in {"postgres", profile.database}:
            conn.execute(sql.SQL("alter database {} owner to postgres").format(sql.Identifier(database)))
    with psycopg.connect(profile.admin_dsn, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(_BOOTSTRAP)))


def _create_pgmq(admin: psycopg.Connection, version: str) -> None:
    """`create extension pgmq` at `version` by the superuser, then Supabase's after-create script."""
    admin.execute(sql.SQL("create extension pgmq version {}").format(sql.Literal(version)))
    if version == PGMQ_SUPABASE_VERSION:
        # Supabase's pgmq after-create script replaces drop_queue(text), which 1.4.4 does not
        # have (its drop_queue takes (text, boolean)); its ownership handover is done here.
        admin.execute(PGMQ_OWNER_SQL.read_text(encoding="utf-8"))
    else:
        admin.execute((EXTENSION_SCRIPTS / "pgmq" / "after-create.sql").read_text(encoding="utf-8"))


def use_pgmq(project: SupabaseDatabase, version: str) -> None:
    """Replace the pgmq extension of a database with nothing of autoembed yet by `version` (one
    that scripts/setup-supabase-profile.sh installed), created as on Supabase."""
    with psycopg.connect(project.admin_dsn, autocommit=True) as conn:
        conn.execute("drop extension pgmq")
        _create_pgmq(conn, version)


def _create_extensions(profile: SupabaseDatabase, pgmq_version: str, pgmq_schema_first: bool) -> None:
    """vector, pgmq, pg_net, pg_cron and plpgsql_check as supautils creates them for `postgres` on
    Supabase: by the superuser, followed by Supabase's after-create scripts."""
    if pgmq_schema_first:
        with psycopg.connect(profile.postgres_dsn, autocommit=True) as conn:
            conn.execute("create schema if not exists pgmq")
    with psycopg.connect(profile.admin_dsn, autocommit=True) as conn:
        conn.execute("create extension vector with schema extensions")
        _create_pgmq(conn, pgmq_version)
        conn.execute("create extension pg_net with schema extensions")
        conn.execute("create extension pg_cron with schema pg_catalog")
        conn.execute((EXTENSION_SCRIPTS / "pg_cron" / "after-create.sql").read_text(encoding="utf-8"))
        # `supabase db lint` runs `create extension if not exists plpgsql_check` as postgres, which
        # supautils allows on Supabase; here the extension is there beforehand.
        conn.execute("create extension plpgsql_check with schema extensions")


def _restart_with_preload(profile: SupabaseDatabase, libraries: str) -> None:
    """Restart the server with `libraries` as shared_preload_libraries (later conf lines win)."""
    profile.cluster.stop("fast")
    with open(profile.cluster.data_dir / "postgresql.auto.conf", "a") as conf:
        conf.write(f"shared_preload_libraries = '{libraries}'\n")
    profile.cluster.start()


def copy_database(profile: SupabaseDatabase, name: str) -> None:
    """CREATE DATABASE `name` as a copy of the profile's database, owned by `postgres`.

    pg_cron's and pg_net's background workers stay connected to the database they serve, and a
    database with other sessions cannot be copied: the copy is made on a restart without them."""
    _restart_with_preload(profile, "pg_stat_statements")
    try:
        with psycopg.connect(profile.admin_dsn, dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("create database {} template {} owner postgres").format(
                sql.Identifier(name), sql.Identifier(profile.database)))
    finally:
        _restart_with_preload(profile, PRELOAD)


def start_supabase_cluster(directory: Path, *, database: str = "postgres", port: int | None = None,
                           pgmq_version: str = PGMQ_SUPABASE_VERSION,
                           pgmq_schema_first: bool = True) -> SupabaseDatabase:
    """Create and start the profile's cluster in `directory` (which must not hold one yet).

    `database` is the one database set up as Supabase's (its `postgres`), and the one pg_cron and
    pg_net serve. `pgmq_version` picks the pgmq extension version: Supabase's 1.4.4, or a newer one
    that scripts/setup-supabase-profile.sh installed. With `pgmq_schema_first` (the default)
    `postgres` creates the schema pgmq before the extension goes in it, as Supabase's dashboard and
    docs do; without it, a bare `create extension pgmq` leaves the schema to the superuser, and
    `postgres` cannot create queues. Raises RuntimeError naming what the machine lacks or which
    Supabase script failed; psycopg's error where creating an extension fails."""
    missing = missing_parts(pgmq_version)
    if missing:
        raise RuntimeError("the Supabase profile cannot start: missing " + "; ".join(missing))
    cluster = LocalCluster(directory, port or free_port(), database=database, cron_database=database)
    cluster.init()
    with open(cluster.data_dir / "postgresql.auto.conf", "a") as conf:  # later lines win
        conf.write(f"shared_preload_libraries = '{PRELOAD}'\n"
                   f"pg_net.database_name = '{database}'\n"
                   "wal_level = logical\n"
                   "password_encryption = 'scram-sha-256'\n")
    cluster.start()
    profile = SupabaseDatabase(cluster, database)
    _become_supabase_bootstrap(profile)
    _run_files(profile.dsn("postgres"), sorted(INIT_SCRIPTS.glob("*.sql")))
    _run_files(profile.admin_dsn, (path for path in sorted(ROLE_MIGRATIONS.glob("*.sql"))
                                   if path.name not in SKIPPED_MIGRATIONS))
    _create_extensions(profile, pgmq_version, pgmq_schema_first)
    return profile


def create_project_database(profile: SupabaseDatabase, name: str) -> SupabaseDatabase:
    """A new database `name` as a new Supabase project's (a copy of FRESH_DATABASE, owned by
    `postgres`). pg_cron and pg_net are installed in it but serve only the profile's database."""
    with psycopg.connect(profile.admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {} template {} owner postgres").format(
            sql.Identifier(name), sql.Identifier(FRESH_DATABASE)))
    return SupabaseDatabase(profile.cluster, name)


def drop_project_database(project: SupabaseDatabase) -> None:
    """Drop a database made by create_project_database (closing its sessions)."""
    with psycopg.connect(project.admin_dsn, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(project.database)))


def supabase_cli(*args: str, cwd: Path, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the Supabase CLI in `cwd` (its HOME too: the CLI writes ~/.supabase and supabase/.temp),
    without telemetry. Raises AssertionError with its output when `check` and it fails."""
    env = {**os.environ, "HOME": str(cwd), "DO_NOT_TRACK": "1", "SUPABASE_TELEMETRY_DISABLED": "1"}
    result = subprocess.run([str(SUPABASE_CLI), *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"supabase {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@contextmanager
def supabase_test_cluster(database: str) -> Iterator[SupabaseDatabase]:
    """The profile as the whole test session's server (AUTOEMBED_TEST_PROFILE=supabase): pg_cron
    and pg_net serve `database`, and FRESH_DATABASE is a copy of it as Supabase set it up, for the
    tests' databases. Skips the tests where this machine lacks a part of the profile."""
    missing = missing_parts()
    if missing:
        pytest.skip("Supabase profile unavailable: missing " + "; ".join(missing))
    directory = Path(tempfile.mkdtemp(prefix="autoembed-supabase-test-"))
    os.environ.setdefault("AUTOEMBED_DEV_DB_FSYNC", "off")
    profile = start_supabase_cluster(directory, database=database)
    try:
        copy_database(profile, FRESH_DATABASE)
        yield profile
    finally:
        profile.stop()
        shutil.rmtree(directory, ignore_errors=True)
