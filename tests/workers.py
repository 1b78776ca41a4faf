"""Real processes for end-to-end tests: ``pulse worker`` (start, catch up, kill), the simulator's stream
published, and the Debian tools (Prometheus, Alertmanager) a test runs."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from streams.config import INPUT_TOPICS, Settings
from streams.processes import settings_env
from streams.publisher import Outgoing, Publisher
from streams.simulator import SimConfig, Simulator
from tests import reference

ROOT = Path(__file__).resolve().parent.parent


def installed(binary: str) -> str:
    """The path of a Debian tool the test runs (Prometheus, Alertmanager and their CLIs), or skip."""
    path = shutil.which(binary)
    if path is None:
        pytest.skip(
            f"{binary} is not installed (Debian: apt-get install -y prometheus prometheus-alertmanager)"
        )
    return path


def isolated_settings(test_id: str, **overrides: Any) -> Settings:
    """Settings on the test session's services with topics and a group of their own (``test_id``);
    ``metrics_port=0`` (no HTTP server) and ``session_timeout_ms=6000`` unless overridden."""
    defaults: dict[str, Any] = {
        "topic_prefix": f"t{test_id}.",
        "group_id": f"pulse-{test_id}",
        "metrics_port": 0,
        "session_timeout_ms": 6000,
    }
    return Settings(_env_file=None, **{**defaults, **overrides})


def pulse(*args: str, settings: Settings, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``pulse ARGS`` as a child process with ``settings`` in its environment."""
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", *args],
        env=settings_env(settings),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def end_offsets(settings: Settings) -> dict[str, int]:
    """Last offset + 1 per non-empty input partition, as ``topic:partition``.

    Read from the records themselves: Tansu's ``get_watermark_offsets`` reports the first offset
    of the last produced batch + 1, not the partition's end.
    """
    ends: dict[str, int] = {}
    for logical in INPUT_TOPICS:
        for rec in reference.read_topic(settings.kafka_bootstrap, settings.topic(logical)):
            ends[f"{rec.topic}:{rec.partition}"] = rec.offset + 1
    return ends


def applied(client: redis.Redis) -> dict[str, int]:
    """Stored next offset per ``topic:partition``: ``pulse:progress``, or on Redis Cluster (a client
    with ``get_primaries``) ``pulse:{pN}:progress`` of every partition N below ``pulse:partitions``
    (a partition whose node does not answer, stopped or failing over, is left out)."""
    if not hasattr(client, "get_primaries"):
        rows = client.hgetall("pulse:progress").items()
    else:  # read through the cluster client: it follows a failover (MOVED) to the new primary
        rows = []
        try:
            count = int(client.get("pulse:partitions") or 0)
        except redis.RedisError:
            count = 0
        for p in range(count):
            try:
                rows += client.hgetall(f"pulse:{{p{p}}}:progress").items()
            except redis.RedisError:
                continue
    return {k.decode()[2:]: int(v) for k, v in rows if k.startswith(b"o:")}


def wait_caught_up(
    client: redis.Redis, settings: Settings, timeout: float = 120, proc: subprocess.Popen[bytes] | None = None
) -> float:
    """Block until Redis's stored offsets reach every input partition's end; returns seconds waited."""
    ends = {k: v for k, v in end_offsets(settings).items() if v > 0}
    started = time.monotonic()
    while True:
        done = applied(client)
        if all(done.get(k, 0) >= v for k, v in ends.items()):
            return time.monotonic() - started
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode} before catching up")
        if time.monotonic() - started > timeout:
            missing = {k: (done.get(k, 0), v) for k, v in ends.items() if done.get(k, 0) < v}
            raise AssertionError(f"not caught up after {timeout} s: {missing}")
        time.sleep(0.1)


