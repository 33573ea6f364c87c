"""The embedded local PostgreSQL cluster: initdb + pg_ctl under a project-local directory.

PostgreSQL refuses to run as root, so when the current user is root every server command
runs as the `postgres` system user (via runuser) and the cluster directory is handed to it.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from autoembed.errors import ConfigError, DatabaseUnavailable

log = logging.getLogger(__name__)

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
SUPERUSER = "postgres"


def find_pg_bin() -> Path:
    """The directory holding initdb/pg_ctl: $AUTOEMBED_PG_BIN, Debian's paths, or PATH."""
    explicit = os.environ.get("AUTOEMBED_PG_BIN")
    candidates = [explicit] if explicit else list(PG_BIN_CANDIDATES)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise ConfigError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found; run scripts/setup-system.sh "
        "or set AUTOEMBED_PG_BIN"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LocalCluster:
    """A PostgreSQL cluster in `directory`, listening on 127.0.0.1:`port`."""

    directory: Path
    port: int
    database: str = "autoembed"
    cron_database: str | None = None  # defaults to `database`

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        return self.directory / "server.log"

    def url(self, database: str | None = None) -> str:
        """The DSN of `database` (default: the cluster's main database)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database or self.database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(find_pg_bin() / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def initialized(self) -> bool:
        """True once initdb has run here."""
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        """True while the server of this directory is up."""
        return self.initialized() and self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def init(self) -> None:
        """Create the cluster (once): trust auth on loopback, pg_cron preloaded."""
        if self.initialized():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SUPERUSER)
            for path in (self.directory, *self.directory.parents):
                if path == Path("/"):
                    break
                os.chmod(path, os.stat(path).st_mode | 0o011)  # let postgres traverse
            shutil.chown(self.directory, owner.pw_uid, owner.pw_gid)
        result = self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust",
            "-E", "UTF8", "--locale=C.UTF-8", check=False,
        )
        if result.returncode != 0:
            raise DatabaseUnavailable(f"initdb failed in {self.data_dir}: {result.stderr.strip()}")
        conf = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.directory}'",
            "shared_preload_libraries = 'pg_cron'",
            f"cron.database_name = '{self.cron_database or self.database}'",
            "max_connections = 200",
            "fsync = off" if os.environ.get("AUTOEMBED_DEV_DB_FSYNC") == "off" else "",
        ]
        with open(self.data_dir / "postgresql.auto.conf", "a") as f:
            f.write("\n".join(line for line in conf if line) + "\n")

    def start(self) -> None:
        """Start the server (creating it first) and its main database; no-op when running."""
        self.init()
        if not self.running():
            result = self._run(
                "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir), "-l", str(self.log_file), check=False
            )
            if result.returncode != 0:
                tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
                raise DatabaseUnavailable(f"PostgreSQL did not start on port {self.port}: {result.stderr.strip()}\n{tail}")
        self.create_database(self.database)
        if self.cron_database and self.cron_database != self.database:
            self.create_database(self.cron_database)

    def create_database(self, name: str, template: str | None = None) -> None:
        """CREATE DATABASE `name` (optionally from `template`) unless it exists."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            if conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
                return
            stmt = sql.SQL("create database {}").format(sql.Identifier(name))
            if template:
                stmt += sql.SQL(" template {}").format(sql.Identifier(template))
            conn.execute(stmt)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `mode` is pg_ctl's (smart, fast, immediate)."""
        if self.running():
            self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir))

    def restart(self, mode: str = "fast") -> None:
        """Stop in `mode`, then start again on the same port."""
        self.stop(mode)
        self.start()


def dev_cluster(home: Path, port: int) -> LocalCluster:
    """The project's default development database under `home`."""
    return LocalCluster(directory=home.resolve() / "devdb", port=port)
