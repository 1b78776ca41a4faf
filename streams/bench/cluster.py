"""``pulse bench``'s Redis Cluster row: the batch engine on a local 3-primary Redis Cluster, on the
same published data as the single-node row of the same run (issue 17).

The cluster (``redis-server --cluster-enabled yes`` × 3, formed by ``redis-cli --cluster create``)
is started for the row and stopped after it.  :func:`streams.bench.workers.measure_workers` times the row
exactly as it times the single-node rows, through :class:`ClusterView`, which answers the few
calls it makes (``hmget`` of the progress fields, ``flushdb``, ``info``) from every primary.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from redis.cluster import RedisCluster

from streams import keys
from streams.bench.config import BenchConfig, Throughput
from streams.bench.data import Dataset
from streams.bench.ui import Ui
from streams.bench.workers import measure_workers
from streams.sinks.cluster import plain_url

PRIMARIES = 3


class ClusterView:
    """The single-node calls ``measure_workers`` makes, answered by a Redis Cluster."""

    def __init__(self, client: RedisCluster, partitions: int) -> None:
        self.client = client
        self.partitions = partitions

    def hmget(self, key: str, fields: list[str]) -> list[bytes | None]:
        """``fields`` of the progress hash: each field ``o:{topic}:{p}`` from partition p's hash."""
        assert key == keys.PROGRESS
        pipe = self.client.pipeline()
        for name in fields:
            pipe.hget(keys.tagged(keys.PROGRESS, int(name.rsplit(":", 1)[1])), name)
        return list(pipe.execute())

    def flushdb(self) -> None:
        self.client.flushall(target_nodes=RedisCluster.PRIMARIES)

    def info(self, section: str) -> dict[str, Any]:
        """``INFO section`` summed over the primaries (CPU seconds, memory bytes)."""
        replies = self.client.info(section, target_nodes=RedisCluster.PRIMARIES)
        total: dict[str, Any] = {}
        for reply in replies.values():
            for name, value in reply.items():
                if isinstance(value, int | float):
                    total[name] = total.get(name, 0) + value
        return total


def measure_cluster(
    ds: Dataset, cfg: BenchConfig, workdir: Path, ui: Ui, single: Throughput | None = None
) -> Throughput:
    """One batch worker (default operators) over ``ds`` on a fresh local Redis Cluster; ``single``:
    the single-node row of the same run, for the ratio."""
    from infra.local_services import LocalRedisCluster

    with ui.status(f"starting a Redis Cluster of {PRIMARIES} primaries"):
        cluster = LocalRedisCluster(masters=PRIMARIES, workdir=workdir / "cluster").start()
    try:
        client = RedisCluster.from_url(plain_url(cluster.url), socket_timeout=30)
        view = ClusterView(client, ds.settings.partitions)
        settings = ds.settings.model_copy(update={"redis_url": cluster.url})
        on_cluster = dataclasses.replace(ds, settings=settings)
        result = measure_workers(on_cluster, view, "pulse (batch, Redis Cluster)", cfg, workdir, ui)  # type: ignore[arg-type]
        result.notes += f"; Redis Cluster of {PRIMARIES} primaries on this machine (one script per partition)"
        if single is not None and single.events_per_s:
            ratio = result.extra["ratio_to_single_node"] = round(result.events_per_s / single.events_per_s, 3)
            result.notes += f"; {ratio:.2f}× single-node Redis in this run"
        client.close()
        return result
    finally:
        cluster.stop()