def catch_up(client: redis.Redis, settings: Settings, log: Path, timeout: float = 240) -> None:
    """Start ``pulse worker``, wait until Redis holds every input partition to its end, stop it."""
    worker = pulse("worker", settings=settings, log=log)
    try:
        wait_caught_up(client, settings, timeout=timeout, proc=worker)
    finally:
        stop(worker)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    """Signal the worker's whole process group and wait for it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def publish_sim(settings: Settings, **config: Any) -> int:
    """Publish the simulator's stream (``SimConfig(**config)``) to ``settings``' input topics."""
    sim = Simulator(SimConfig(**config))
    return Publisher(settings).publish(Outgoing(m.topic, m.key, m.value) for m in sim.messages())


def check_exact(client: redis.Redis, settings: Settings) -> reference.Expected:
    """Redis and the dead-letter topic equal the independent recompute from the input topics."""
    records = []
    for name in settings.input_topics:
        records += reference.read_topic(settings.kafka_bootstrap, name)
    dead = reference.read_topic(settings.kafka_bootstrap, settings.dead_letter_topic)
    expected = reference.recompute(records, settings)
    reference.assert_matches(client, expected, dead)
    return expected


def wait_progress_changes(client: redis.Redis, timeout: float = 60) -> None:
    """Return right after the worker's next Redis commit (the stored offsets moved)."""
    before = applied(client)
    deadline = time.monotonic() + timeout
    while applied(client) == before:
        assert time.monotonic() < deadline, "worker made no progress"
        time.sleep(0.002)


def digests_under_hash_seeds(operator: str, stream: str, seeds: tuple[str, ...] = ("1", "2")) -> set[str]:
    """A digest of everything ``operator`` (a ``module:Class`` expression) outputs on ``stream`` (a
    ``module:call(...)`` expression whose ``.events`` or value is the event list), computed in a
    fresh process per ``PYTHONHASHSEED``: one digest when no set or dict order leaks into outputs
    (a restored state may continue in another process)."""
    op_module, op_class = operator.split(":")
    stream_module, stream_call = stream.split(":")
    code = (
        "import hashlib, orjson\n"
        f"from {op_module} import {op_class}\n"
        f"from {stream_module} import {stream_call.split('(')[0]}\n"
        "from streams.operators.runner import run_locally\n"
        f"events = {stream_call}\n"
        "events = getattr(events, 'events', events)\n"
        f"outputs, _ = run_locally({op_class}(), events, 50)\n"
        "rows = [[o.commands, [m.value for m in o.messages]] for o in outputs]\n"
        "print(hashlib.sha256(orjson.dumps(rows)).hexdigest())\n"
    )
    procs = [  # side by side: each is mostly the interpreter importing Pulse
        subprocess.Popen(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for seed in seeds
    ]
    digests = set()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, out, err)
        digests.add(out.strip())
    return digests


def kill_three_times(client: redis.Redis, settings: Settings, log: Path) -> None:
    """Three workers in turn, each SIGKILLed mid-stream (seeded): at a random moment of a batch,
    right after a Redis commit, at a random moment again.  One that makes no progress is first
    asked for its threads' stacks (SIGABRT: faulthandler, with ``PYTHONFAULTHANDLER`` set)."""
    rng = random.Random(1234)
    for how in ("during processing", "right after a Redis write", "during processing"):
        worker = pulse("worker", settings=settings, log=log)
        try:
            wait_progress_changes(client)
            if how == "during processing":
                time.sleep(rng.uniform(0.05, 0.6))
            else:
                wait_progress_changes(client)
        except AssertionError:
            stop(worker, signal.SIGABRT, timeout=5)
            print(log.read_text()[-6000:])
            raise
        finally:
            stop(worker, signal.SIGKILL)


def kill_one_of_two(client: redis.Redis, settings: Settings, tmp_path: Path) -> None:
    """Two workers in one group; one SIGKILLed just after a commit: the other must take over its
    partitions (after the session timeout) and bring every partition to its end."""
    first = pulse("worker", settings=settings, log=tmp_path / "a.log")
    second = pulse("worker", settings=settings, log=tmp_path / "b.log")
    try:
        wait_progress_changes(client)
        time.sleep(0.3)
        stop(first, signal.SIGKILL)
        wait_caught_up(client, settings, timeout=240, proc=second)
    finally:
        stop(first, signal.SIGKILL)
        stop(second)
