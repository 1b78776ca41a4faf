"""Throughput and memory at other (communities, members) shapes: a fresh dataset and one batch
worker each, then the Redis memory its member leaderboards take per active member."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from streams import keys as key_contract
from streams.bench.config import BenchConfig, Throughput
from streams.bench.data import count_active_members, publish_dataset, simulate
from streams.bench.report import mb
from streams.bench.ui import Ui
from streams.bench.workers import measure_workers
from streams.config import Settings


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


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def measure_scale(
    settings: Settings,
    client: redis.Redis,
    cfg: BenchConfig,
    workdir: Path,
    ui: Ui,
    run_id: str,
    raw: Throughput,
) -> list[dict[str, Any]]:
    """One row per shape of ``cfg.scale_shapes``: each on its own topics (``bench{run_id}.c…m….``)
    from an empty database; ``raw``: the raw consumer's row of the run, for the ratio."""
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
            f"scale {shape}: {result.events_per_s:,.0f} events/s, peak RSS {mb(result.peak_rss_bytes)},"
            f" {row['bytes_per_active_member']:,.0f} B per active member"
        )
    client.flushdb()
    return scale
