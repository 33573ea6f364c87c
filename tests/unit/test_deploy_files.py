"""Static checks of the deployment files: docker-compose.yml, Dockerfile, .dockerignore and the
Supabase CLI project in supabase/ (its generated migrations: tests/migrations/test_released_files.py).

No Docker engine is needed: the files are parsed (PyYAML, tomllib) and checked against what the
stack relies on at run time.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SUPABASE_CONFIG = REPO / "supabase" / "config.toml"
SUPABASE_MIGRATIONS = REPO / "supabase" / "migrations"
WORKER_LOGIN_SQL = REPO / "deploy" / "compose" / "worker_login.sql"

TORCH_VERSION = "2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SUPABASE_PG15_IMAGE = re.compile(r"^(?:public\.ecr\.aws/)?supabase/postgres:15\.\d+\.\d+\.\d+$")
# The Supabase CLI applies files named <version>_<name>.sql; db/migrations uses 14-digit versions.
MIGRATION_NAME = re.compile(r"^\d{14}_[^/]+\.sql$")
# Roles to which the supabase/postgres image gives POSTGRES_PASSWORD during initialisation.
ROLES_WITH_POSTGRES_PASSWORD = {"postgres", "supabase_admin"}
# What a least-privilege login may be given, and what it must never hold (CREATE ROLE options).
LOGIN_ROLE = re.compile(r"create role (\w+) login in role autoembed_worker password %L", re.I)
ROLE_POWERS = re.compile(r"\b(superuser|createrole|createdb|bypassrls|replication|grant\b|admin option)", re.I)


# --------------------------------------------------------------------------------------------
# docker compose helpers


_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: str) -> str:
    """Resolve compose variables as `docker compose` would with none of them set: ${VAR:-d} and
    ${VAR-d} give d, $$ gives $. A variable without a default, or a required one (${VAR:?}),
    fails the test, since the stack would then depend on the caller's environment."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        if match.group("op") in (":-", "-"):
            return match.group("arg")
        pytest.fail(f"compose variable {name!r} has no default: {match.group(0)}")

    return _INTERPOLATION.sub(replace, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), (
        "docker-compose.yml must be a mapping with a services mapping"
    )
    return data


def service(compose: dict, name: str) -> dict:
    assert name in compose["services"], f"docker-compose.yml has no {name!r} service"
    return compose["services"][name]


def environment(svc: dict) -> dict[str, str]:
    """A service's environment (mapping or list form), interpolated."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): interpolate(str(v)) if v is not None else "" for k, v in env.items()}


def command(svc: dict) -> list[str]:
    cmd = svc.get("command")
    if cmd is None:
        return []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def depends_condition(svc: dict, on: str) -> str | None:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return "service_started" if on in deps else None
    if on not in deps:
        return None
    return (deps[on] or {}).get("condition", "service_started")


def db_settings(compose: dict) -> dict[str, str]:
    """What the db container runs with: password, database, and the databases pg_cron and
    pg_net's background workers use (the image's defaults unless `-c` overrides them)."""
    db = service(compose, "db")
    env = environment(db)
    # The image's postgresql.conf has cron.database_name = 'postgres'; pg_net defaults to it too.
    gucs = {"cron.database_name": "postgres", "pg_net.database_name": "postgres"}
    args = command(db)
    for i, arg in enumerate(args):
        setting = arg[2:] if arg.startswith("-c") and len(arg) > 2 else None
        if arg == "-c" and i + 1 < len(args):
            setting = args[i + 1]
        if setting and "=" in setting:
            name, value = (part.strip() for part in setting.split("=", 1))
            if name in gucs:
                gucs[name] = value.strip("'\"")
    return {
        "password": env.get("POSTGRES_PASSWORD", ""),
        "database": env.get("POSTGRES_DB") or "postgres",
        "cron_database": gucs["cron.database_name"],
        "pg_net_database": gucs["pg_net.database_name"],
    }


# --------------------------------------------------------------------------------------------
# docker-compose.yml


def test_compose_defines_db_migrate_worker_login_and_worker(compose):
    assert {"db", "migrate", "worker-login", "worker"} <= set(compose["services"]), sorted(compose["services"])


def published_ports(svc: dict) -> list[str]:
    """A service's published ports, short syntax (long syntax as host_ip:published:target)."""
    ports = []
    for port in svc.get("ports") or []:
        if isinstance(port, dict):
            port = f"{port.get('host_ip', '')}:{port.get('published', '')}:{port['target']}"
        ports.append(interpolate(str(port)))
    return ports


