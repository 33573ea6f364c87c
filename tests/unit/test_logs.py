"""The log lines an operator reads: every `extra` field kept (text and JSON), one line per
committed batch counted from the Batch, the set-up the CLI installs (autoembed.logs,
autoembed.activity). The worker's real log lines: tests/acceptance/test_cli.py."""

from __future__ import annotations

import io
import json
import logging
from uuid import uuid4

import numpy as np
import pytest

from autoembed import logs
from autoembed.activity import BatchCounts, batch_counts, log_batch
from autoembed.batch import Batch, Write
from autoembed.jobs import RowJobs
from autoembed.store import Source


@pytest.fixture
def configured():
    """Run logs.configure into a buffer; restore the root logger afterwards."""
    root, ours = logging.getLogger(), logging.getLogger("autoembed")
    saved = root.handlers[:], root.level, ours.level
    buffer = io.StringIO()

    def configure(fmt: str, level: str = "INFO") -> io.StringIO:
        logs.configure(level, fmt, stream=buffer)
        return buffer

    yield configure
    root.handlers[:], root.level = saved[0], saved[1]
    ours.setLevel(saved[2])


def test_text_lines_keep_every_extra_field(configured):
    out = configured("text")
    logging.getLogger("autoembed.migrate").info("applied migration", extra={"migration": "20261201_x.sql"})
    logging.getLogger("autoembed.batch").warning("row failed: EmptyContent: content is NULL",
                                                 extra={"source_id": 3, "table": "public.notes", "pk": "7"})
    first, second = out.getvalue().splitlines()
    assert first.endswith("INFO autoembed.migrate: applied migration migration=20261201_x.sql")
    assert second.endswith("WARNING autoembed.batch: row failed: EmptyContent: content is NULL "
                           "source_id=3 table=public.notes pk=7")


def test_text_values_with_spaces_or_structure_are_quoted(configured):
    out = configured("text")
    logging.getLogger("autoembed.x").info("m", extra={"error": 'say "no" here', "pks": ["1", "2"], "empty": ""})
    assert out.getvalue().rstrip().endswith('m error="say \\"no\\" here" pks="[\\"1\\", \\"2\\"]" empty=""')


def test_json_lines_are_one_object_each_with_the_extra_fields(configured):
    out = configured("json")
    log = logging.getLogger("autoembed.fetch")
    log.error("source %s is broken", 4, extra={"source_id": 4, "table": "public.docs"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed", extra={"attempt": 2})
    first, second = (json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{"))
    assert {k: first[k] for k in ("level", "logger", "message", "source_id", "table")} == {
        "level": "ERROR", "logger": "autoembed.fetch", "message": "source 4 is broken", "source_id": 4,
        "table": "public.docs"}
    assert first["time"].endswith("+00:00")
    assert second["attempt"] == 2 and "RuntimeError: boom" in second["exception"]


def test_other_libraries_log_warnings_only_and_configure_replaces_itself(configured):
    configured("text", level="DEBUG")
    out = configured("json", level="DEBUG")  # a second call: one handler, the new format
    logging.getLogger("urllib3").info("quiet")
    logging.getLogger("urllib3").warning("loud")
    logging.getLogger("autoembed.worker").debug("mine")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [("urllib3", "loud"), ("autoembed.worker", "mine")]


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        logs.configure("INFO", "yaml")


# -- the batch line -------------------------------------------------------------------------------------
SOURCE = Source(1, "public.notes", "hashing", "h", 4, 5)


def row(pk: str, attempt: int = 1) -> RowJobs:
    return RowJobs(pk=pk, msg_ids=[int(pk)], attempt=attempt)


def a_batch() -> Batch:
    """Six rows claimed (1-6) and one another batch holds (7): 1-2 embedded, 3 empty, 4 retried,
    5 failed for good, 6 up to date; 7 waits."""
    batch = Batch(msg_ids=list(range(1, 8)), sources={1: SOURCE})
    batch.claimed[1] = ["1", "2", "3", "4", "5", "6"]
    for pk in ("1", "2"):
        batch.writes[1].append(Write(row(pk), uuid4(), np.ones(4, dtype=np.float32)))
    batch.writes[1].append(Write(row("3"), uuid4(), None))
    batch.fail(SOURCE, row("3"), None, "EmptyContent", "content is NULL: nothing to embed")
    batch.requeue(1, row("4"), 1, 2)
    batch.fail(SOURCE, row("5"), None, "EmbeddingError", "HTTP 400")
    batch.requeue(1, row("7"), 0, 2)
    batch.embed_seconds = 0.25
    return batch


def test_batch_counts_come_from_what_the_batch_decided():
    assert batch_counts(a_batch()) == BatchCounts(read=7, embedded=2, skipped=1, failed=2, retried=1, waiting=1)
    assert batch_counts(Batch()) == BatchCounts(0, 0, 0, 0, 0, 0)


def test_one_info_line_per_batch_with_counts_and_times(configured):
    out = configured("json")
    log_batch(a_batch())
    (line,) = [json.loads(text) for text in out.getvalue().splitlines() if '"batch committed"' in text]
    assert line["level"] == "INFO" and line["logger"] == "autoembed.activity"
    assert {k: line[k] for k in ("read", "embedded", "skipped", "failed", "retried", "waiting", "messages",
                                 "embed_ms")} == {"read": 7, "embedded": 2, "skipped": 1, "failed": 2, "retried": 1,
                                                  "waiting": 1, "messages": 7, "embed_ms": 250}
    assert line["total_ms"] >= 0
