"""Stateful operators in the real worker: their documented keys appear, the activity state stays
exact beside them, and a worker killed mid-stream continues its models from the snapshots."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from streams.topics import ensure_topics
from tests.workers import (
    catch_up,
    check_exact,
    publish_sim,
    pulse,
    stop,
    wait_caught_up,
    wait_progress_changes,
)

pytestmark = pytest.mark.slow


def keys(client, pattern: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(pattern, count=1000))


def scored_windows(client) -> int:
    return sum(int(client.hget(k, "scored") or 0) for k in keys(client, "pulse:forecast:*"))


def test_operator_keys_appear_beside_exact_activity(make_settings, redis_client, tmp_path):
    settings = make_settings(partitions=2, operators="forecasts,turnout")
    ensure_topics(settings)
    publish_sim(settings, seed=21, events=20_000, communities=6, members=600, span_seconds=3 * 86400)
    catch_up(redis_client, settings, tmp_path / "worker.log", timeout=240)
    check_exact(redis_client, settings)
    forecasts = keys(redis_client, "pulse:forecast:*")
    assert len(forecasts) == 6
    fields = {k.decode() for k in redis_client.hgetall(forecasts[0])}
    assert {"demand", "supply", "gap", "mae", "mae_last_value", "mae_seasonal", "tags"} <= fields
    meetups = keys(redis_client, "pulse:meetup:*")
    assert meetups
    meetup = {k.decode(): v.decode() for k, v in redis_client.hgetall(meetups[0]).items()}
    wanted = {"community", "going", "maybe", "cancelled", "predicted_turnout", "capacity", "predicted_fill"}
    assert wanted <= set(meetup)
    assert scored_windows(redis_client) > 6 * 24  # three days of hourly windows, predicted then scored


def test_killed_worker_continues_its_models_from_the_snapshots(make_settings, redis_client, tmp_path):
    """A killed and restarted worker ends where an uninterrupted one does (its models come back from
    their snapshots and logs); one that lost its models would have scored about a day fewer
    windows per community."""
    settings = make_settings(partitions=2, batch_max=500, operators="forecasts,turnout")
    ensure_topics(settings)
    publish_sim(settings, seed=22, events=30_000, communities=6, members=600, span_seconds=4 * 86400)
    log = tmp_path / "worker.log"
    worker = pulse("worker", settings=settings, log=log)
    deadline = time.monotonic() + 120
    while scored_windows(redis_client) < 6 * 6:  # about six hours into the stream
        assert time.monotonic() < deadline and worker.poll() is None
        wait_progress_changes(redis_client)
    stop(worker, signal.SIGKILL)
    before = scored_windows(redis_client)
    persisted = len(keys(redis_client, "pulse:state:*")) + len(keys(redis_client, "pulse:log:*"))
    assert persisted >= 1  # snapshots, or the events logged since (replayed on restart)
    catch_up(redis_client, settings, log, timeout=240)
    check_exact(redis_client, settings)

    clean_url = settings.redis_url.rsplit("/", 1)[0] + "/1"
    clean = redis.Redis.from_url(clean_url)
    clean.flushdb()
    group = f"{settings.group_id}-clean"
    uninterrupted = settings.model_copy(update={"redis_url": clean_url, "group_id": group})
    worker = pulse("worker", settings=uninterrupted, log=tmp_path / "clean.log")
    try:
        wait_caught_up(clean, uninterrupted, timeout=240, proc=worker)
    finally:
        stop(worker)
    expected = scored_windows(clean)
    assert expected > 6 * 48
    assert abs(scored_windows(redis_client) - expected) <= 6, (scored_windows(redis_client), expected, before)
