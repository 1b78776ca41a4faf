"""A worker in a thread of this process, for ``pulse demo`` and ``pulse evaluate`` (the one
start / stop / tear-down of an in-process worker; tests and the bench run real ``pulse worker``
processes instead, see ``tests/workers.py`` and ``infra/local_services.py``)."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

from streams.config import Settings
from streams.engines.batch import BatchEngine
from streams.topics import ensure_topics


@contextlib.contextmanager
def worker_in_thread(
    settings: Settings, name: str = "pulse-worker"
) -> Iterator[tuple[BatchEngine, threading.Thread]]:
    """Create the topics, run a :class:`BatchEngine` in a daemon thread, and on exit stop it, wait
    for it and destroy its Kafka clients (their callbacks make reference cycles) before the caller
    stops the broker."""
    ensure_topics(settings)
    engine = BatchEngine(settings)
    thread = threading.Thread(target=engine.run, name=name, daemon=True)
    thread.start()
    try:
        yield engine, thread
    finally:
        engine.stop()
        thread.join(timeout=30)
        del engine, thread
        gc.collect()
