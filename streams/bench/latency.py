"""Publish → visible latency at fixed offered loads: one caught-up worker, a poller of the stored
offsets every ~2 ms, and each message's produce time from its delivery report."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from streams.bench.config import BenchConfig, per_second
from streams.bench.data import simulate
from streams.bench.ui import Ui
from streams.bench.workers import stored_offsets
from streams.config import Settings
from streams.processes import _log_tail, start_worker, stop_process
from streams.publisher import PartitionKey, TrackingPublisher
from streams.topics import ensure_topics


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending sequence; no interpolation, so
    every reported latency is one that some message really had.

    >>> percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50), percentile(list(range(1, 1001)), 99.9)
    (5, 999)
    >>> percentile([7], 99.9)
    7
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n * q / 100), at least the first
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def visible_latencies(
    stamps: Sequence[tuple[PartitionKey, int, float]],
    observations: dict[PartitionKey, list[tuple[float, int]]],
) -> tuple[list[float], int]:
    """Latency (ms) of every stamped message that became visible, and how many never did.

    ``stamps``: (partition, offset, produce time ms).  ``observations``: per partition, the
    (wall time ms, stored next offset) seen by the poller, in time order.  A message is
    visible at the first observation whose next offset is past its offset.

    >>> obs = {("t", 0): [(100.0, 2), (130.0, 5)]}
    >>> visible_latencies([(("t", 0), 0, 90.0), (("t", 0), 3, 95.0), (("t", 0), 9, 99.0)], obs)
    ([10.0, 35.0], 1)
    """
    index = {tp: ([n for _, n in seq], [t for t, _ in seq]) for tp, seq in observations.items()}
    out: list[float] = []
    missing = 0
    for tp, offset, produced in stamps:
        offsets, times = index.get(tp, ([], []))
        i = bisect_right(offsets, offset)  # first observation with next offset > offset
        if i == len(offsets):
            missing += 1
            continue
        out.append(times[i] - produced)
    return out, missing


class ProgressPoller(threading.Thread):
    """Polls ``pulse:progress`` every ``interval`` s and records when each stored offset moves.

    HMGET of the run's ``o:`` fields rather than HGETALL: the same answer without the watermark
    and window fields, so a 2 ms poll costs the shared cores as little as possible."""

    def __init__(self, client: redis.Redis, partitions: Sequence[PartitionKey], interval: float) -> None:
        super().__init__(name="bench-progress-poller", daemon=True)
        self.client = client
        self.partitions = list(partitions)
        self.fields = [f"o:{t}:{p}" for t, p in self.partitions]
        self.interval = interval
        self.observations: dict[PartitionKey, list[tuple[float, int]]] = {tp: [] for tp in self.partitions}
        self.polls = 0
        self._halt = threading.Event()

    def run(self) -> None:
        last: list[int | None] = [None] * len(self.fields)
        obs = [self.observations[tp] for tp in self.partitions]
        while not self._halt.is_set():
            values = stored_offsets(self.client, self.fields)
            now_ms = time.time() * 1000  # after the reply: visibility is never credited early
            self.polls += 1
            for i, v in enumerate(values):
                if v is not None and v != last[i]:
                    last[i] = v
                    obs[i].append((now_ms, v))
            self._halt.wait(self.interval)

    def latest(self) -> dict[PartitionKey, int]:
        return {tp: seq[-1][1] for tp, seq in self.observations.items() if seq}

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


@dataclass
class LatencyResult:
    offered_rate: int
    achieved_rate: float
    messages: int
    seconds: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    drain_ms: float
    never_visible: int
    kept_up: bool
    operators: str = "default"  # PULSE_OPERATORS of the worker


def measure_latency(
    settings: Settings,
    client: redis.Redis,
    cfg: BenchConfig,
    workdir: Path,
    ui: Ui,
    operators: str | None = None,
    rates: Sequence[int] | None = None,
) -> tuple[list[LatencyResult], dict[str, Any]]:
    """One batch-engine worker, caught up on empty topics; then each offered load for ``latency_seconds``.

    With ``operators`` (e.g. matching on): a need/offer's candidates are written in the same
    transaction as its offset, so this latency is also the delay until a candidate is visible.
    """
    client.flushdb()
    run = uuid.uuid4().hex[:8]
    settings = settings.model_copy(
        update={"topic_prefix": f"bench{run}.lat.", "group_id": f"bench-latency-{run}", "metrics_port": 0,
                "engine": "batch", **({"operators": operators} if operators else {})}
    )  # fmt: skip
    ensure_topics(settings)
    rates = list(rates or cfg.latency_rates)
    counts = [int(rate * cfg.latency_seconds) for rate in rates]
    warmup = 200
    with ui.status(f"simulating {warmup + sum(counts):,} events for the latency loads"):
        # the duplicate rate makes a few more messages than events; the slices below take exact counts
        messages, sim = simulate(
            warmup + sum(counts), cfg.communities, cfg.members, cfg.seed + 1, cfg.dup_rate
        )
    partitions = [(t, p) for t in settings.input_topics for p in range(cfg.partitions)]
    poller = ProgressPoller(client, partitions, cfg.latency_poll_seconds)
    log = workdir / f"worker_latency_{run}.log"
    proc = start_worker(settings, log)
    old_switch = sys.getswitchinterval()
    results: list[LatencyResult] = []
    try:
        sys.setswitchinterval(0.0005)  # the poller thread must not wait 5 ms for the publisher's GIL
        poller.start()
        # warm up: a few messages, then wait until the worker has committed them (joined, caught up)
        warm = TrackingPublisher(settings)
        warm.publish(messages[:warmup])
        warm.close()
        _wait_visible(poller, warm.ends, proc, log, cfg.join_timeout_seconds, "the warm-up messages")
        position = warmup
        for rate, n in zip(rates, counts, strict=True):
            chunk = messages[position : position + n]
            position += n
            publisher = TrackingPublisher(settings, stamps=True)
            with ui.progress(f"latency at {rate:,}/s", len(chunk)) as update:
                started = time.perf_counter()
                sent = publisher.publish(chunk, rate=rate, on_progress=update)
                published_at = time.time() * 1000
                seconds = time.perf_counter() - started
            publisher.close()
            drain_ms = _wait_visible(
                poller, publisher.ends, proc, log, 180.0, f"the {rate}/s load", published_at
            )
            stamps = publisher.stamps or []
            latencies, missing = visible_latencies(stamps, poller.observations)
            latencies.sort()
            if not latencies:
                raise RuntimeError(f"no latency samples at {rate}/s")
            achieved = per_second(sent, seconds)
            results.append(
                LatencyResult(
                    offered_rate=rate,
                    achieved_rate=round(achieved, 1),
                    messages=len(latencies),
                    seconds=round(seconds, 2),
                    p50_ms=round(percentile(latencies, 50), 1),
                    p99_ms=round(percentile(latencies, 99), 1),
                    p999_ms=round(percentile(latencies, 99.9), 1),
                    max_ms=round(latencies[-1], 1),
                    drain_ms=round(drain_ms, 1),
                    never_visible=missing,
                    kept_up=achieved >= 0.9 * rate and drain_ms <= 1000 and missing == 0,
                    operators=settings.operators,
                )
            )
            ui.done(
                f"latency at {rate:,}/s ({settings.operators}): p50 {results[-1].p50_ms:.0f} ms,"
                f" p99 {results[-1].p99_ms:.0f} ms,"
                f" p99.9 {results[-1].p999_ms:.0f} ms" + ("" if results[-1].kept_up else " (did not keep up)")
            )
    finally:
        sys.setswitchinterval(old_switch)
        try:
            poller.stop()
        finally:
            stop_process(proc)  # whatever failed above, never leave a worker running
    meta = {"simulator": sim, "topic_prefix": settings.topic_prefix, "polls": poller.polls,
            "poll_interval_s": cfg.latency_poll_seconds, "seconds_per_load": cfg.latency_seconds}  # fmt: skip
    return results, meta


def _wait_visible(
    poller: ProgressPoller,
    ends: dict[PartitionKey, int],
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float,
    what: str,
    since_ms: float | None = None,
) -> float:
    """Wait until the poller has seen every partition reach ``ends``; ms from ``since_ms`` (or 0)."""
    deadline = time.monotonic() + timeout
    while True:
        latest = poller.latest()
        if all(latest.get(tp, 0) >= end for tp, end in ends.items()):
            if since_ms is None:
                return 0.0
            last_seen = max(
                next(t for t, n in poller.observations[tp] if n >= end) for tp, end in ends.items() if end > 0
            )
            return max(0.0, last_seen - since_ms)
        if proc.poll() is not None:
            raise RuntimeError(f"latency worker exited with {proc.returncode}:\n{_log_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not apply {what} within {timeout:.0f} s:\n{_log_tail(log)}")
        time.sleep(0.01)