def test_every_published_port_listens_on_loopback_only(compose):
    for name, svc in compose["services"].items():
        for port in published_ports(svc):
            assert port.startswith("127.0.0.1:") and port.count(":") == 2, (
                f"{name} publishes {port!r} on every interface: use 127.0.0.1:HOST:CONTAINER")


def test_db_is_supabase_postgres_15_with_healthcheck(compose):
    db = service(compose, "db")
    image = db.get("image", "")
    assert SUPABASE_PG15_IMAGE.match(image), f"db image {image!r} is not a supabase/postgres 15 tag"
    test = (db.get("healthcheck") or {}).get("test")
    assert test, "db has no healthcheck"
    test_text = test if isinstance(test, str) else " ".join(map(str, test))
    assert "pg_isready" in test_text, f"db healthcheck does not use pg_isready: {test_text!r}"
    assert db["healthcheck"].get("disable") is not True


def test_db_password_port_and_named_volume(compose):
    db = service(compose, "db")
    assert db_settings(compose)["password"], "db sets no POSTGRES_PASSWORD"
    ports = [str(p) for p in db.get("ports") or []]
    assert any(p.endswith("54322:5432") for p in ports), f"db does not publish 54322:5432: {ports}"
    named = set(compose.get("volumes") or {})
    data_volumes = [
        str(v).split(":")[0]
        for v in db.get("volumes") or []
        if str(v).split(":")[1:2] == ["/var/lib/postgresql/data"]
    ]
    assert data_volumes and data_volumes[0] in named, (
        f"db's /var/lib/postgresql/data is not on a named volume: {db.get('volumes')}"
    )


@pytest.mark.parametrize("name", ["migrate", "worker"])
def test_service_builds_from_repo_dockerfile(compose, name):
    build = service(compose, name).get("build")
    assert build is not None, f"{name} is not built from the Dockerfile"
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
    dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
    assert context == REPO, f"{name} build context is {context}, not the repository"
    assert dockerfile == DOCKERFILE.resolve() and DOCKERFILE.is_file(), (
        f"{name} builds from {dockerfile}, not the repository's Dockerfile"
    )


def test_migrate_and_worker_share_one_image(compose):
    migrate, worker = service(compose, "migrate"), service(compose, "worker")
    assert migrate.get("build") == worker.get("build")
    assert migrate.get("image") == worker.get("image")


def test_startup_order(compose):
    migrate, login, worker = service(compose, "migrate"), service(compose, "worker-login"), service(compose, "worker")
    assert depends_condition(migrate, "db") == "service_healthy", migrate.get("depends_on")
    # the login is granted autoembed_worker, which the migrations create
    assert depends_condition(login, "migrate") == "service_completed_successfully", login.get("depends_on")
    assert depends_condition(worker, "worker-login") == "service_completed_successfully", (
        worker.get("depends_on")
    )
    assert command(migrate) == ["migrate"], command(migrate)
    # YAML 1.1 reads a bare `no` as false: it must be the string "no".
    for one_shot in (migrate, login):
        assert one_shot.get("restart", "no") == "no", one_shot.get("restart")


def database_url(compose: dict, name: str):
    """A service's DATABASE_URL, split; it must point at db's port 5432 and database."""
    env = environment(service(compose, name))
    assert "DATABASE_URL" in env, f"{name} has no DATABASE_URL"
    url = urlsplit(env["DATABASE_URL"])
    db = db_settings(compose)
    assert url.scheme in ("postgres", "postgresql"), url.scheme
    assert url.hostname == "db", f"{name} DATABASE_URL host is {url.hostname!r}, not 'db'"
    assert url.port in (None, 5432), f"{name} DATABASE_URL port {url.port} is not db's 5432"
    assert url.path.lstrip("/") == db["database"], (
        f"{name} DATABASE_URL database {url.path!r} is not db's {db['database']!r}"
    )
    return url


def test_migrate_connects_as_the_database_owner(compose):
    url = database_url(compose, "migrate")
    assert unquote(url.username or "") in ROLES_WITH_POSTGRES_PASSWORD, url.username
    assert unquote(url.password or "") == db_settings(compose)["password"], (
        "migrate's DATABASE_URL password differs from db's POSTGRES_PASSWORD"
    )


