"""Redis Cluster as Pulse's store: one atomic batch script per input partition number.

Enabled by ``PULSE_REDIS_CLUSTER=1`` or a ``redis+cluster://`` (``rediss+cluster://``) URL.  A
script can only touch keys of one hash slot, so every key a batch writes carries the hash tag of
its input partition number p (:func:`streams.keys.tagged`: ``pulse:{p3}:…``).  A community lives in
the partition its events arrive on (the contract keys every message by its community), so all of
its keys, its operator state and log, and the progress, seen ids and directory of partition p share
p's slot.  A batch spanning several partitions is committed as one script per partition, in
partition order; each script is atomic and fenced on its own partition's offsets, so a crash
between two of them leaves every partition either fully applied or not at all — exactly what
the single-node script guarantees per batch.  A retried commit skips the partitions that already
committed.

Global boards are kept per partition and merged by the readers (:mod:`streams.queries`, the API):
the communities leaderboard of a window, the window starts, and the all-communities alert list.
Readers find a community's partition in the directories ``pulse:{pN}:homes`` (community → last
batch, wall-clock ms), looked up over the partitions counted by ``pulse:partitions``.
"""

from __future__ import annotations

import time
from typing import Any, cast

import orjson
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    MasterDownError,
    SlotNotCoveredError,
    TryAgainError,
)

from streams import keys
from streams.config import Settings
from streams.operators.base import RedisCommand
from streams.pipeline import BatchResult, PartitionProgress, TopicPartition
from streams.sinks.redis_store import RedisStore, StoreRefused

UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    TryAgainError,
    SlotNotCoveredError,
)
"""Errors meaning "part of the cluster is away" (a node down, a failover under way): retry."""

_CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
_RAISE = (
    "local n = tonumber(redis.call('GET', KEYS[1]) or '0')"
    " if tonumber(ARGV[1]) > n then redis.call('SET', KEYS[1], ARGV[1]) end"
)
"""SET KEYS[1] to ARGV[1] unless it holds a larger number (the partition count only rises)."""


def cluster_mode(settings: Settings) -> bool:
    """True when Pulse should talk to Redis Cluster (``redis_cluster`` or a ``+cluster`` URL)."""
    return settings.redis_cluster or settings.redis_url.startswith(_CLUSTER_SCHEMES)


def plain_url(url: str) -> str:
    """``url`` as redis-py's cluster client takes it: ``redis+cluster://h:p`` → ``redis://h:p``.

    >>> plain_url("rediss+cluster://u:pw@h:7000/0"), plain_url("redis://h")
    ('rediss://u:pw@h:7000/0', 'redis://h')
    """
    for scheme in _CLUSTER_SCHEMES:
        if url.startswith(scheme):
            return scheme.replace("+cluster", "") + url[len(scheme) :]
    return url


def connect(settings: Settings, **kwargs: Any) -> redis.Redis | RedisCluster:
    """A synchronous client of the configured Redis (single node or cluster); replies are bytes."""
    url = plain_url(settings.redis_url)
    options = {**settings.redis_kwargs(), **kwargs}
    if cluster_mode(settings):
        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def connect_async(settings: Settings, **kwargs: Any) -> aioredis.Redis | AsyncRedisCluster:
    """An asyncio client of the configured Redis (single node or cluster)."""
    url = plain_url(settings.redis_url)
    options = {**settings.redis_kwargs(), **kwargs}
    if cluster_mode(settings):
        return AsyncRedisCluster.from_url(url, **options)
    return aioredis.Redis.from_url(url, **options)


