"""Prometheus metrics of the worker (served on AUTOEMBED_METRICS_PORT when set)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS = Counter("autoembed_rows_total", "Rows handled by outcome", ["outcome"])
BATCH_SECONDS = Histogram(
    "autoembed_batch_seconds", "Time to process one batch", buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
)
EMBED_SECONDS = Histogram(
    "autoembed_embed_seconds", "Time spent in the embedder per call", buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30)
)
QUEUE_DEPTH = Gauge("autoembed_queue_depth", "Rows waiting in the job queue (visible or not) at the last check")
DATABASE_ERRORS = Counter("autoembed_database_errors_total", "Cycles lost to database errors")
