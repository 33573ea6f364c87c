"""The Grafana dashboard (deploy/grafana/autoembed.json) and the Prometheus alert rules
(deploy/prometheus/autoembed-rules.yml): the rules pass `promtool check rules` and their unit tests
(`promtool test rules`), the dashboard's queries parse, and every metric, label value and command
they name is one the worker really exports or the CLI really has."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from autoembed import metrics
from autoembed.cli import main

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "autoembed.json"
RULES = REPO / "deploy" / "prometheus" / "autoembed-rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "autoembed-rules.test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is missing: apt-get install prometheus (scripts/setup-system.sh does)")

METRIC = re.compile(r"\b(autoembed_[a-z0-9_]+)\b")
OUTCOME_MATCHER = re.compile(r'autoembed_rows_total\{[^}]*outcome(=~?)"([^"]+)"')
#: Grafana's variables, as Prometheus would see them once Grafana substituted them
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": ".*"}


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels and variables."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in board["templating"]["list"] if isinstance(v.get("query"), dict)]
    return exprs


def rule_queries() -> list[str]:
    """Every alert rule's expression."""
    return [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def exported_names() -> set[str]:
    """The sample names autoembed.metrics makes the registry export (a labelled metric with no
    sample yet counts too, by its type)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "gauge": ("",), "summary": ("_count", "_sum", "_created")}
    names = set()
    for family in REGISTRY.collect():
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return {name for name in names if name.startswith("autoembed_")}


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@needs_promtool
def test_the_alert_rules_pass_promtool_check():
    result = run_promtool("check", "rules", str(RULES), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


@needs_promtool
def test_each_alert_fires_on_its_symptom_and_not_on_health():
    """autoembed-rules.test.yml: queue age, failures rising, no progress while work waits, database
    errors, a worker down, no worker at all."""
    result = run_promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in test["alert_rule_test"] if case["exp_alerts"]}
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert tested == alerts, f"alerts no unit test sees firing: {alerts - tested}"


@needs_promtool
def test_the_dashboards_queries_are_valid_promql(tmp_path):
    exprs = []
    for expr in dashboard_queries():
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        if not expr.startswith("label_values("):  # Grafana's own function, not PromQL
            exprs.append(expr)
    as_rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": expr}
                                                           for i, expr in enumerate(exprs)]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(as_rules))
    result = run_promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_metric_queried_is_one_the_worker_exports(source):
    exprs = dashboard_queries() if source == "dashboard" else rule_queries()
    named = {name for expr in exprs for name in METRIC.findall(expr)}
    exported = exported_names()
    assert named, f"the {source} names no autoembed metric"
    assert named <= exported, f"not exported by autoembed.metrics: {sorted(named - exported)}"


def test_the_dashboard_shows_the_queue_throughput_failures_latency_and_errors():
    named = {name for expr in dashboard_queries() for name in METRIC.findall(expr)}
    assert {"autoembed_queue_rows", "autoembed_queue_oldest_seconds", "autoembed_rows_total",
            "autoembed_batch_seconds_bucket", "autoembed_embed_seconds_bucket",
            "autoembed_database_errors_total"} <= named


def test_outcomes_queried_are_outcomes_the_worker_counts():
    """Label values of autoembed_rows_total{outcome} in queries are metrics.OUTCOMES, and those are
    exactly the outcomes the package increments."""
    package = REPO / "worker" / "autoembed"
    counted = {m for path in package.rglob("*.py") for m in re.findall(r'ROWS\.labels\("(\w+)"\)', path.read_text())}
    assert counted == set(metrics.OUTCOMES)
    for expr in dashboard_queries() + rule_queries():
        for operator, value in OUTCOME_MATCHER.findall(expr):
            values = value.split("|") if operator == "=~" else [value]
            assert set(values) <= set(metrics.OUTCOMES), f"{expr}: unknown outcome in {value!r}"


def test_commands_the_alerts_recommend_exist():
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    commands = {c for rule in rules for text in rule["annotations"].values()
                for c in re.findall(r"`autoembed ([a-z-]+)", text)}
    assert commands and commands <= set(main.commands), sorted(commands - set(main.commands))
