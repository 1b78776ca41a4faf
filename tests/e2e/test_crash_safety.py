"""Exactly-once under failure, with real processes (the shape of faust's stress/killer.py):
a SIGKILL schedule, a Redis outage, a rebalance after a killed worker, and hostile input —
then the final Redis state is compared with the independent reference recompute."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import redis
from confluent_kafka import Producer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from infra.local_services import EmbeddedBroker, EmbeddedRedis
from streams.topics import ensure_topics
from tests.workers import (
    catch_up,
    check_exact,
    kill_one_of_two,
    kill_three_times,
    publish_sim,
    pulse,
    stop,
    wait_caught_up,
    wait_progress_changes,
)

pytestmark = pytest.mark.slow


def test_sigkill_three_times_mid_stream_loses_and_duplicates_nothing(make_settings, redis_client, tmp_path):
    settings = make_settings(partitions=4, batch_max=2000)
    ensure_topics(settings)
    publish_sim(
        settings, seed=5, events=100_000, communities=40, members=4000, dup_rate=0.02, malformed_rate=0.005
    )
    log = tmp_path / "worker.log"
    kill_three_times(redis_client, settings, log)
    catch_up(redis_client, settings, log, timeout=240)
    expected = check_exact(redis_client, settings)
    assert expected.applied > 90_000
    restores = [float(line.split(" in ")[1].split(" s")[0]) for line in log.read_text().splitlines()
                if "restored progress of" in line]  # fmt: skip
    assert len(restores) >= 4
    print(
        f"restore from Redis on (re)start: max {max(restores) * 1000:.1f} ms over {len(restores)} assignments"
    )


def test_redis_outage_of_ten_seconds_mid_stream(make_settings, tmp_path):
    with EmbeddedRedis(workdir=tmp_path, persistent=True, appendfsync="always") as server:
        client = redis.Redis.from_url(server.url)
        settings = make_settings(redis_url=server.url, partitions=2, batch_max=500)
        ensure_topics(settings)
        publish_sim(settings, seed=6, events=60_000, communities=20, members=2000, dup_rate=0.01)
        worker = pulse("worker", settings=settings, log=tmp_path / "worker.log")
        try:
            wait_progress_changes(client)
            server.stop()
            time.sleep(10)
            assert worker.poll() is None, "the worker must survive a Redis outage"
            server.start()
            wait_caught_up(client, settings, timeout=180, proc=worker)
        finally:
            stop(worker)
        log = (tmp_path / "worker.log").read_text()
        assert "Redis unavailable" in log
        check_exact(client, settings)


def test_kafka_outage_of_ten_seconds_mid_stream(make_settings, redis_client, tmp_path):
    """The broker stops answering for 10 s mid-stream (SIGSTOP: its connections hang, as in a
    network partition; its data stays, unlike a restart of the in-memory embedded broker), then
    comes back.  Dead letters keep being produced meanwhile: the worker must wait for them, not
    drop them, and lose or repeat nothing."""
    with EmbeddedBroker(workdir=tmp_path) as broker:
        settings = make_settings(kafka_bootstrap=broker.bootstrap, partitions=2, batch_max=500)
        ensure_topics(settings)
        publish_sim(
            settings, seed=8, events=40_000, communities=20, members=2000, dup_rate=0.01, malformed_rate=0.01
        )
        worker = pulse("worker", settings=settings, log=tmp_path / "worker.log")
        try:
            wait_progress_changes(redis_client)
            assert broker.pid is not None
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                time.sleep(10)
                assert worker.poll() is None, "the worker must survive a Kafka outage"
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            wait_caught_up(redis_client, settings, timeout=180, proc=worker)
        finally:
            stop(worker)
        check_exact(redis_client, settings)  # exact state, and every dead letter delivered once or more


def test_rebalance_after_one_of_two_workers_is_killed(make_settings, redis_client, tmp_path):
    settings = make_settings(partitions=4, batch_max=1000)
    ensure_topics(settings)
    publish_sim(settings, seed=7, events=60_000, communities=30, members=3000, dup_rate=0.01)
    kill_one_of_two(redis_client, settings, tmp_path)
    check_exact(redis_client, settings)


hostile = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    ).map(lambda doc: json.dumps(doc).encode()),
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.just(""), st.integers(), st.text(min_size=1, max_size=5)),
            "community": st.one_of(st.integers(), st.none(), st.just("c1")),
            "member": st.one_of(st.just("m"), st.floats(allow_nan=False), st.lists(st.text(max_size=3))),
            "ts": st.one_of(
                st.just("9999-12-31T23:59:59Z"),
                st.just("1969-07-20T20:17:00Z"),
                st.integers(-(2**40), 2**62),
                st.just("2026-01-01T00:00:00"),
                st.text(max_size=12),
            ),
            "post": st.one_of(st.just("p1"), st.integers()),
            "reaction": st.one_of(st.just("meh"), st.just("like"), st.integers()),
        }
    ).map(lambda doc: json.dumps(doc).encode()),
    st.integers(1000, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
)


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(st.lists(hostile, min_size=60, max_size=120))
def test_fuzzed_hostile_messages_are_dead_lettered_and_valid_ones_applied(
    make_settings, redis_server, payloads
):
    """Hypothesis' hostile payloads, the simulator's whole catalogue of malformed messages (thousands),
    and a 10 MB message, mixed into a valid stream: every valid event applied, every bad one dead-lettered."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    settings = make_settings(partitions=2)
    ensure_topics(settings)
    publish_sim(settings, seed=8, events=3000, communities=5, members=200, malformed_rate=0.8, dup_rate=0.02)
    producer = Producer({**settings.kafka_config(), "message.max.bytes": 32 * 1024 * 1024})
    for i, payload in enumerate(payloads):
        producer.produce(settings.topic(("posts", "reactions", "rsvps")[i % 3]), value=payload, key=b"c1")
    producer.produce(settings.topic("posts"), value=b'{"id":"' + b"x" * (10 * 1024 * 1024) + b'"}', key=b"c1")
    producer.flush()
    worker = pulse("worker", settings=settings)
    try:
        wait_caught_up(client, settings, timeout=180, proc=worker)
        status = Path(f"/proc/{worker.pid}/status").read_text()
        peak_rss_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
    finally:
        stop(worker)
    assert peak_rss_mb < 600, f"worker peaked at {peak_rss_mb:.0f} MB while hostile input flowed"
    expected = check_exact(client, settings)
    assert expected.applied >= 2900
    reasons = set(expected.dead_letters.values())
    assert (
        len(expected.dead_letters) >= 2000 and {"invalid_json", "schema", "timestamp", "oversized"} <= reasons
    )
