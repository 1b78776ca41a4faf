"""``pulse worker --processes 2`` with real processes: a SIGKILLed child is restarted, SIGTERM to the
supervisor stops every child, and the final Redis state equals the independent reference recompute."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from streams.topics import ensure_topics
from tests.workers import applied, check_exact, publish_sim, pulse, stop, wait_caught_up

pytestmark = pytest.mark.slow


def children_of(pid: int) -> set[int]:
    """Pids whose parent is ``pid`` (from ``/proc/*/stat``)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":  # ppid; zombies are already gone
            out.add(int(entry.name))
    return out


def two_children(pid: int, without: int | None = None) -> set[int] | None:
    found = children_of(pid)
    return found if len(found) == 2 and without not in found else None


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_killed_child_is_restarted_and_results_stay_exact(make_settings, redis_client, tmp_path):
    # the activity state is what the reference recomputes; the light operators keep the test short
    settings = make_settings(partitions=4, batch_max=1000, operators="core")
    ensure_topics(settings)
    publish_sim(settings, seed=21, events=60_000, communities=30, members=3000, dup_rate=0.02)
    log = tmp_path / "supervisor.log"
    sup = pulse("worker", "--processes", "2", settings=settings, log=log)
    try:
        first = wait_for(lambda: two_children(sup.pid), 30, "two workers")
        # both must have joined and committed before the kill, so the kill interrupts real work
        wait_for(lambda: len(applied(redis_client)) >= 1, 60, "a first commit")
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: two_children(sup.pid, without=victim), 30, "a restart")
        assert len(replaced & first) == 1  # the other child kept running
        wait_caught_up(redis_client, settings, timeout=240, proc=sup)
        os.kill(sup.pid, signal.SIGTERM)  # the supervisor alone: it must forward the signal
        assert sup.wait(60) == 0
        assert not children_of(sup.pid)
        for pid in replaced:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        stop(sup)
    text = log.read_text()
    assert f"(pid {victim}) exited with -9" in text, text[-2000:]
    assert check_exact(redis_client, settings).applied > 55_000


def test_each_child_gets_its_own_metrics_port() -> None:
    from streams.engines.supervisor import Supervisor

    sup = Supervisor(3, env={"PATH": "/bin"}, metrics_port=9100)
    assert [sup.child_env(i)["PULSE_METRICS_PORT"] for i in range(3)] == ["9100", "9101", "9102"]
    off = Supervisor(2, env={}, metrics_port=0)
    assert [off.child_env(i)["PULSE_METRICS_PORT"] for i in range(2)] == ["0", "0"]
