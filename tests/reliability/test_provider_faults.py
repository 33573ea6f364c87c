"""Provider faults from the OpenAI stub at a set rate: transient ones end in success (each row
embedded exactly once), permanent ones in autoembed.failures with a clear error. A provider outage
of any length ends with every row embedded and nothing in autoembed.failures."""

from __future__ import annotations

import logging
import re
import time

import pytest
from harness import (DIMS, SCALE, WorkerProcess, answered_probes, check, install_audit, ok_inputs, openai_env, report,
                     scaled, wait_settled, wait_until)
from support import create_docs, drain, watch

from support.openai_stub import OpenAIStub

TRANSIENT = ["500", "503", "429", "hang", "close", "malformed", "no_data"]
#: what a failure record may say after a fault the embedder rightly treats as permanent
CLEAR_PERMANENT = re.compile(
    r"OpenAI-compatible endpoint http://127\.0\.0\.1:\d+/v1 \(model stub-model\): ("
    r"model stub-model returned 17-dimensional vectors, the column holds 16; use a vector\(17\) column or a "
    r"model with 16 dimensions"
    r"|model stub-model returned \d+ vectors for \d+ texts"
    r"|HTTP 400: Invalid 'input\[\d+\]': .* was rejected \(contains 'POISON'\)\.)")


def fault_settings(settings, stub, batch_size=10, openai_batch_size=None, max_batch_size=None):
    """Batches of `batch_size` rows, or as many more as the embedder wants, up to `max_batch_size`
    (default: `batch_size`, so that a failed request fails the worker's call, not only a request
    the dispatcher sends again)."""
    return settings.replace(openai_base_url=stub.base_url, openai_api_key="sk-test", openai_timeout=0.5,
                            batch_size=batch_size, openai_batch_size=openai_batch_size or batch_size,
                            max_batch_size=max_batch_size or batch_size)


def drain_against_stub(conn, dsn, settings, kind: str, max_batch_size=None, **stub_options):
    """Drain the queue against a stub injecting `kind` faults, check the invariant and report it.
    Returns the stub's counts, the verdict and the row texts the stub embedded (probes left out)."""
    probes = answered_probes()
    with OpenAIStub(dimensions=DIMS, seed=1, **stub_options) as stub:
        drain(dsn, fault_settings(settings, stub, max_batch_size=max_batch_size))
        counts = stub.counts
    verdict = check(conn)
    report(f"provider {kind}", rows=verdict.rows, faults={kind: counts[kind]}, lost=len(verdict.lost),
           stale=len(verdict.stale), failed=verdict.failed, duplicate_writes=verdict.duplicate_writes)
    return counts, verdict, ok_inputs(stub) - (answered_probes() - probes)


def fill(conn, rows: int, poison: int = 0, max_attempts: int = 10) -> None:
    create_docs(conn)
    install_audit(conn)
    watch(conn, embedder="openai", model="stub-model", max_attempts=max_attempts, backfill=False)
    conn.execute("insert into docs (body) select 'fault row ' || g || ' text' from generate_series(1, %s) g", (rows,))
    if poison:
        conn.execute("update docs set body = 'POISON row ' || id where id %% %s = 0", (rows // poison,))


@pytest.mark.parametrize("kind", TRANSIENT)
def test_transient_faults_end_in_success_with_each_row_embedded_once(conn, dsn, settings, caplog, kind):
    caplog.set_level(logging.INFO, logger="autoembed")
    rows = scaled(80)
    fill(conn, rows)
    counts, verdict, embedded_texts = drain_against_stub(conn, dsn, settings, kind, faults={kind: 0.4}, hang_seconds=2)
    assert counts[kind] > 0, counts
    assert verdict.ok, verdict
    assert verdict.failed == 0, verdict.failures
    handled = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("embedding failed", "embedder "))]
    if kind != "hang":  # a timed-out request is abandoned and its texts go again, in halves, within the
        # call (which the stub may answer meanwhile); any other fault of a call's one request reaches
        # the worker, which retried, or waited while the provider did not answer probes
        assert embedded_texts == rows, "a row was sent to the model again after it had been embedded"
        assert handled
    if kind == "429":
        assert all("HTTP 429 (retry after 1 s)" in m for m in handled if "available again" not in m), handled


