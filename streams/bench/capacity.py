"""The capacity figures of the README's *Scaling out* section (``python -m streams.bench.capacity``):
single-node vs Redis Cluster throughput and, with every operator on, Redis commands, CPU and memory
per key kind; :func:`snapshot_sizes`: the bytes of each community's operator snapshot."""

from __future__ import annotations

import argparse
import base64
import pickle
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis
from rich.console import Console

from streams import keys
from streams.bench.cluster import measure_cluster
from streams.bench.config import BenchConfig
from streams.bench.data import publish_dataset, simulate
from streams.bench.scale import used_memory
from streams.bench.ui import Ui
from streams.bench.workers import measure_workers
from streams.config import Settings


def _calls(client: Any) -> int:
    """Commands Redis has executed (``INFO commandstats``; commands run by scripts included), except
    the bench's own polling and bookkeeping (``HMGET`` of the progress, ``INFO``, ``FLUSHDB``)."""
    stats = client.info("commandstats")
    own = ("cmdstat_hmget", "cmdstat_info", "cmdstat_flushdb")
    return sum(int(v["calls"]) for k, v in stats.items() if isinstance(v, dict) and k not in own)


def _memory_by_kind(client: Any) -> dict[str, tuple[int, int]]:
    """``MEMORY USAGE`` (bytes) and key count per key kind (``pulse:<kind>:…``, ids left out)."""
    out: dict[str, tuple[int, int]] = {}
    names = [k.decode() for k in client.scan_iter(match=f"{keys.PREFIX}:*", count=1000)]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name, samples=0)
    for name, size in zip(names, pipe.execute(), strict=True):
        parts = name.split(":")
        kind = ":".join(parts[1:3]) if parts[1] in ("lb", "members") else parts[1]
        total, count = out.get(kind, (0, 0))
        out[kind] = (total + (size or 0), count + 1)
    return out


def capacity(events: int, communities: int, members: int, out: Path | None = None) -> dict[str, Any]:
    """Single-node vs Redis Cluster throughput (default operators), then every operator on a fresh
    single-node Redis: worker CPU per event, Redis commands and CPU per event, memory per key kind."""
    from infra.local_services import embedded_services

    ui = Ui(Console(width=None if sys.stdout.isatty() else 160))
    cfg = BenchConfig.make(events, quick=False)
    report: dict[str, Any] = {"events": events, "communities": communities, "members": members}
    with (
        embedded_services(Settings(_env_file=None, metrics_port=0)) as base,  # type: ignore[call-arg]
        tempfile.TemporaryDirectory() as tmp,
    ):
        workdir = Path(tmp)
        settings = base.model_copy(update={"topic_prefix": f"cap{uuid.uuid4().hex[:6]}.", "partitions": 4})
        messages, sim = simulate(events, communities, members, 7, 0.01)
        ds = publish_dataset(settings, "capacity", messages, sim, ui)
        active = len({orjson.loads(m.value or b"{}").get("member") for m in messages})
        del messages
        client = redis.Redis.from_url(settings.redis_url)
        single = measure_workers(ds, client, "single-node Redis", cfg, workdir, ui)
        clustered = measure_cluster(ds, cfg, workdir, ui, single)
        client.flushdb()
        baseline, calls0 = used_memory(client), _calls(client)
        every = measure_workers(ds, client, "single-node, all operators", cfg, workdir, ui, operators="all")
        calls = _calls(client) - calls0
        used = used_memory(client) - baseline
        by_kind = _memory_by_kind(client)
        report.update(
            messages=ds.total,
            active_members=active,
            throughput={
                t.name: {"events_per_s": round(t.events_per_s), "cpu_us_per_message": t.cpu_us_per_message,
                         "redis_cpu_us_per_message": t.extra.get("redis_cpu_us_per_message"),
                         "peak_rss_mb": round((t.peak_rss_bytes or 0) / 2**20)}
                for t in (single, clustered, every)
            },
            all_operators={
                "redis_commands_per_message": round(calls / ds.total, 2),
                "redis_used_bytes": used, "bytes_per_message": round(used / ds.total, 1),
                "memory_by_kind": {k: {"bytes": b, "keys": n} for k, (b, n) in sorted(by_kind.items())},
            },
        )  # fmt: skip
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if out is not None:
        out.write_text(text)
    return report


def snapshot_sizes(events: int, communities: int, members: int, batch: int = 2000) -> dict[str, Any]:
    """Bytes of each community's operator snapshot (every operator on) after the simulator's stream,
    run in-process (pipeline + operators, no Kafka, no Redis): what ``pulse:state:{c}`` holds right
    after a compaction, against the community's event count."""
    from streams.operators.registry import build_operators
    from streams.operators.runner import OperatorRunner
    from streams.pipeline import Message, Pipeline
    from streams.simulator import SimConfig, Simulator

    settings = Settings(_env_file=None, operators="all")  # type: ignore[call-arg]
    pipeline = Pipeline(settings)
    runner = OperatorRunner(build_operators(settings), max_states=10**9, snapshot_every=10**9)
    sim = Simulator(SimConfig(seed=7, events=events, communities=communities, members=members))
    progress: dict[Any, Any] = {}
    offsets: dict[str, int] = {}
    counts: dict[str, int] = {}
    chunk: list[Message] = []

    def flush() -> None:
        result = pipeline.apply_batch(chunk, progress)
        runner.load({c: ({}, []) for c in runner.missing(result.events)})
        runner.run(result.events)
        for ev in result.events:
            counts[ev.community] = counts.get(ev.community, 0) + 1
        chunk.clear()

    for m in sim.messages():
        offset = offsets.get(m.topic, 0)
        offsets[m.topic] = offset + 1
        chunk.append(Message(m.topic, 0, offset, m.key, m.value))
        if len(chunk) >= batch:
            flush()
    flush()
    sizes = {}
    for community in counts:
        sizes[community] = sum(len(_blob_of(runner.states[op.name][community])) for op in runner.operators)
    ordered = sorted(sizes.values())
    per_event = sorted(sizes[c] / counts[c] for c in counts)
    return {
        "communities": len(sizes),
        "events": sum(counts.values()),
        "snapshot_bytes_median": statistics.median(ordered),
        "snapshot_bytes_p90": ordered[int(0.9 * (len(ordered) - 1))],
        "snapshot_bytes_max": ordered[-1],
        "snapshot_bytes_total": sum(ordered),
        "events_of_largest": counts[max(sizes, key=sizes.__getitem__)],
        "bytes_per_event_median": statistics.median(per_event),
    }


def _blob_of(state: Any) -> bytes:
    return base64.b64encode(pickle.dumps(state, protocol=5))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=capacity.__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--communities", type=int, default=2_000)
    parser.add_argument("--members", type=int, default=40_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    capacity(args.events, args.communities, args.members, args.out)