def worker_login(compose: dict) -> tuple[str, str]:
    """(role, password) the worker-login step creates: psql runs deploy/compose/worker_login.sql
    (mounted into its container) with -v password=..., as db's owner."""
    login = service(compose, "worker-login")
    assert SUPABASE_PG15_IMAGE.match(login.get("image", "")), login.get("image")
    args = [interpolate(a) for a in command(login)]
    entrypoint = login.get("entrypoint")
    assert (entrypoint if isinstance(entrypoint, list) else shlex.split(entrypoint or "")) == ["psql"], entrypoint
    assert "ON_ERROR_STOP=1" in args, "psql must stop at the first error (and exit non-zero)"
    script = args[args.index("-f") + 1]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in login.get("volumes") or []}
    assert (COMPOSE_FILE.parent / mounts[script]).resolve() == WORKER_LOGIN_SQL, mounts
    password = next(a.split("=", 1)[1] for a in args if a.startswith("password="))
    env = environment(login)
    db = db_settings(compose)
    assert (env.get("PGHOST"), env.get("PGUSER"), env.get("PGPASSWORD"), env.get("PGDATABASE")) == (
        "db", "postgres", db["password"], db["database"])
    text = WORKER_LOGIN_SQL.read_text()
    roles = LOGIN_ROLE.findall(text)
    assert len(roles) == 1, f"{WORKER_LOGIN_SQL.name} must create one login in role autoembed_worker"
    assert not ROLE_POWERS.search(text), ROLE_POWERS.search(text)
    return roles[0], password


def test_the_worker_connects_as_the_least_privilege_login_the_compose_step_creates(compose):
    role, password = worker_login(compose)
    url = database_url(compose, "worker")
    assert unquote(url.username or "") == role and role not in ROLES_WITH_POSTGRES_PASSWORD, url.username
    assert password and unquote(url.password or "") == password, "the worker's password is not the login's"


def test_pg_cron_and_pg_net_run_in_the_workers_database(compose):
    # pg_cron runs jobs only in cron.database_name and pg_net's worker sends requests queued in
    # pg_net.database_name; the migrations set both up in the database the worker uses.
    db = db_settings(compose)
    url = urlsplit(environment(service(compose, "worker"))["DATABASE_URL"])
    worker_db = url.path.lstrip("/")
    assert db["cron_database"] == worker_db == db["database"], db
    assert db["pg_net_database"] == worker_db, db


def test_worker_healthcheck_asks_healthz_of_its_http_port(compose):
    worker = service(compose, "worker")
    port = environment(worker)["AUTOEMBED_METRICS_PORT"]
    check = worker.get("healthcheck") or {}
    test = check.get("test")
    assert isinstance(test, list) and test[0] == "CMD", f"healthcheck is not exec form: {test!r}"
    assert check.get("disable") is not True
    probe = " ".join(test[1:])
    # any path of the old metrics server answered 200: only /healthz says whether the loop fails
    urls = re.findall(r"https?://[^'\"\s]+", probe)
    assert urls == [f"http://127.0.0.1:{port}/healthz"], urls
    assert "urlopen" in probe, "the probe must fail on a non-2xx answer (urlopen raises on 503)"


def test_worker_command_metrics_and_model_cache(compose):
    worker = service(compose, "worker")
    assert command(worker) == ["worker"], command(worker)
    assert worker.get("restart") == "unless-stopped", worker.get("restart")
    env = environment(worker)
    port = env.get("AUTOEMBED_METRICS_PORT")
    assert port and port.isdigit(), f"worker sets no AUTOEMBED_METRICS_PORT: {port!r}"
    ports = [str(p) for p in worker.get("ports") or []] + [str(p) for p in worker.get("expose") or []]
    assert any(p.split(":")[-1].split("/")[0] == port for p in ports), (
        f"worker does not expose metrics port {port}: {ports}"
    )
    user = dockerfile_user()
    targets = [str(v).split(":")[1] for v in worker.get("volumes") or [] if ":" in str(v)]
    assert f"/home/{user}/.cache" in targets, f"no model cache volume at /home/{user}/.cache"


