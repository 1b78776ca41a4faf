"""Publishing messages to Pulse's input topics (``pulse publish``, ``pulse simulate``, the demo)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from confluent_kafka import Producer

from streams.config import Settings

PartitionKey = tuple[str, int]
"""(full topic name, partition)."""


class Outgoing(NamedTuple):
    topic: str  # logical name: posts | reactions | rsvps
    key: bytes | None
    value: bytes | None


class Publisher:
    """A confluent-kafka producer that paces to ``rate`` msgs/s (None: as fast as possible)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = Producer(
            {
                **settings.kafka_config(),
                "linger.ms": 10,
                "queue.buffering.max.messages": 1_000_000,
                "message.max.bytes": 32 * 1024 * 1024,
                "enable.idempotence": False,
            }
        )
        self.failed = 0

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed += 1

    def publish(
        self,
        messages: Iterable[Outgoing],
        rate: float | None = None,
        on_progress: Callable[[int], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        """Send ``messages``; returns how many were sent.  Flushes before returning."""
        sent = 0
        started = time.perf_counter()
        topic_names: dict[str, str] = {}
        produce = self.producer.produce
        step = max(1, min(1000, int(rate // 50))) if rate else 1000  # pace in ~20 ms slices
        for topic, key, value in messages:
            name = topic_names.get(topic) or topic_names.setdefault(topic, self.settings.topic(topic))
            while True:
                try:
                    produce(name, value=value, key=key, on_delivery=self._on_delivery)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            sent += 1
            if sent % step == 0:
                self.producer.poll(0)
                if on_progress:
                    on_progress(sent)
                if stop and stop():
                    break
                if rate:
                    ahead = sent / rate - (time.perf_counter() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        self.producer.flush()
        if on_progress:
            on_progress(sent)
        return sent


class TrackingPublisher(Publisher):
    """A :class:`Publisher` that remembers where each message landed (delivery reports).

    ``ends``: highest offset + 1 per partition (the true end; see the module docstring on
    Tansu's ListOffsets).  With ``stamps`` on, also each message's (partition, offset, CreateTime ms)
    for latency.
    """

    def __init__(self, settings: Settings, stamps: bool = False) -> None:
        super().__init__(settings)
        self.ends: dict[PartitionKey, int] = {}
        self.stamps: list[tuple[PartitionKey, int, float]] | None = [] if stamps else None

    def _on_delivery(self, err: object, msg: Any) -> None:
        if err is not None:
            self.failed += 1
            return
        tp = (msg.topic(), msg.partition())
        offset = msg.offset()
        if offset >= self.ends.get(tp, 0):
            self.ends[tp] = offset + 1
        if self.stamps is not None:
            self.stamps.append((tp, offset, float(msg.timestamp()[1])))

    def close(self) -> None:
        """Close the producer now: a forgotten one keeps reconnecting (and logging) after the
        broker has been stopped."""
        with contextlib.suppress(Exception):
            self.producer.close()
