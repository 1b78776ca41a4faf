"""A Kafka client that is not confluent-kafka publishes to the embedded broker (``make demo``'s).

Platforms publish with whatever client their stack has.  aiokafka (pure Python, its own protocol
code; installed with Faust) sends a simulated stream with duplicates and malformed messages to an
embedded Tansu broker; a ``pulse worker`` applies it; Redis must then equal the independent
recompute of tests/reference.py over the records read back, and the applied count the simulator's
own labels.  Which client versions work with the embedded broker: README, "Running on real Kafka".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiokafka
import pytest
import redis

from streams.config import Settings
from streams.simulator import SimConfig, SimMessage, Simulator
from streams.topics import ensure_topics
from tests import reference
from tests.workers import catch_up

pytestmark = pytest.mark.slow


async def publish_with_aiokafka(settings: Settings, messages: list[SimMessage]) -> Counter[tuple[str, int]]:
    """Send every message (key = community) and return how many landed on each (topic, partition)."""
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=10)
    await producer.start()
    try:
        futures = [await producer.send(settings.topic(m.topic), value=m.value, key=m.key) for m in messages]
        landed = [await f for f in futures]
    finally:
        await producer.stop()
    return Counter((md.topic, md.partition) for md in landed)


def test_aiokafka_publishes_a_stream_that_pulse_applies_exactly(
    make_settings: Callable[..., Settings], redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = make_settings(window_seconds=600, grace_seconds=120)
    ensure_topics(settings)
    messages = list(
        Simulator(
            SimConfig(seed=23, events=3000, communities=8, members=300, dup_rate=0.03, malformed_rate=0.02)
        ).messages()
    )
    landed = asyncio.run(publish_with_aiokafka(settings, messages))
    assert sum(landed.values()) == len(messages)
    assert len({p for _, p in landed}) > 1  # keyed by community: spread over partitions

    catch_up(redis_client, settings, tmp_path / "worker.log", timeout=180)
    records = [
        r for name in settings.input_topics for r in reference.read_topic(settings.kafka_bootstrap, name)
    ]
    assert Counter((r.topic, r.partition) for r in records) == landed
    dead = reference.read_topic(settings.kafka_bootstrap, settings.dead_letter_topic)
    expected = reference.recompute(records, settings)
    assert expected.applied == sum(m.label is None for m in messages)
    assert expected.duplicates > 20  # re-sent copies (a copy of a late or malformed message is not one)
    reference.assert_matches(redis_client, expected, dead)
    assert set(reference.dead_letters_from(dead).values()) >= {"invalid_json", "schema"}
