"""The machine and library versions a run's figures were taken on: what a reader needs to judge them."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import redis


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
