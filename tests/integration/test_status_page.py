"""The status page (GET /) in a real headless browser (Debian's chromium): after its scripts ran,
the figures on the page are those of autoembed.status and autoembed.queue_status, failures are
grouped by reason, and the page keeps refreshing itself from /status.json. A screenshot is kept
in bench/out/status_page.png."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support import create_docs, drain, watch
from support.http import running

from autoembed.health import Liveness
from autoembed.server import App
from autoembed.status_page import StatusBoard


ARTIFACTS = Path(__file__).resolve().parents[2] / "bench" / "out"
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (scripts/setup-supabase-profile.sh installs it)")


def chromium(*args: str, timeout: float = 60) -> str:
    """Run headless chromium with a throwaway profile; its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout, check=True).stdout


class Cells(HTMLParser):
    """The <td data-field> cells of each body row, by table id: {table: [{field: text}]}; and the
    body's data-refreshes (how often the page refreshed itself)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.refreshes = 0
        self._table: str | None = None
        self._rows: list[dict[str, str]] | None = None
        self._field: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.refreshes = int(attrs.get("data-refreshes") or 0)
        elif tag == "table":
            self._table = attrs.get("id")
        elif tag == "tbody":
            self._rows = self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._rows is not None:
            self._rows.append({})
        elif tag == "td" and self._rows and "data-field" in attrs:
            self._field = attrs["data-field"]
            self._rows[-1][self._field] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._field = None
        elif tag == "tbody":
            self._rows = None

    def handle_data(self, data):
        if self._field:
            self._rows[-1][self._field] += data


def shown(value) -> str:
    return "-" if value is None else str(value)


def test_the_page_shows_what_autoembed_status_says_and_refreshes_itself(conn, dsn, settings, tmp_path):
    create_docs(conn, "articles")
    create_docs(conn, "notes")
    watch(conn, "articles")
    watch(conn, "notes")
    conn.execute("alter table notes add column title_embedding vector(16)")
    watch(conn, "notes", "title", embedding_column="title_embedding", backfill=False)  # a second watch of one table
    conn.execute("insert into articles (body) values ('one'), ('two'), (''), ('  ')")
    drain(dsn, settings)
    conn.execute("insert into articles (body) values ('waiting')")
    conn.execute("insert into notes (body) select 'note ' || g from generate_series(1, 3) g")

    app = App(dsn, Liveness().start(), StatusBoard(dsn, max_age=0.0))
    with running(app) as url:
        page = Cells()
        page.feed(chromium("--virtual-time-budget=6000", "--dump-dom", f"{url}/?refresh=1"))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        chromium("--window-size=1200,900", "--virtual-time-budget=3000", f"--screenshot={tmp_path / 'status.png'}",
                 f"{url}/")
    shutil.copy(tmp_path / "status.png", ARTIFACTS / "status_page.png")

    status = conn.execute("select source, watch, state, rows, embedded, pending, failed from autoembed.status "
                          "order by source_id").fetchall()
    assert [s[1] for s in status] == ["embedding", "embedding", "title_embedding"]
    assert [(w["source"], w["watch"], w["state"], w["rows"], w["embedded"], w["pending"], w["failed"])
            for w in page.tables["watches"]] == [tuple(shown(v) for v in row) for row in status]
    assert [(f["source"], f["error_class"], f["rows"]) for f in page.tables["failures"]] == [
        ("public.articles", "EmptyContent", "2")]
    queue = conn.execute("select queue_name, queue_length, queue_rows from autoembed.queue_status").fetchone()
    assert [(q["queue_name"], q["queue_length"], q["queue_rows"]) for q in page.tables["queue"]] == [
        tuple(shown(v) for v in queue)]
    assert page.refreshes >= 3  # it fetched /status.json again and again (every second, here)
    assert (ARTIFACTS / "status_page.png").stat().st_size > 10_000
