"""The embedded services are real: a Kafka client and a Redis client can use them as the worker will."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from infra.local_services import EmbeddedBroker, EmbeddedRedis, ensure_services
from streams.config import Settings


def _refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return False
    except OSError:
        return True


@pytest.mark.timeout(60)
def test_broker_produce_and_consume_in_a_group(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    topic = settings.topic("smoke")
    conf: dict[str, str | int | float | bool] = {**settings.kafka_config()}
    admin = AdminClient(conf)  # keep a reference: a collected client fails its pending futures
    for future in admin.create_topics([NewTopic(topic, num_partitions=2)]).values():
        future.result(timeout=10)

    producer = Producer(conf)
    producer.produce(topic, key=b"community-1", value=b'{"hello":"pulse"}')
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            **conf,
            "group.id": settings.group_id,
            "session.timeout.ms": settings.session_timeout_ms,  # Tansu holds a new group's first join ~3 s
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        message = None
        while message is None and time.monotonic() < deadline:
            polled = consumer.poll(1.0)
            if polled is None:
                continue
            error = polled.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                pytest.fail(f"consumer error: {error}")
            if error is None:
                message = polled
        assert message is not None, "no message within 30 s"
        assert (message.key(), message.value()) == (b"community-1", b'{"hello":"pulse"}')

        consumer.commit(message=message, asynchronous=False)
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None
        [committed] = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        assert committed.offset == offset + 1
    finally:
        consumer.close()


@pytest.mark.timeout(60)
def test_redis_data_survives_stop_and_start_on_the_same_port(tmp_path: Path) -> None:
    server = EmbeddedRedis(workdir=tmp_path, persistent=True)
    with server:
        port = server.port
        client = redis.Redis.from_url(server.url)
        client.hset("pulse:test", mapping={"a": "1", "b": "2"})
        client.zadd("pulse:board", {"m1": 3.5, "m2": 1.0})
        client.close()

        server.stop()
        assert not server.running
        assert _refused(server.host, port)

        server.start()
        assert server.port == port
        client = redis.Redis.from_url(server.url)
        assert client.hgetall("pulse:test") == {b"a": b"1", b"b": b"2"}
        assert client.zrange("pulse:board", 0, -1, withscores=True) == [(b"m2", 1.0), (b"m1", 3.5)]
        client.close()
    assert not server.running
    assert server.log_path.is_file()  # a given workdir is kept, with the log


@pytest.mark.timeout(60)
def test_redis_without_persistence_restarts_empty(tmp_path: Path) -> None:
    with EmbeddedRedis(workdir=tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        client.close()
        server.restart_after(0)
        client = redis.Redis.from_url(server.url)
        assert client.dbsize() == 0
        client.close()


@pytest.mark.timeout(60)
def test_broker_kill_frees_the_port_and_restarts_empty(tmp_path: Path) -> None:
    with EmbeddedBroker(workdir=tmp_path) as broker:
        conf: dict[str, str | int | float | bool] = {"bootstrap.servers": broker.bootstrap}
        topic = f"kill-{uuid.uuid4().hex[:8]}"
        admin = AdminClient(conf)
        for future in admin.create_topics([NewTopic(topic, num_partitions=1)]).values():
            future.result(timeout=10)
        pid = broker.pid
        broker.kill()
        assert not broker.running
        assert _refused(broker.host, broker.port)

        broker.start()
        assert broker.pid != pid
        assert topic not in AdminClient(conf).list_topics(timeout=10).topics  # memory storage: forgotten


@pytest.mark.timeout(60)
def test_ensure_services_honours_configured_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_KAFKA_BOOTSTRAP", "kafka.example:9092")
    monkeypatch.setenv("PULSE_REDIS_URL", "redis://redis.example:6379/0")
    settings = Settings(_env_file=None)
    resolved, started = ensure_services(settings)
    assert started == []
    assert (resolved.kafka_bootstrap, resolved.redis_url) == (
        "kafka.example:9092",
        "redis://redis.example:6379/0",
    )


@pytest.mark.timeout(60)
def test_ensure_services_starts_what_is_missing(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, topic_prefix="demo.")
    resolved, started = ensure_services(settings, workdir=tmp_path, environ={})
    try:
        assert [type(s) for s in started] == [EmbeddedBroker, EmbeddedRedis]
        broker, redis_server = started
        assert isinstance(broker, EmbeddedBroker) and isinstance(redis_server, EmbeddedRedis)
        assert resolved.kafka_bootstrap == broker.bootstrap
        assert resolved.redis_url == redis_server.url
        assert resolved.topic_prefix == "demo."
        with redis.Redis.from_url(resolved.redis_url) as client:
            assert client.ping()
        assert (
            AdminClient({**resolved.kafka_config()}).list_topics(timeout=10).cluster_id == broker.cluster_id
        )
    finally:
        for service in started:
            service.stop()
    assert not any(s.running for s in started)
