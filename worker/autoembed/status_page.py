"""The status page of autoembed.server (GET /, refreshed by the page itself from GET /status.json):
per watched table the figures of autoembed.status (its vector index's state among them), its
failures grouped by reason and its throughput; the queue; the optional capabilities."""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import date, datetime, timedelta
from decimal import Decimal

from autoembed import api
from autoembed.connections import connect
from autoembed.queries import QUERIES

THROUGHPUT_WINDOW = 60.0  # seconds of snapshots a watch's throughput is measured over


def _jsonable(value):
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _row(record: dict) -> dict:
    return {key: _jsonable(value) for key, value in record.items()}


class StatusBoard:
    """Snapshots for the status page, read as the server's database role. One snapshot serves
    every request within `max_age` seconds; successive ones give each watch's throughput (rows
    embedded per second over the last THROUGHPUT_WINDOW seconds)."""

    def __init__(self, dsn: str, max_age: float = 1.0):
        self.dsn = dsn
        self.max_age = max_age
        self._lock = threading.Lock()
        self._cached: tuple[float, dict] | None = None
        self._history: deque[tuple[float, dict[int, int]]] = deque()

    def snapshot(self) -> dict:
        """{generated_at, watches: [...], queue: {...}, capabilities: [...]}; psycopg.Error or
        AutoembedError when the database cannot be read."""
        with self._lock:
            now = time.monotonic()
            if self._cached and now - self._cached[0] < self.max_age:
                return self._cached[1]
            with connect(self.dsn, autocommit=True, vectors=False) as conn:
                status = api.status(conn)
                reasons = conn.execute(QUERIES["failure_reasons"]).fetchall()
            embedded = {s["source_id"]: s["embedded"] for s in status.sources if s["embedded"] is not None}
            rates = self._throughput(now, embedded)
            watches = []
            for source in status.sources:
                watch = _row(source)
                watch["throughput_per_second"] = rates.get(source["source_id"])
                watch["failure_reasons"] = [{"error_class": error_class, "rows": rows, "latest_message": message}
                                            for source_id, error_class, rows, message in reasons
                                            if source_id == source["source_id"]]
                watches.append(watch)
            snapshot = {"generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
                        "watches": watches, "queue": _row(status.queue),
                        "capabilities": [_row(c) for c in status.capabilities]}
            self._cached = (now, snapshot)
            return snapshot

    def _throughput(self, now: float, embedded: dict[int, int]) -> dict[int, float]:
        """Rows per second per source since the oldest snapshot of the window (none before 1 s)."""
        self._history.append((now, embedded))
        while len(self._history) > 2 and self._history[1][0] <= now - THROUGHPUT_WINDOW:
            self._history.popleft()
        then, before = self._history[0]
        if now - then < 1.0:
            return {}
        return {source_id: round(max(0, count - before[source_id]) / (now - then), 2)
                for source_id, count in embedded.items() if source_id in before}


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>autoembed status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
  th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
  th:first-child, td:first-child, td.text { text-align: left; }
  th { background: #f3f3f3; text-align: left; }
  .bad { color: #b00020; }
  #updated, #error { color: #666; }
</style>
</head>
<body>
<h1>autoembed</h1>
<p id="updated">loading&hellip;</p>
<p id="error" class="bad"></p>
<h2>Watched tables</h2>
<table id="watches">
  <thead><tr><th>table</th><th>watch</th><th>state</th><th>vector index</th><th>rows</th><th>embedded</th><th>pending</th><th>failed</th>
  <th>oldest pending (s)</th><th>throughput (rows/s)</th><th>last success</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Failures by reason</h2>
<table id="failures">
  <thead><tr><th>table</th><th>watch</th><th>error class</th><th>rows</th><th>latest message</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Queue</h2>
<table id="queue">
  <thead><tr><th>queue</th><th>messages</th><th>visible</th><th>rows named</th><th>oldest message (s)</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Capabilities</h2>
<table id="capabilities">
  <thead><tr><th>feature</th><th>available</th><th>detail</th></tr></thead>
  <tbody></tbody>
</table>
<script>
"use strict";
const every = Number(new URLSearchParams(location.search).get("refresh")) || 5;
let refreshes = 0;

function cell(row, value, field, text) {
  const td = row.insertCell();
  td.textContent = value === null || value === undefined ? "-" : String(value);
  if (field) td.dataset.field = field;
  if (text) td.className = "text";
  return td;
}

function fill(id, items, columns, key) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  for (const item of items) {
    const row = body.insertRow();
    if (key) row.dataset.key = String(item[key]);
    for (const [field, text, format] of columns) cell(row, format ? format(item[field], item) : item[field], field, text);
  }
}

const seconds = (v) => v === null || v === undefined ? null : Math.round(v * 10) / 10;

function render(s) {
  fill("watches", s.watches, [["source", true], ["watch", true], ["state", true], ["index", true], ["rows"], ["embedded"], ["pending"], ["failed"],
       ["oldest_pending_age", false, seconds], ["throughput_per_second"], ["last_success_at", true]], "source_id");
  const reasons = [];
  for (const w of s.watches) for (const r of w.failure_reasons) reasons.push({source: w.source, watch: w.watch, source_id: w.source_id, ...r});
  fill("failures", reasons, [["source", true], ["watch", true], ["error_class", true], ["rows"], ["latest_message", true]], "source_id");
  fill("queue", [s.queue], [["queue_name", true], ["queue_length"], ["queue_visible_length"], ["queue_rows"],
       ["oldest_msg_age_sec"]]);
  fill("capabilities", s.capabilities, [["feature", true], ["available", true, (v) => v ? "yes" : "no"],
       ["detail", true]], "feature");
}

async function refresh() {
  try {
    const answer = await fetch("status.json", {cache: "no-store"});
    const s = await answer.json();
    if (!answer.ok) throw new Error(s.error || answer.statusText);
    render(s);
    refreshes += 1;
    document.body.dataset.refreshes = String(refreshes);
    document.getElementById("updated").textContent = "updated " + s.generated_at + ", every " + every + " s";
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = "status unavailable: " + e.message;
  }
}

refresh();
setInterval(refresh, every * 1000);
</script>
</body>
</html>
"""
