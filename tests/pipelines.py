"""A real pipeline for end-to-end tests of readers: simulator → broker → worker → Redis.

Shared by the API and browser tests (test modules never import each other).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis

from infra.local_services import EmbeddedBroker, EmbeddedRedis
from streams.config import Settings
from streams.publisher import Outgoing, Publisher
from streams.simulator import SimConfig, Simulator
from streams.topics import ensure_topics
from tests.workers import isolated_settings, pulse, stop, wait_caught_up

WINDOW_SECONDS = 600  # short windows: three simulated hours make ~18 of them, enough history to chart
SIM = SimConfig(seed=5, events=4000, communities=10, members=300, span_seconds=3 * 3600, dup_rate=0.01)


# --------------------------------------------------------------------------------------------------
# The real pipeline: simulator → broker → worker → Redis
# --------------------------------------------------------------------------------------------------


def module_settings(broker: EmbeddedBroker, redis_server: EmbeddedRedis, **overrides: Any) -> Settings:
    """Like conftest's ``make_settings``, for a module-scoped pipeline (fresh topics and group)."""
    values: dict[str, Any] = {"window_seconds": WINDOW_SECONDS, "grace_seconds": 120, "partitions": 2}
    test_id = uuid.uuid4().hex[:12]
    return isolated_settings(
        test_id, kafka_bootstrap=broker.bootstrap, redis_url=redis_server.url, **{**values, **overrides}
    )


@dataclass
class Pipeline:
    """A running worker over a test's topics, and the Redis it writes (replies are bytes)."""

    settings: Settings
    client: redis.Redis
    publisher: Publisher
    worker: Any

    def publish(self, messages: Iterable[Outgoing], timeout: float = 120) -> None:
        """Publish and wait until the worker has applied everything (its offsets are in Redis)."""
        self.publisher.publish(messages)
        wait_caught_up(self.client, self.settings, timeout=timeout, proc=self.worker)


@contextlib.contextmanager
def running_pipeline(settings: Settings, log: Path, sim: SimConfig = SIM) -> Iterator[Pipeline]:
    """Empty Redis, start ``pulse worker``, publish ``sim``'s stream and wait until it is applied."""
    client = redis.Redis.from_url(settings.redis_url)
    client.flushall()
    ensure_topics(settings)
    worker = pulse("worker", settings=settings, log=log)
    try:
        pipeline = Pipeline(settings, client, Publisher(settings), worker)
        pipeline.publish((Outgoing(m.topic, m.key, m.value) for m in Simulator(sim).messages()), timeout=180)
        yield pipeline
    finally:
        stop(worker)
        client.close()


def reactions(community: str, count: int, members: int = 5, tag: str = "") -> list[Outgoing]:
    """``count`` valid reactions in ``community`` stamped now (so they land in the current window)."""
    now_ms = int(time.time() * 1000)
    tag = tag or uuid.uuid4().hex[:8]
    out = []
    for i in range(count):
        doc = {
            "id": f"{tag}-{i}",
            "community": community,
            "member": f"m{i % members}",
            "ts": now_ms - 1000,
            "post": f"{tag}-post",
            "reaction": "like",
        }
        out.append(Outgoing("reactions", community.encode(), orjson.dumps(doc)))
    return out
