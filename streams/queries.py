"""The read side of the Redis contract: what the CLI, the demo and the HTTP API show.

Readers never touch Kafka, and only read the documented keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis

from streams import keys


@dataclass(frozen=True, slots=True)
class Ranked:
    name: str
    score: float


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def windows(client: redis.Redis, window_seconds: int, limit: int = 24) -> list[int]:
    """The newest window starts with data, newest first."""
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
    return _ranked(client, keys.communities_board(window_seconds, start), limit)


def top_members(
    client: redis.Redis, community: str, window_seconds: int, start: int, limit: int = 10
) -> list[Ranked]:
    return _ranked(client, keys.members_board(community, window_seconds, start), limit)


def activity(client: redis.Redis, community: str, window_seconds: int, start: int) -> dict[str, float]:
    """The window's hash as numbers (empty when the community had no events then)."""
    raw = client.hgetall(keys.activity(community, window_seconds, start))
    return {_s(k): float(v) for k, v in raw.items()}


def applied_offsets(client: redis.Redis) -> dict[str, int]:
    """Next offset per input partition (``topic:partition``) as stored with the state."""
    return {_s(k)[2:]: int(v) for k, v in client.hgetall(keys.PROGRESS).items() if _s(k).startswith("o:")}
