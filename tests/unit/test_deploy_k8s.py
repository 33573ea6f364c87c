"""The Kubernetes manifests (deploy/k8s) and the slim image (Dockerfile.slim), checked against
what they name: the container's arguments are a real `autoembed` command line (click's own
parser), its probes and metrics port are the worker's HTTP port, every Secret reference resolves,
the logins are those deploy/k8s/database-roles.sql creates, and KEDA's scaler query counts the
queued rows. Then both logins run as the manifests say against the test database: the worker
(its args, env and probes) embeds rows as a login granted only autoembed_worker, and the scaler's
login runs its query and nothing else."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import click
import psycopg
import pytest
import yaml
from psycopg import sql

from autoembed.cli import main
from autoembed.devdb import free_port

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
ROLES_SQL = K8S / "database-roles.sql"
SLIM = REPO / "Dockerfile.slim"
RULES = REPO / "deploy" / "prometheus" / "autoembed-rules.yml"
LOGINS = ("autoembed_embedder", "autoembed_keda")


def documents() -> dict[tuple[str, str], dict]:
    """(kind, name) -> manifest, of every file kustomization.yaml lists."""
    found = {}
    for name in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


DOCS = documents()
DEPLOYMENT = DOCS[("Deployment", "autoembed-worker")]
POD = DEPLOYMENT["spec"]["template"]
CONTAINER = POD["spec"]["containers"][0]
SCALED = DOCS[("ScaledObject", "autoembed-worker")]
TRIGGER = SCALED["spec"]["triggers"][0]


def secret_value(name: str, key: str) -> str:
    secret = DOCS[("Secret", name)]
    assert key in secret["stringData"], f"Secret {name} has no key {key}"
    return secret["stringData"][key]


def worker_options() -> dict:
    """The container's arguments as the `autoembed` command parses them (its ENTRYPOINT is
    `autoembed`): the subcommand's parameters; raises click.UsageError on anything unknown."""
    args = CONTAINER["args"]
    with main.make_context("autoembed", list(args), resilient_parsing=False) as ctx:
        command = main.get_command(ctx, args[0])
        assert command is not None, f"`autoembed {args[0]}` is no command"
        with command.make_context(args[0], list(args[1:]), parent=ctx) as sub:
            return {"command": args[0], **sub.params}


def dockerfile_instruction(keyword: str) -> str:
    lines = [line for line in SLIM.read_text().splitlines() if line.startswith(keyword + " ")]
    assert lines, f"Dockerfile.slim has no {keyword}"
    return lines[-1][len(keyword) + 1:]


# -- the image -------------------------------------------------------------------------------------
def test_the_slim_image_installs_the_built_wheel_without_extras_and_runs_autoembed():
    text = SLIM.read_text()
    assert re.search(r"pip wheel\b.*--no-deps", text), "no stage builds the wheel"
    assert re.search(r'pip install "\$\(ls /tmp/dist/autoembed-\*\.whl\)"\s', text), "the wheel, no extras"
    assert not re.search(r"pip install[^\n]*(torch|\[local\])", text), "the slim image installs a model runtime"
    assert json.loads(dockerfile_instruction("ENTRYPOINT")) == ["autoembed"]
    assert json.loads(dockerfile_instruction("CMD")) == ["worker"]
    assert dockerfile_instruction("USER") == "autoembed"
    assert "command" not in CONTAINER, "the manifest must not replace the image's `autoembed` entrypoint"


