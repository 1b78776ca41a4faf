"""How the API reads keys on either layout (README, *Redis read contract*).

Single-node Redis: keys exactly as :mod:`streams.keys` builds them, global boards read as they are.
Redis Cluster: a community's keys carry its partition's tag, found in the per-partition directories
``pulse:{pN}:homes`` (the partition where it was active last wins); the global boards (communities
leaderboard, window starts, all-communities alerts) are read from every partition and merged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from streams import keys
from streams.queries import merge_ranked, merge_windows

PARTITIONS_CACHE_SECONDS = 5.0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ReadLayout:
    """The API's view of the key layout, over an asyncio client (replies decoded to ``str``)."""

    def __init__(self, client: Any, cluster: bool) -> None:
        self.client = client
        self.cluster = cluster
        self._partitions = (0, -1e9)  # (count, monotonic time read)

    async def partitions(self) -> int:
        """The input partition count the workers recorded (cached for a few seconds)."""
        count, at = self._partitions
        if time.monotonic() - at > PARTITIONS_CACHE_SECONDS:
            raw = await self.client.get(keys.PARTITIONS)
            count = int(raw) if raw is not None else 0
            self._partitions = (count, time.monotonic())
        return count

    async def home(self, community: str) -> int | None:
        """The partition whose tag ``community``'s keys carry (cluster); None on single-node or when
        no partition lists it (then :meth:`keys_of` names keys that do not exist)."""
        if not self.cluster:
            return None
        count = await self.partitions()
        if count == 0:
            return None
        async with self.client.pipeline() as pipe:
            for p in range(count):
                pipe.zscore(keys.homes(p), community)
            scores = await pipe.execute()
        found = [(score, p) for p, score in enumerate(scores) if score is not None]
        return max(found)[1] if found else None

    async def keys_of(self, community: str) -> Callable[[str], str]:
        """A function naming ``community``'s keys on this layout."""
        if not self.cluster:
            return _same
        home = await self.home(community)
        return lambda key: keys.tagged(key, home if home is not None else 0)

    async def windows(self, size: int, limit: int) -> list[int]:
        """The newest ``limit`` window starts with data, newest first (merged over partitions)."""
        if not self.cluster:
            return [
                int(float(_text(s))) for s in await self.client.zrevrange(keys.windows(size), 0, limit - 1)
            ]
        count = await self.partitions()
        if count == 0:
            return []
        async with self.client.pipeline() as pipe:
            for p in range(count):
                pipe.zrevrange(keys.tagged(keys.windows(size), p), 0, limit - 1)
            replies = await pipe.execute()
        return merge_windows(replies, limit)

    async def board(self, key: str, limit: int) -> tuple[list[tuple[str, float, int | None]], int]:
        """The ``limit`` best of a global sorted set (merged), each with the partition it came from,
        and its total size."""
        if not self.cluster:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zrevrange(key, 0, limit - 1, withscores=True)
                pipe.zcard(key)
                top, total = await pipe.execute()
            return [(m, s, None) for m, s in top], total
        count = await self.partitions()
        if count == 0:
            return [], 0
        async with self.client.pipeline() as pipe:
            for p in range(count):
                pipe.zrevrange(keys.tagged(key, p), 0, limit - 1, withscores=True)
                pipe.zcard(keys.tagged(key, p))
            replies = await pipe.execute()
        tagged = [[(m, s, p) for m, s in replies[2 * p]] for p in range(count)]
        total = sum(replies[2 * p + 1] for p in range(count))
        return merge_ranked(tagged, limit), total

    async def rank(self, key: str, member: str) -> int | None:
        """``ZREVRANK`` of ``member`` in a global sorted set (merged: members ranked above it in
        every partition's part, by score then reverse byte order as Redis orders them)."""
        if not self.cluster:
            rank: int | None = await self.client.zrevrank(key, member)
            return rank
        count = await self.partitions()
        async with self.client.pipeline() as pipe:
            for p in range(count):
                pipe.zscore(keys.tagged(key, p), member)
            scores = await pipe.execute()
        mine = [s for s in scores if s is not None]
        if not mine:
            return None
        score = max(mine)
        async with self.client.pipeline() as pipe:
            for p in range(count):
                pipe.zcount(keys.tagged(key, p), f"({score!r}", "+inf")
                pipe.zrangebyscore(keys.tagged(key, p), score, score)
            replies = await pipe.execute()
        above = sum(replies[2 * p] for p in range(count))
        ties = sum(1 for p in range(count) for m in replies[2 * p + 1] if m.encode() > member.encode())
        return above + ties

    async def alerts(self, limit: int, time_of: Callable[[str], float]) -> list[str]:
        """The newest ``limit`` alerts of every community.  Cluster: the partitions' lists merged by
        ``time_of`` (epoch ms), newest first; equal times keep partition, then list order."""
        if not self.cluster:
            return [_text(r) for r in await self.client.lrange(keys.ALERTS_ALL, 0, limit - 1)]
        count = await self.partitions()
        if count == 0:
            return []
        async with self.client.pipeline() as pipe:
            for p in range(count):
                pipe.lrange(keys.tagged(keys.ALERTS_ALL, p), 0, limit - 1)
            replies = await pipe.execute()
        merged = [_text(r) for rows in replies for r in rows]
        merged.sort(key=time_of, reverse=True)  # stable: ties keep partition and list order
        return merged[:limit]


def _same(key: str) -> str:
    return key
