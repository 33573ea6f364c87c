"""An in-process worker running on a thread, for tests that change the world while it works."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from autoembed.embedders import EmbedderCache
from autoembed.settings import Settings
from autoembed.worker import Worker


@contextmanager
def running_worker(dsn: str, settings: Settings, embedders: EmbedderCache | None = None) -> Iterator[Worker]:
    """A worker looping (not draining) on a daemon thread until the block ends; the block fails if
    the worker died meanwhile, with the exception that killed it."""
    worker = Worker(settings, dsn, embedders)
    died: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            died.append(exc)

    thread = threading.Thread(target=run, name="test-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        worker.close()
    assert not died, f"the worker died: {died[0]!r}"
    assert not thread.is_alive(), "the worker did not stop"
