"""The read side of the Redis contract: what the CLI, the demo and the HTTP API show.

Readers never touch Kafka, and only read the documented keys.  On Redis Cluster (a
``redis.cluster.RedisCluster`` client) a community's keys carry its partition's tag, found in the
partitions' directories, and the global boards are merged over the partitions (README, *Scaling out*).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis
from redis.cluster import RedisCluster

from streams import keys

Row = TypeVar("Row", bound=tuple[Any, ...])


@dataclass(frozen=True, slots=True)
class Ranked:
    name: str
    score: float


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def merge_ranked(parts: Iterable[Sequence[Row]], limit: int) -> list[Row]:
    """The ``limit`` best of several ``(member, score, ...)`` lists, in the order one sorted set
    holding them all would give with ``ZREVRANGE``: score descending, then member in reverse byte order.

    >>> merge_ranked([[("b", 2.0), ("a", 1.0)], [("c", 2.0), ("d", 0.5)]], 3)
    [('c', 2.0), ('b', 2.0), ('a', 1.0)]
    """
    rows = [row for part in parts for row in part]
    return heapq.nlargest(limit, rows, key=lambda r: (r[1], _b(r[0])))


def merge_windows(parts: Iterable[Sequence[bytes | str]], limit: int) -> list[int]:
    """The newest ``limit`` distinct window starts of several newest-first lists, newest first."""
    return sorted({int(float(_s(s))) for part in parts for s in part}, reverse=True)[:limit]


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def partition_count(client: RedisCluster) -> int:
    """The input partition count the workers recorded in ``pulse:partitions`` (0: none yet)."""
    raw = client.get(keys.PARTITIONS)
    return int(cast("bytes | str", raw)) if raw is not None else 0


def home(client: RedisCluster, community: str) -> int | None:
    """The partition whose tag ``community``'s keys carry: the directory that saw it last."""
    count = partition_count(client)
    pipe = client.pipeline()
    for p in range(count):
        pipe.zscore(keys.homes(p), community)
    found = [(score, p) for p, score in enumerate(pipe.execute() if count else []) if score is not None]
    return max(found)[1] if found else None


def _community_key(client: redis.Redis, community: str, key: str) -> str:
    if not is_cluster(client):
        return key
    where = home(client, community)  # type: ignore[arg-type]
    return keys.tagged(key, where if where is not None else 0)


def windows(client: redis.Redis, window_seconds: int, limit: int = 24) -> list[int]:
    """The newest window starts with data, newest first."""
    if is_cluster(client):
        count = partition_count(client)  # type: ignore[arg-type]
        pipe = client.pipeline()
        for p in range(count):
            pipe.zrevrange(keys.tagged(keys.windows(window_seconds), p), 0, limit - 1)
        return merge_windows(pipe.execute() if count else [], limit)
    # without scores the reply is a list of members; redis-py types it together with the scored form
    starts = cast("list[bytes | str]", client.zrevrange(keys.windows(window_seconds), 0, limit - 1))
    return [int(float(s)) for s in starts]


def current_window(client: redis.Redis, window_seconds: int) -> int | None:
    latest = windows(client, window_seconds, 1)
    return latest[0] if latest else None


def _ranked(client: redis.Redis, key: str, limit: int) -> list[Ranked]:
    """The ``limit`` best members of the sorted set ``key``, best first."""
    # withscores=True: (member, score) pairs; redis-py types the reply together with the plain form
    rows = cast("list[tuple[bytes | str, float]]", client.zrevrange(key, 0, limit - 1, withscores=True))
    return [Ranked(_s(m), s) for m, s in rows]


def top_communities(client: redis.Redis, window_seconds: int, start: int, limit: int = 10) -> list[Ranked]:
    board = keys.communities_board(window_seconds, start)
    if is_cluster(client):  # top-k of every partition's board, merged
        count = partition_count(client)  # type: ignore[arg-type]
        pipe = client.pipeline()
        for p in range(count):
            pipe.zrevrange(keys.tagged(board, p), 0, limit - 1, withscores=True)
        rows = merge_ranked(pipe.execute() if count else [], limit)
        return [Ranked(_s(m), s) for m, s in rows]
    return _ranked(client, board, limit)


def top_members(
    client: redis.Redis, community: str, window_seconds: int, start: int, limit: int = 10
) -> list[Ranked]:
    return _ranked(
        client, _community_key(client, community, keys.members_board(community, window_seconds, start)), limit
    )


def activity(client: redis.Redis, community: str, window_seconds: int, start: int) -> dict[str, float]:
    """The window's hash as numbers (empty when the community had no events then)."""
    raw = client.hgetall(_community_key(client, community, keys.activity(community, window_seconds, start)))
    return {_s(k): float(v) for k, v in raw.items()}


def applied_offsets(client: redis.Redis) -> dict[str, int]:
    """Next offset per input partition (``topic:partition``) as stored with the state."""
    if is_cluster(client):
        count = partition_count(client)  # type: ignore[arg-type]
        pipe = client.pipeline()
        for p in range(count):
            pipe.hgetall(keys.tagged(keys.PROGRESS, p))
        rows = [row for reply in (pipe.execute() if count else []) for row in reply.items()]
    else:
        rows = list(client.hgetall(keys.PROGRESS).items())
    return {_s(k)[2:]: int(v) for k, v in rows if _s(k).startswith("o:")}
