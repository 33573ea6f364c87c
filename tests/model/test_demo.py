"""`autoembed demo` (what `make demo` runs on a fresh machine): its own dev database, every row
embedded, the English search and the Korean passage search answer with the right row."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from autoembed.devdb import free_port

pytestmark = pytest.mark.model


def test_the_demo_embeds_every_row_and_finds_the_answers(tmp_path):
    env = {**os.environ, "AUTOEMBED_HOME": str(tmp_path / "home"), "AUTOEMBED_DEV_DB_PORT": str(free_port()),
           "DATABASE_URL": ""}
    cli = [sys.executable, "-m", "autoembed.cli"]
    try:
        done = subprocess.run([*cli, "demo"], capture_output=True, text=True, timeout=600, env=env)
    finally:
        subprocess.run([*cli, "dev-db", "stop"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()[:1].isdigit() and "384" in line]
    assert len(rows) == 6 and all(row[1] == "yes" for row in rows), done.stdout
    english = done.stdout.split("search 'How do I bake bread at home?':", 1)[1].splitlines()[1]
    assert english.strip().startswith("id 1 ") and "Mix flour" in english, done.stdout
    korean = done.stdout.split("어디에 신고해야 하나요?':", 1)[1]
    assert "(해외여행 안내서)" in korean.splitlines()[1] and "여권을 잃어버렸을 때" in korean, done.stdout
