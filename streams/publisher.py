"""Publishing messages to Pulse's input topics (``pulse publish``, ``pulse simulate``, the demo)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from confluent_kafka import Producer

from streams.config import Settings


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