class ClusterStore(RedisStore):
    """:class:`RedisStore` on Redis Cluster: the same script, once per partition, on tagged keys."""

    overlaps_commits = False  # commit() keeps the split of the batch it is retrying, and its tag

    def __init__(self, client: Any, settings: Settings) -> None:
        super().__init__(client, settings)
        self.homes: dict[str, int] = {}  # community → partition its events arrive on
        self._tag: int | None = None  # the partition whose payload is being built
        self._observed: tuple[BatchResult | None, dict[str, int]] = (None, {})
        self._split: tuple[BatchResult | None, dict[int, BatchResult], set[int]] = (None, {}, set())
        self._count_written = 0  # pulse:partitions is at least this

    @classmethod
    def connect(cls, settings: Settings) -> ClusterStore:
        client = RedisCluster.from_url(
            plain_url(settings.redis_url),
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
            **settings.redis_kwargs(),  # type: ignore[arg-type]
        )
        return cls(client, settings)

    def _k(self, key: str) -> str:
        return keys.tagged(key, self._tag)

    def write_partition_count(self, count: int) -> None:
        """Record the input topics' partition count for readers: only ever raised, atomically (two
        workers starting together cannot lower it)."""
        if count > self._count_written:
            self.client.eval(_RAISE, 1, keys.PARTITIONS, count)
            self._count_written = count

    # --- which partition a community lives in --------------------------------------------------
    def observe(self, result: BatchResult) -> None:
        """Learn each community's partition from the batch's events.  A community arriving on two
        partitions in one batch would need two partitions' scripts to agree: refused (the contract
        keys every message by its community, so this is a producer's mistake)."""
        batch: dict[str, int] = {}
        for ev, partition in zip(result.events, result.event_partitions, strict=True):
            known = batch.setdefault(ev.community, partition)
            if known != partition:
                raise StoreRefused(
                    f"community {ev.community!r} arrived on partitions {known} and {partition} in one batch:"
                    " Redis Cluster needs every message keyed by its community (one partition each)"
                )
        self.homes.update(batch)
        self._observed = (result, batch)

    # --- reads ---------------------------------------------------------------------------------
    def load_progress(self, partitions: list[TopicPartition]) -> dict[TopicPartition, PartitionProgress]:
        result: dict[TopicPartition, PartitionProgress] = {}
        for number in sorted({tp[1] for tp in partitions}):
            self._tag = number
            try:
                result.update(super().load_progress([tp for tp in partitions if tp[1] == number]))
            finally:
                self._tag = None
        return result

    def _home_key(self, key: str, community: str) -> str:
        return keys.tagged(key, self.homes[community])

    # --- writes --------------------------------------------------------------------------------
    def split(self, result: BatchResult) -> dict[int, BatchResult]:
        """One sub-batch per input partition number: its offsets, its communities' activity and
        operator writes (keys tagged), its share of the all-communities alert list, and its
        directory of communities."""
        observed, batch_homes = self._observed
        if observed is not result:
            self.observe(result)
            batch_homes = self._observed[1]
        subs: dict[int, BatchResult] = {}
        for tp, change in result.partitions.items():
            sub = subs.get(tp[1])
            if sub is None:
                sub = subs[tp[1]] = BatchResult([], [], 0, {}, {})
            sub.partitions[tp] = change

        def home(community: str) -> int:
            number = batch_homes.get(community, self.homes.get(community))
            if number is None or number not in subs:
                raise StoreRefused(f"no partition of this batch holds community {community!r}")
            return number

        for (community, start), delta in result.activity.items():
            subs[home(community)].activity[(community, start)] = delta
        alert_lists: dict[int, list[RedisCommand]] = {}
        trims: list[RedisCommand] = []
        for cmd in result.commands:
            key = cmd[1]
            if key == keys.ALERTS_ALL:
                if cmd[0] == "LPUSH":
                    number = home(orjson.loads(cmd[2])["community"])
                    alert_lists.setdefault(number, []).append(["LPUSH", keys.tagged(key, number), *cmd[2:]])
                else:
                    trims.append(cmd)  # LTRIM: applied to every partition's list that grew
                continue
            owner = keys.community_of(key)
            if owner is None:
                raise StoreRefused(f"key {key} belongs to no community: cannot place it on Redis Cluster")
            number = home(owner)
            subs[number].commands.append([cmd[0], keys.tagged(key, number), *cmd[2:]])
        for number, pushes in alert_lists.items():
            subs[number].commands += pushes
            subs[number].commands += [[c[0], keys.tagged(c[1], number), *c[2:]] for c in trims]
        now_ms = int(time.time() * 1000)
        # a directory entry outlives every key of its community: window keys live the retention
        idle = max(self.settings.idle_ttl_seconds, self.settings.retention_seconds)
        members: dict[int, list[str | int]] = {}
        for community, number in batch_homes.items():
            members.setdefault(number, []).extend((now_ms, community))
        for number, pairs in members.items():
            directory = keys.homes(number)
            subs[number].commands += [
                ["ZADD", directory, *pairs],
                ["ZREMRANGEBYSCORE", directory, "-inf", f"({now_ms - idle * 1000}"],
                ["EXPIRE", directory, idle],
            ]
        return subs

    def commit(self, result: BatchResult) -> None:
        """Apply ``result`` as one atomic script per partition number.  A retry of the same result
        (Redis was away) skips the partitions already applied."""
        if not result.partitions:
            return
        if self._split[0] is not result:
            self._split = (result, self.split(result), set())
        _, subs, done = self._split
        # before the data: a reader never misses a partition that has some (any engine)
        self.write_partition_count(max(subs) + 1)
        for number in sorted(subs):
            if number in done:
                continue
            self._tag = number
            try:
                payload = self.payload(subs[number])
            except ValueError as exc:
                raise StoreRefused(str(exc)) from exc
            finally:
                self._tag = None
            reply = cast(
                "list[bytes]", self._script(keys=[keys.tagged(keys.PROGRESS, number)], args=[payload])
            )
            self._check_reply(reply)
            done.add(number)
