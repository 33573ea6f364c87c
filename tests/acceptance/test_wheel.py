"""A wheel built from this tree, installed into a fresh virtualenv outside the checkout, migrates,
watches, embeds, reports and searches on its own: the package carries its SQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import autoembed

REPO = Path(__file__).resolve().parents[2]


def sh(*args, cwd: Path, env: dict | None = None, timeout: int = 600) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, REPO, cwd=out)
    [built] = out.glob("autoembed-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """bin/ of a new virtualenv (no site packages) with the wheel and its core dependencies."""
    venv = tmp_path_factory.mktemp("venv")
    sh(sys.executable, "-m", "venv", venv, cwd=venv)
    sh(venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel, cwd=venv)
    return venv / "bin"


def test_the_wheel_carries_the_sql_and_no_test_helpers(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "autoembed/db/migrations/20261123000000_baseline.sql" in names
    assert "autoembed/db/idempotent/080_write_back.sql" in names
    assert "autoembed/sql/queries.sql" in names
    assert not [n for n in names if "openai_stub" in n or n.startswith("tests/")]


def test_installed_wheel_migrates_watches_embeds_and_searches(installed, empty_dsn, tmp_path):
    import psycopg

    env = {"DATABASE_URL": empty_dsn, "AUTOEMBED_HOME": str(tmp_path / "home"), "AUTOEMBED_POLL_INTERVAL": "0.2",
           "PYTHONPATH": ""}
    autoembed_bin = installed / "autoembed"
    assert sh(autoembed_bin, "--version", cwd=tmp_path, env=env).strip() == f"autoembed, version {autoembed.__version__}"
    assert "applied" in sh(autoembed_bin, "migrate", cwd=tmp_path, env=env)
    assert sh(autoembed_bin, "migrate", cwd=tmp_path, env=env).strip() == "database is up to date"
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("create table notes (id bigint generated always as identity primary key, body text, "
                     "embedding vector(16))")
        conn.execute("insert into notes (body) values ('오늘의 날씨는 맑음'), ('the cat sat on the mat')")
    sh(autoembed_bin, "watch", "notes", "--content", "body", "--embedder", "hashing", "--model", "h16",
       cwd=tmp_path, env=env)
    sh(autoembed_bin, "worker", "--drain", cwd=tmp_path, env=env, timeout=120)
    status = json.loads(sh(autoembed_bin, "status", "--json", cwd=tmp_path, env=env))
    assert [(s["rows"], s["embedded"], s["pending"], s["failed"]) for s in status["sources"]] == [(2, 2, 0, 0)]
    hits = json.loads(sh(autoembed_bin, "search", "notes", "오늘의 날씨는 맑음", "-k", "1", "--json",
                         cwd=tmp_path, env=env))
    assert hits[0]["content"] == "오늘의 날씨는 맑음"
    where = sh(installed / "python", "-c", "import autoembed, sys; print(autoembed.__file__)", cwd=tmp_path, env=env)
    assert str(REPO) not in where and "site-packages" in where