def compose_cli() -> list[str] | None:
    """`docker compose` (v2) or `docker-compose` (v1), when installed; neither needs an engine
    for `config`."""
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(compose_cli() is None, reason="neither docker compose nor docker-compose")
def test_compose_file_validates_with_the_compose_cli():
    result = subprocess.run(
        [*compose_cli(), "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr or result.stdout


# --------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends in a line continuation"
    return instructions


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return value


def dockerfile_user() -> str:
    users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
    assert users, "Dockerfile sets no USER: the image would run as root"
    return users[-1].split(":")[0]


def test_dockerfile_base_image():
    froms = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert froms and froms[-1].split()[0] == "python:3.11-slim", froms


def test_dockerfile_installs_cpu_torch_before_the_project():
    runs = [args for keyword, args in dockerfile_instructions() if keyword == "RUN"]
    torch_runs = [i for i, run in enumerate(runs) if re.search(r"\btorch==", run)]
    cpu_runs = [
        i
        for i in torch_runs
        if f"torch=={TORCH_VERSION}" in runs[i].split()
        and re.search(rf"--index-url[= ]{re.escape(TORCH_CPU_INDEX)}(\s|$)", runs[i])
    ]
    assert cpu_runs, f"no RUN installs torch=={TORCH_VERSION} from {TORCH_CPU_INDEX}"
    project_runs = [i for i, run in enumerate(runs) if re.search(r"autoembed-\*\.whl\)?\[local\]", run)]
    assert project_runs, "no RUN installs the built wheel with the local extra (autoembed-*.whl[local])"
    assert min(cpu_runs) < min(project_runs), "torch must be installed before the project"
    for i in project_runs:
        assert TORCH_CPU_INDEX not in runs[i], "the CPU index is for torch only"


def test_dockerfile_runs_as_non_root():
    user = dockerfile_user()
    assert user not in ("root", "0"), f"USER {user}"
    runs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    assert re.search(rf"(useradd|adduser)\b[^&;]*\b{re.escape(user)}\b", runs), (
        f"the Dockerfile does not create user {user!r}"
    )


def test_dockerfile_entrypoint_and_default_command():
    instructions = dockerfile_instructions()
    entrypoints = [args for keyword, args in instructions if keyword == "ENTRYPOINT"]
    cmds = [args for keyword, args in instructions if keyword == "CMD"]
    assert entrypoints and exec_form(entrypoints[-1]) == ["autoembed"], entrypoints
    assert cmds and exec_form(cmds[-1]) == ["worker"], cmds


def test_dockerfile_installs_a_built_wheel_not_the_source_tree():
    """The image runs an installed package that carries its SQL: no editable install, no db/ copied."""
    instructions = dockerfile_instructions()
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert any(re.search(r"pip wheel\b.*--no-deps", run) for run in runs), "no stage builds the wheel"
    assert not any("--editable" in run or re.search(r"pip install\s+(-e|--editable)\b", run) for run in runs)
    copies = [shlex.split(args) for keyword, args in instructions if keyword == "COPY"]
    assert not any(parts[-2].rstrip("/") == "db" for parts in copies), "the wheel carries db/: do not copy it"
    assert any("--from=wheel" in parts for parts in copies), "the runtime stage takes the wheel stage's output"


def test_dockerignore_keeps_sources_and_drops_local_state():
    assert DOCKERIGNORE.is_file(), ".dockerignore is missing"
    patterns = [
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns), "negated patterns are not checked here"

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in patterns:
            pattern = pattern.lstrip("/")
            for prefix in prefixes:
                if fnmatch.fnmatch(prefix, pattern):
                    return True
                if pattern.startswith("**/") and fnmatch.fnmatch(prefix.split("/")[-1], pattern[3:]):
                    return True
        return False

    for kept in (
        "pyproject.toml",
        "README.md",
        "worker/autoembed/settings.py",
        "worker/autoembed/sql/x.sql",
        "worker/autoembed/db/migrations/20250101000000_x.sql",
    ):
        assert not ignored(kept), f".dockerignore drops {kept}"
    for dropped in (".venv/bin/python", ".git/HEAD", ".autoembed/pg/PG_VERSION"):
        assert ignored(dropped), f".dockerignore keeps {dropped}"


# --------------------------------------------------------------------------------------------
# supabase/


def test_supabase_config_is_a_pg15_cli_project(compose):
    assert SUPABASE_CONFIG.is_file(), f"{SUPABASE_CONFIG} is missing"
    config = tomllib.loads(SUPABASE_CONFIG.read_text())
    assert config.get("project_id") == "autoembed"
    db = config.get("db", {})
    assert db.get("major_version") == 15, db.get("major_version")
    assert db.get("port") == 54322, db.get("port")
    assert db.get("migrations", {}).get("enabled", True) is True
    # The compose stack runs the same major version as the CLI's local database.
    image_tag = service(compose, "db")["image"].rsplit(":", 1)[1]
    assert image_tag.split(".")[0] == str(db["major_version"])


def test_migration_file_names_suit_the_supabase_cli():
    names = sorted(p.name for p in SUPABASE_MIGRATIONS.glob("*") if not p.name.startswith("."))
    bad = [n for n in names if not MIGRATION_NAME.match(n)]
    assert not bad, f"not <14-digit timestamp>_<name>.sql: {bad}"