@pytest.mark.parametrize("kind", TRANSIENT)
def test_transient_faults_inside_large_batches_end_in_success_with_each_row_embedded_once(conn, dsn, settings,
                                                                                          kind):
    """At the default read size a batch holds as many rows as the endpoint's request slots keep
    busy, and the dispatcher sends a failed request's texts again within the call."""
    rows = scaled(160)
    fill(conn, rows)
    counts, verdict, embedded_texts = drain_against_stub(conn, dsn, settings, kind, max_batch_size=1000,
                                                         faults={kind: 0.3}, hang_seconds=2)
    assert counts[kind] > 0, counts
    assert verdict.ok, verdict
    assert verdict.failed == 0, verdict.failures
    if kind != "hang":
        assert embedded_texts == rows, "a row was sent to the model again after it had been embedded"


@pytest.mark.parametrize("kind", ["wrong_dim", "short"])
def test_wrong_shaped_answers_end_in_an_embedding_or_a_clear_failure(conn, dsn, settings, kind):
    rows = scaled(80)
    fill(conn, rows)
    counts, verdict, _ = drain_against_stub(conn, dsn, settings, kind, faults={kind: 0.35})
    assert counts[kind] > 0, counts
    assert verdict.ok, verdict
    # The batch is split until the bad answer is pinned on one row; its neighbours are embedded.
    assert verdict.embedded > rows // 2
    for pk, (cls, message) in verdict.failures.items():
        assert cls == "EmbeddingError" and CLEAR_PERMANENT.fullmatch(message), (pk, message)


@pytest.mark.parametrize("max_batch_size", [None, 1000], ids=["batch-size", "large-batches"])
def test_every_fault_at_once_and_poison_rows(conn, dsn, settings, max_batch_size):
    rows, poison = scaled(200), 4
    fill(conn, rows, poison=poison)
    faults = {"500": 0.05, "429": 0.04, "hang": 0.02, "close": 0.04, "malformed": 0.04, "no_data": 0.03,
              "wrong_dim": 0.03, "short": 0.03}
    with OpenAIStub(dimensions=DIMS, faults=faults, seed=3, fail_texts=["POISON"], hang_seconds=2) as stub:
        drain(dsn, fault_settings(settings, stub, max_batch_size=max_batch_size))
        counts = stub.counts
    verdict = check(conn)
    report("provider mixed", rows=verdict.rows, faults={k: counts[k] for k in [*faults, "400"]},
           lost=len(verdict.lost), stale=len(verdict.stale), failed=verdict.failed,
           duplicate_writes=verdict.duplicate_writes)
    assert verdict.ok, verdict
    poisoned = {pk for pk, in conn.execute("select id::text from docs where body like 'POISON%'")}
    assert len(poisoned) == poison and poisoned <= set(verdict.failures)
    for pk, (cls, message) in verdict.failures.items():
        assert CLEAR_PERMANENT.fullmatch(message), (pk, message)
        if pk in poisoned:
            assert "HTTP 400" in message
    assert all(counts[k] > 0 for k in ("500", "429", "malformed", "wrong_dim", "400")), counts


def test_a_fault_in_one_request_does_not_resend_the_texts_of_the_requests_that_succeeded(conn, dsn, settings):
    rows = 40
    fill(conn, rows)
    probes = answered_probes()
    with OpenAIStub(dimensions=DIMS, faults={"500": 0.25}, seed=11) as stub:
        # One worker batch of 20 rows goes out as four requests of 5.
        drain(dsn, fault_settings(settings, stub, batch_size=20, openai_batch_size=5))
        assert stub.counts["500"] > 0
    assert check(conn).ok
    embedded_texts = ok_inputs(stub) - (answered_probes() - probes)
    assert embedded_texts == rows, f"{embedded_texts - rows} texts embedded twice"


