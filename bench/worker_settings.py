"""Same-run comparison of one worker's throughput, CPU and peak RSS under different settings.

    PYTHONPATH=. python bench/worker_settings.py 200000 base align_max_held=10000 \
        batch_max=5000,align_max_held=10000 engine=faust engine=faust,batch_timeout_ms=500

Publishes the bench's stream (200 communities, 20,000 members, seed 42) once to an embedded broker
and Redis (or ``PULSE_KAFKA_BOOTSTRAP`` / ``PULSE_REDIS_URL``), then runs ``pulse worker`` once per
variant with ``streams.bench.workers.measure_workers`` (same timing rules as ``pulse bench``).  A variant is
``base`` or comma-separated ``setting=value`` pairs (``engine=faust`` picks the engine).  Repeat
variants alternately: on a shared machine only figures of one run compare.  The README's
peak-RSS and Faust-batch experiments were made with it.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path

import redis
from rich.console import Console

from infra.local_services import ensure_services
from streams.bench.config import BenchConfig
from streams.bench.data import Dataset, publish_dataset, simulate
from streams.bench.ui import Ui
from streams.bench.workers import measure_workers
from streams.config import Settings


def main(events: int, variants: list[str]) -> None:
    settings, started = ensure_services(Settings.model_validate({}))  # PULSE_* from the environment
    try:
        client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())  # type: ignore[arg-type]
        cfg = BenchConfig.make(events, False)
        ui = Ui(Console(width=160))
        base = settings.model_copy(
            update={"topic_prefix": f"ws{uuid.uuid4().hex[:6]}.", "partitions": 4, "metrics_port": 0}
        )
        messages, sim = simulate(events, 200, 20_000, 42, 0.01)
        ds = publish_dataset(base, "main", messages, sim, ui)
        with tempfile.TemporaryDirectory() as tmp:
            for variant in variants:
                update = dict(kv.split("=", 1) for kv in variant.split(",")) if variant != "base" else {}
                engine = update.pop("engine", "batch")
                typed = {k: type(getattr(ds.settings, k))(v) for k, v in update.items()}  # "10000" → 10000
                run = Dataset(
                    ds.name,
                    ds.settings.model_copy(update=typed),
                    ds.sim,
                    ds.messages,
                    ds.bytes,
                    ds.ends,
                    ds.active_members,
                )
                t = measure_workers(run, client, variant, cfg, Path(tmp), ui, engine=engine)
                rss = f"{t.peak_rss_bytes / 2**20:.0f} MB" if t.peak_rss_bytes else "–"
                cpu = t.cpu_us_per_message
                print(f"{variant}: {t.events_per_s:,.0f} events/s, {cpu} µs CPU/msg, peak {rss}", flush=True)
    finally:
        for service in reversed(started):
            service.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:] or ["base"])
