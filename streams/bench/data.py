"""The bench's data: the simulator's realistic mix, published to fresh topics, and what it holds."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.bench.ui import Ui
from streams.config import Settings
from streams.publisher import Outgoing, PartitionKey, TrackingPublisher
from streams.topics import ensure_topics


@dataclass
class Dataset:
    """One simulated stream, published under its own topic prefix."""

    name: str
    settings: Settings  # topic_prefix is the dataset's
    sim: dict[str, Any]
    messages: int = 0
    bytes: int = 0
    ends: dict[PartitionKey, int] = field(default_factory=dict)
    active_members: int = 0
    publish_seconds: float = 0.0
    generate_seconds: float = 0.0

    @property
    def total(self) -> int:
        """Messages in the topics (sum of end offsets): what every reader must get through."""
        return sum(self.ends.values())

    def progress_fields(self) -> list[str]:
        """The ``pulse:progress`` fields holding the stored next offset of each partition."""
        return [f"o:{topic}:{partition}" for topic, partition in sorted(self.ends)]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topic_prefix": self.settings.topic_prefix,
            "simulator": self.sim,
            "messages": self.messages,
            "bytes": self.bytes,
            "mean_message_bytes": round(self.bytes / self.messages, 1) if self.messages else 0,
            "active_members": self.active_members,
            "end_offsets": {f"{t}:{p}": n for (t, p), n in sorted(self.ends.items())},
            "generate_seconds": round(self.generate_seconds, 2),
            "publish_seconds": round(self.publish_seconds, 2),
        }


def simulate(
    events: int, communities: int, members: int, seed: int, dup_rate: float
) -> tuple[list[Outgoing], dict[str, Any]]:
    """The simulator's realistic mix (Zipf communities, heavy-tailed members, duplicates)."""
    from streams.simulator import SimConfig, Simulator

    config = SimConfig(seed=seed, events=events, communities=communities, members=members, dup_rate=dup_rate)
    messages = [Outgoing(m.topic, m.key, m.value) for m in Simulator(config).messages()]
    return messages, {"seed": seed, "events": events, "communities": communities, "members": members,
                      "dup_rate": dup_rate}  # fmt: skip


def count_active_members(messages: Sequence[Outgoing]) -> int:
    """Distinct members across the messages (all valid JSON here: the bench adds no malformed ones)."""
    seen: set[str] = set()
    for m in messages:
        with contextlib.suppress(orjson.JSONDecodeError, TypeError, AttributeError):
            member = orjson.loads(m.value or b"").get("member")
            if isinstance(member, str):
                seen.add(member)
    return len(seen)


def publish_dataset(
    settings: Settings, name: str, messages: list[Outgoing], sim: dict[str, Any], ui: Ui
) -> Dataset:
    """Create the dataset's topics and publish ``messages`` as fast as the producer goes."""
    ensure_topics(settings)
    ds = Dataset(name, settings, sim, bytes=sum(len(m.value or b"") for m in messages))
    publisher = TrackingPublisher(settings)
    started = time.perf_counter()
    try:
        with ui.progress(f"publishing {name}", len(messages)) as update:
            ds.messages = publisher.publish(messages, on_progress=update)
    finally:
        publisher.close()
    ds.publish_seconds = time.perf_counter() - started
    if publisher.failed:
        raise RuntimeError(f"{publisher.failed} of {ds.messages} messages were not delivered")
    ds.ends = publisher.ends
    return ds
