"""The two reference rows every Pulse figure is set against: the bare consumer (the ceiling the
client library and broker allow) and an idiomatic Faust agent (what a straightforward service does)."""

from __future__ import annotations

import contextlib
import textwrap
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from streams.bench.config import BenchConfig, Throughput, per_second
from streams.bench.data import Dataset
from streams.bench.ui import Ui
from streams.processes import (
    _log_tail,
    cpu_seconds,
    peak_rss_bytes,
    settings_env,
    start_process,
    stop_process,
)
from streams.publisher import PartitionKey


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
        "raw consumer", per_second(counted, seconds), counted, seconds, capped=bool(remaining),
        cpu_us_per_message=round((cpu1 - cpu0) / counted * 1e6, 2) if counted > 0 else None,
        notes=notes,
        extra={"first_batch": first_batch, "received": got},
    )  # fmt: skip


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


def measure_faust_baseline(ds: Dataset, cfg: BenchConfig, workdir: Path, ui: Ui) -> Throughput:
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
        "faust baseline", per_second(counted, seconds), counted, seconds, capped=capped, peak_rss_bytes=rss,
        cpu_us_per_message=cpu_us,
        notes=note, extra={"processed": count, "join_seconds": round((first or spawned) - spawned, 2)},
    )  # fmt: skip