def test_a_long_provider_outage_ends_with_every_row_embedded_and_no_failure(conn, dsn, tmp_path):
    """The endpoint answers 500 to everything for a while (10 s x scale). Before the breaker, the
    worker's retries after 2, 4, ... s used up max_attempts and most rows went to autoembed.failures
    for good. Now a worker at default settings stops spending attempts, probes at growing intervals,
    says so in status, and embeds every row once the endpoint answers again, without a human."""
    rows, outage = scaled(120), 10.0 * max(1.0, SCALE)
    create_docs(conn)
    install_audit(conn)
    watch(conn, embedder="openai", model="stub-model", max_attempts=2, backfill=False)
    defaults = {"AUTOEMBED_BACKOFF_BASE": "2", "AUTOEMBED_BACKOFF_MAX": "300", "AUTOEMBED_VISIBILITY_TIMEOUT": "120",
                "AUTOEMBED_POLL_INTERVAL": "5"}
    with OpenAIStub(dimensions=DIMS, faults={"500": 1.0}) as down:
        worker = WorkerProcess(dsn, "outage-worker", tmp_path / "worker.log", env=openai_env(down, **defaults)).start()
        try:
            conn.execute("insert into docs (body) select 'outage row ' || g from generate_series(1, %s) g", (rows,))
            started = time.monotonic()
            states = set()
            # at least `outage` seconds, and (on a loaded machine) until status has had time to say so
            while (time.monotonic() - started < outage
                   or ("embedder unavailable" not in states and time.monotonic() - started < outage + 30)):
                worker.assert_alive()
                state, failed = conn.execute("select state, failed from autoembed.status").fetchone()
                states.add(state.split(":")[0])
                assert failed == 0, "a row went to autoembed.failures because the network was down"
                time.sleep(0.2)
            during, down_for = len(down.request_log), time.monotonic() - started
            down.stop()
            with OpenAIStub(dimensions=DIMS, port=down.port):
                ended = time.monotonic()
                verdict = wait_settled(conn, timeout=60 + outage, workers=(worker,))
                recovered_in = time.monotonic() - ended
                wait_until(lambda: conn.execute("select state from autoembed.status").fetchone()[0] == "ok", 10,
                           what="status ok again")
        finally:
            worker.stop()
    report("provider outage", rows=verdict.rows, faults={"500 (outage)": during}, lost=len(verdict.lost),
           stale=len(verdict.stale), failed=verdict.failed, duplicate_writes=verdict.duplicate_writes,
           outage_s=outage, outage_recover_s=round(recovered_in, 2), requests_during_outage=during)
    assert verdict.ok, verdict
    assert verdict.failed == 0 and verdict.embedded == rows, verdict.failures
    assert "embedder unavailable" in states, states
    # one probe at a time at growing intervals (2, 4, 8, ... s), never a request per row
    assert during <= 12 + down_for / 5, during
    assert "Traceback" not in worker.log()


def test_a_rejected_api_key_spends_no_attempt_and_the_rows_wait_for_the_right_one(conn, dsn, tmp_path):
    """A wrong key is the endpoint refusing every request, not bad content: a running worker parks
    the rows (status says why), a drain ends non-zero saying why, and once the key is fixed every
    row is embedded; autoembed.failures stays empty throughout."""
    rows = scaled(30)
    fill(conn, rows, max_attempts=1)
    with OpenAIStub(dimensions=DIMS, require_key="sk-the-right-key") as stub:
        wrong = openai_env(stub, OPENAI_API_KEY="sk-a-wrong-key")
        worker = WorkerProcess(dsn, "wrong-key-worker", tmp_path / "wrong.log", env=wrong).start()
        try:
            wait_until(lambda: "rejected the credentials" in conn.execute("select state from autoembed.status").fetchone()[0],
                       30, what="status saying the key was rejected")
            time.sleep(2)  # a few probes more: still nothing failed
            worker.assert_alive()
        finally:
            worker.stop()
        assert conn.execute("select count(*) from autoembed.failures").fetchone()[0] == 0
        drained = WorkerProcess(dsn, "wrong-key-drain", tmp_path / "drain.log", env=wrong, args=("--drain",)).start()
        assert drained.process.wait(timeout=60) == 2, drained.log()
        assert "rejected the credentials" in drained.log()
        fixed = WorkerProcess(dsn, "right-key-drain", tmp_path / "fixed.log", env=openai_env(stub, OPENAI_API_KEY="sk-the-right-key"),
                              args=("--drain",)).start()
        assert fixed.process.wait(timeout=60) == 0, fixed.log()
    verdict = check(conn)
    assert verdict.ok and verdict.embedded == rows and verdict.failed == 0, verdict
    assert conn.execute("select state from autoembed.status").fetchone()[0] == "ok"
