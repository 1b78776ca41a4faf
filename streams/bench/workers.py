"""``pulse worker`` rows: fresh worker processes over a published dataset, timed through the
offsets they store in Redis (``pulse:progress``), with their CPU, the Redis server's and peak RSS."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import redis

from streams.bench.config import BenchConfig, Throughput, per_second
from streams.bench.data import Dataset
from streams.bench.ui import Ui
from streams.processes import (
    _cpu_total,
    _log_tail,
    peak_rss_bytes,
    process_tree,
    settings_env,
    start_process,
    stop_process,
)
from streams.sinks.redis_store import PROGRESS_KEY


def stored_offsets(client: redis.Redis, fields: list[str]) -> list[int | None]:
    values = client.hmget(PROGRESS_KEY, fields)
    return [int(v) if v is not None else None for v in values]  # type: ignore[union-attr]


def measure_workers(
    ds: Dataset,
    client: redis.Redis,
    name: str,
    cfg: BenchConfig,
    workdir: Path,
    ui: Ui,
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
        name, per_second(counted, seconds), counted, seconds, capped=capped, peak_rss_bytes=peak,
        cpu_us_per_message=cpu_us, notes=notes,
        extra={"engine": engine, "workers": workers, "processes": processes, "operators": settings.operators,
               "first_commit_messages": base,
               "start_to_first_commit_seconds": round(t0 - spawned, 2), "peak_rss_bytes_each": rss,
               "redis_cpu_us_per_message": redis_us},
    )  # fmt: skip


def redis_cpu_seconds(client: redis.Redis) -> float | None:
    """CPU the Redis server has used (``INFO cpu``): the Lua commits run there while the worker waits."""
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    except (redis.RedisError, KeyError, ValueError):
        return None
