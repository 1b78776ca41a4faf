"""Shared fixtures: one real broker and one real Redis per test session, and per-test settings.

Nothing here mocks Kafka or Redis: tests talk to an embedded Tansu broker and a ``redis-server``
started on free loopback ports (see :mod:`infra.local_services`).  Isolation between tests comes
from names, not from fresh servers: :func:`make_settings` gives every test its own topic prefix
and consumer group, and :func:`redis_client` flushes the session's Redis before the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from infra.local_services import EmbeddedBroker, EmbeddedRedis, LocalRedisCluster
from streams.config import Settings
from tests.workers import isolated_settings


@pytest.fixture(scope="session", autouse=True)
def _hermetic_pulse_env() -> Iterator[None]:
    """Hide the developer's ``PULSE_*`` variables so Settings() defaults are the documented ones."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("PULSE_"):
                mp.delenv(name)
        yield


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The session's Kafka-protocol broker (Tansu, in memory).  Its log stays in pytest's tmp dir."""
    with EmbeddedBroker(workdir=tmp_path_factory.mktemp("broker")) as service:
        yield service


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """The session's ``redis-server`` (no persistence).  Its log stays in pytest's tmp dir."""
    with EmbeddedRedis(workdir=tmp_path_factory.mktemp("redis")) as service:
        yield service


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """The session's Redis Cluster: 3 primaries with one replica each, on loopback ports, formed by
    ``redis-cli --cluster create``; a primary silent for 2 s is replaced by its replica."""
    with LocalRedisCluster(masters=3, replicas=1, workdir=tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster_client(redis_cluster: LocalRedisCluster) -> Iterator[redis.RedisCluster]:
    """A client of the session's Redis Cluster, every primary emptied before the test.  Replies are bytes."""
    redis_cluster.wait_ok()
    client = redis.RedisCluster.from_url(redis_cluster.url.replace("redis+cluster://", "redis://"))
    client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A client of the session's Redis, emptied (FLUSHALL) before the test.  Replies are bytes."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def make_settings(broker: EmbeddedBroker, redis_server: EmbeddedRedis) -> Callable[..., Settings]:
    """``make_settings(**overrides) -> Settings`` pointing at the session's services.

    Every call within one test shares that test's topic prefix (``t<hex>.``) and consumer group,
    so a worker and a producer made from two calls see the same topics; another test never does.
    ``metrics_port=0`` (no HTTP server) and ``session_timeout_ms=6000`` unless overridden.
    """
    test_id = uuid.uuid4().hex[:12]

    def make(**overrides: Any) -> Settings:
        return isolated_settings(
            test_id, **{"kafka_bootstrap": broker.bootstrap, "redis_url": redis_server.url, **overrides}
        )

    return make