def test_the_core_install_serves_the_openai_embedder_without_any_model_runtime(tmp_path):
    """What the slim image holds: the package's core dependencies. With torch, sentence-transformers
    and ONNX Runtime made unimportable, the CLI runs and builds the `openai` embedder."""
    core = [re.split(r"[<>=\[ ]", dep)[0].lower() for dep in _pyproject()["project"]["dependencies"]]
    assert not {"torch", "sentence-transformers", "onnxruntime", "transformers"} & set(core), core
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Blocked:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'sentence_transformers', 'onnxruntime', 'transformers'):\n"
        "            raise ImportError(f'{name} is not in the slim image')\n"
        "sys.meta_path.insert(0, _Blocked())\n")
    probe = ("from autoembed.embedders import build_embedder\n"
             "from autoembed.settings import Settings\n"
             "e = build_embedder('openai', 'text-embedding-3-small', 1536, Settings(openai_api_key='k'))\n"
             "print(e.kind, e.dimensions)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    built = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert built.returncode == 0 and built.stdout.split() == ["openai", "1536"], built.stderr
    helped = subprocess.run([sys.executable, "-m", "autoembed.cli", *CONTAINER["args"], "--help"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert helped.returncode == 0 and "--metrics-port" in helped.stdout, helped.stderr


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())


# -- the Deployment ------------------------------------------------------------------------------
def test_the_container_args_are_a_real_autoembed_command_line():
    options = worker_options()
    assert options["command"] == "worker" and options["drain"] is False  # a long-running worker


def test_probes_and_the_metrics_port_are_the_workers_http_port():
    port = worker_options()["metrics_port"]
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert ports == {"metrics": port}
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert CONTAINER["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert POD["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    monitor = DOCS[("PodMonitor", "autoembed")]["spec"]
    assert monitor["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]


def test_every_environment_variable_is_one_autoembed_reads():
    envvars = {param.envvar for command in (main, main.commands["worker"]) for param in command.params
               if isinstance(param, click.Option) and param.envvar}
    settings_source = (REPO / "worker" / "autoembed" / "settings.py").read_text()
    for entry in CONTAINER["env"]:
        assert entry["name"] in envvars or f'"{entry["name"]}"' in settings_source, entry["name"]
        if "value" in entry and entry["name"] == "AUTOEMBED_LOG_FORMAT":
            option = next(p for p in main.params if p.name == "log_format")
            assert entry["value"] in option.type.choices


def test_secret_references_resolve_and_name_the_least_privileged_logins():
    refs = [e["valueFrom"]["secretKeyRef"] for e in CONTAINER["env"] if "valueFrom" in e]
    for ref in refs:
        secret_value(ref["name"], ref["key"])
    worker_url = secret_value("autoembed-worker", "DATABASE_URL")
    assert urlsplit(worker_url).username == "autoembed_embedder"
    roles = ROLES_SQL.read_text()
    assert re.search(r"^grant autoembed_worker to autoembed_embedder;$", roles, re.MULTILINE)
    assert re.search(r"^create role autoembed_embedder login;$", roles, re.MULTILINE)


def test_requests_security_and_graceful_shutdown():
    assert set(CONTAINER["resources"]["requests"]) == {"cpu", "memory"}
    assert CONTAINER["securityContext"]["readOnlyRootFilesystem"] is True
    assert POD["spec"]["securityContext"]["runAsNonRoot"] is True
    assert POD["spec"]["terminationGracePeriodSeconds"] >= 30  # SIGTERM finishes the batch in hand
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= POD["metadata"]["labels"].items()


def test_the_scrape_job_is_the_one_the_alert_rules_name():
    monitor = DOCS[("PodMonitor", "autoembed")]["spec"]
    job = POD["metadata"]["labels"][monitor["jobLabel"]]
    assert monitor["selector"]["matchLabels"].items() <= POD["metadata"]["labels"].items()
    assert f'up{{job="{job}"}}' in RULES.read_text()


# -- KEDA -------------------------------------------------------------------------------------------
def test_keda_scales_the_worker_deployment_on_the_queued_rows():
    assert SCALED["spec"]["scaleTargetRef"]["name"] == DEPLOYMENT["metadata"]["name"]
    assert TRIGGER["type"] == "postgresql"
    assert TRIGGER["metadata"]["query"] == "select autoembed.queue_rows()"
    assert float(TRIGGER["metadata"]["targetQueryValue"]) > 0
    assert 1 <= SCALED["spec"]["minReplicaCount"] <= SCALED["spec"]["maxReplicaCount"]
    auth = DOCS[("TriggerAuthentication", TRIGGER["authenticationRef"]["name"])]["spec"]["secretTargetRef"]
    assert [ref["parameter"] for ref in auth] == ["connection"]  # the scaler's connection string
    connection = secret_value(auth[0]["name"], auth[0]["key"])
    assert urlsplit(connection).username == "autoembed_keda"


# -- against the test database ----------------------------------------------------------------------
@pytest.fixture
def logins(conn):
    """The logins of database-roles.sql, created by running that file; dropped afterwards."""
    def drop() -> None:
        for login in LOGINS:
            if conn.execute("select from pg_roles where rolname = %s", (login,)).fetchone() is not None:
                conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(login)))
                conn.execute(sql.SQL("drop role {}").format(sql.Identifier(login)))

    drop()
    conn.execute(ROLES_SQL.read_text())
    yield
    drop()


def as_login(dsn: str, login: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, user=login)


def create_notes(conn, rows: int) -> None:
    conn.execute("create table notes (id bigint generated always as identity primary key, body text, embedding vector(8))")
    conn.execute("select autoembed.watch('notes', 'body', embedder => 'hashing', model => 'h8', backfill => false)")
    conn.execute("insert into notes (body) select 'note ' || g from generate_series(1, %s) g", (rows,))


def test_the_scaler_login_counts_the_queued_rows_and_can_do_nothing_else(conn, dsn, logins):
    create_notes(conn, 1500)
    with psycopg.connect(as_login(dsn, "autoembed_keda"), autocommit=True) as keda:
        assert keda.execute(TRIGGER["metadata"]["query"]).fetchone() == (1500,)
        assert keda.execute("show statement_timeout").fetchone() == ("5s",)
        for denied in ("select * from notes", "select * from autoembed.sources", "select * from autoembed.failures",
                       "select * from autoembed.read_jobs(10, 30)", "delete from pgmq.q_autoembed_jobs"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                keda.execute(denied)


def test_the_worker_runs_as_the_manifest_says(conn, dsn, logins, tmp_path):
    """The container's args and env (the metrics port moved to a free one), its DATABASE_URL the
    least-privileged login: probes answer 200, rows get embedded, /metrics has the dashboard's
    metrics, every log line is JSON, and SIGTERM ends it with status 0."""
    create_notes(conn, 20)
    port = free_port()
    args = list(CONTAINER["args"])
    args[args.index("--metrics-port") + 1] = str(port)
    env = {e["name"]: e["value"] for e in CONTAINER["env"] if "value" in e}
    env |= {"DATABASE_URL": as_login(dsn, "autoembed_embedder"), "AUTOEMBED_HOME": str(tmp_path),
            "AUTOEMBED_POLL_INTERVAL": "0.2"}
    log_file = (tmp_path / "worker.log").open("w+")
    worker = subprocess.Popen([sys.executable, "-m", "autoembed.cli", *args], stderr=log_file,
                              env={**{k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}, **env})
    try:
        deadline = time.monotonic() + 60
        while conn.execute("select count(embedding) from notes").fetchone()[0] < 20:
            assert worker.poll() is None and time.monotonic() < deadline, _log(log_file)
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        for probe in ("livenessProbe", "readinessProbe"):
            status, body = _get(base + CONTAINER[probe]["httpGet"]["path"])
            assert status == 200, (probe, body)
        deadline = time.monotonic() + 15
        while "autoembed_queue_rows 0.0" not in (text := _get(base + "/metrics")[1]):
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        assert 'autoembed_rows_total{outcome="embedded"} 20.0' in text
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=20)
    assert code == 0, _log(log_file)
    lines = [json.loads(line) for line in _log(log_file).splitlines()]
    batches = [line for line in lines if line["message"] == "batch committed"]
    assert sum(line["embedded"] for line in batches) == 20 and all(line["failed"] == 0 for line in batches)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _log(handle) -> str:
    handle.flush()
    handle.seek(0)
    return handle.read()


def test_the_readme_deploy_commands_name_files_that_exist():
    readme = (REPO / "README.md").read_text()
    paths = {p for p in re.findall(r"(deploy/[\w./-]+|Dockerfile\.slim)", readme)}
    assert paths, "the README shows no deployment file"
    missing = [p for p in paths if not (REPO / p.rstrip(".")).exists()]
    assert not missing, missing
