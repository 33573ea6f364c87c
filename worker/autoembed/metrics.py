"""Prometheus metrics of the worker (served on AUTOEMBED_METRICS_PORT when set)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS = Counter("autoembed_rows_total",
               "Rows handled by outcome (parked: sent back to wait for their source or embedder)", ["outcome"])
BATCH_SECONDS = Histogram(
    "autoembed_batch_seconds", "Time to process one batch", buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
)
EMBED_SECONDS = Histogram(
    "autoembed_embed_seconds", "Time spent in the embedder per call", buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30)
)
QUEUE_DEPTH = Gauge("autoembed_queue_depth", "Rows waiting in the job queue (visible or not) at the last check")
DATABASE_ERRORS = Counter("autoembed_database_errors_total", "Cycles lost to database errors")
PROBES = Counter("autoembed_embedder_probes_total",
                 "Probe requests after an embedding call failed transiently or while the embedder was down, by "
                 "outcome: answered (vectors), refused (an error that will not pass: the embedder is there), "
                 "unanswered",
                 ["outcome"])

#: the outcomes of ROWS (autoembed_rows_total{outcome})
OUTCOMES = ("embedded", "skipped", "stale", "retried", "parked", "failed", "dropped")
# The queue as the database has it, refreshed every few seconds by autoembed.queue_gauges whatever
# the loop is doing (QUEUE_DEPTH above is the loop's own, last check); NaN where nothing refreshes them.
QUEUE_ROWS = Gauge("autoembed_queue_rows", "Rows named by the job queue's messages (visible or not)")
QUEUE_OLDEST_SECONDS = Gauge("autoembed_queue_oldest_seconds", "Age of the oldest message in the job queue (0: empty)")
QUEUE_ROWS.set(float("nan"))
QUEUE_OLDEST_SECONDS.set(float("nan"))


def row_counts() -> dict[str, int]:
    """Rows this process handled so far, by outcome (every outcome; 0 where none)."""
    counts = {s.labels["outcome"]: s.value for family in ROWS.collect() for s in family.samples
              if s.name == "autoembed_rows_total"}
    return {outcome: int(counts.get(outcome, 0)) for outcome in OUTCOMES}


def batches() -> int:
    """Batches this process committed so far."""
    return int(sum(s.value for family in BATCH_SECONDS.collect() for s in family.samples
                   if s.name == "autoembed_batch_seconds_count"))
