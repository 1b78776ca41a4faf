"""What one bench run does (:class:`BenchConfig`) and what one throughput figure is (:class:`Throughput`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BenchConfig:
    """What one bench run does; :func:`run_bench` derives it from ``events`` and ``quick``."""

    events: int
    quick: bool
    partitions: int = 4
    seed: int = 42
    communities: int = 200
    members: int = 20_000
    dup_rate: float = 0.01
    faust_cap_seconds: float = 120.0
    worker_cap_seconds: float = 300.0
    join_timeout_seconds: float = 90.0
    latency_rates: tuple[int, ...] = (2_000, 10_000)
    latency_seconds: float = 10.0
    latency_poll_seconds: float = 0.002
    scale_shapes: tuple[tuple[int, int], ...] = ((100, 10_000), (10_000, 10_000), (1_000, 1_000_000))
    scale_events: int = 100_000

    @classmethod
    def make(cls, events: int, quick: bool) -> BenchConfig:
        if events < 1:
            raise ValueError("events must be >= 1")
        if quick:
            return cls(
                events=events,
                quick=True,
                faust_cap_seconds=20.0,
                worker_cap_seconds=60.0,
                join_timeout_seconds=60.0,
                latency_rates=(1_000,),
                latency_seconds=3.0,
                scale_shapes=((10, 500), (500, 500), (50, 20_000)),
                scale_events=max(1, events // 2),
            )
        return cls(events=events, quick=False, scale_events=max(1, events // 2))


@dataclass
class Throughput:
    """One throughput figure: ``messages`` processed in ``seconds`` (how: :mod:`streams.bench`)."""

    name: str
    events_per_s: float
    messages: int
    seconds: float
    capped: bool = False
    ratio_to_raw: float | None = None
    peak_rss_bytes: int | None = None
    cpu_us_per_message: float | None = None  # CPU (user + system, all threads) of the measured process
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def per_second(messages: int, seconds: float) -> float:
    """Messages per second; 0 for no time."""
    return messages / seconds if seconds > 0 else 0.0
