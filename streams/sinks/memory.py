"""An in-memory store with the Redis store's merge semantics: run the pipeline with no Kafka
and no Redis (like quixstreams' ``sdf.test``), in unit tests, property tests and notebooks.

>>> from streams.config import Settings
>>> from streams.pipeline import Message, Pipeline
>>> settings = Settings(_env_file=None)
>>> store, pipeline, progress = MemoryStore(settings), Pipeline(settings), {}
>>> ev = b'{"id":"1","community":"c","member":"m","ts":1767225600000,"post":"p","text":"hi"}'
>>> store.commit(pipeline.apply_batch([Message("posts", 0, 0, b"c", ev)], progress))
>>> store.hashes["pulse:activity:c:3600s:1767225600"]
{'interactions': '0', 'posts': '1', 'participants': '1', 'score': 0.5}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from streams import keys
from streams.config import Settings
from streams.operators.activity import activity_score
from streams.pipeline import BatchResult


class MemoryStore:
    """The one in-memory stand-in for Redis in pure unit tests and studies: ``hashes``, ``zsets``,
    ``lists`` and ``strings`` as plain dicts (same shapes as Redis).  :meth:`commit` merges a
    batch's activity the way ``apply_batch.lua`` does; :meth:`apply` runs operator commands
    (the absolute writes the batch script allows; ``EXPIRE`` is accepted and ignored).

    >>> m = MemoryStore(); m.apply([["ZADD", "z", "2.0", "a", "1.0", "b"], ["ZREMRANGEBYRANK", "z", 0, -2]])
    >>> m.top("z", 5)
    ['a']
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.model_validate({})
        self.hashes: defaultdict[str, dict[str, Any]] = defaultdict(dict)
        self.zsets: defaultdict[str, dict[str, float]] = defaultdict(dict)
        self.lists: defaultdict[str, list[Any]] = defaultdict(list)
        self.strings: dict[str, Any] = {}

    def commit(self, result: BatchResult) -> None:
        s = self.settings
        weights = (s.w_interactions, s.w_participants, s.w_posts)
        size = s.window_seconds
        for (community, start), delta in result.activity.items():
            h = self.hashes[keys.activity(community, size, start)]
            interactions = int(h.get("interactions", 0)) + delta.interactions
            posts = int(h.get("posts", 0)) + delta.posts
            members = self.zsets[keys.members_board(community, size, start)]
            for member, contribution in delta.members.items():
                members[member] = members.get(member, 0.0) + contribution
            score = activity_score(interactions, len(members), posts, weights)
            h.update(
                interactions=str(interactions), posts=str(posts), participants=str(len(members)), score=score
            )
            self.zsets[keys.communities_board(size, start)][community] = score
        self.apply(result.commands)

    def apply(self, commands: Iterable[list[Any]]) -> None:
        """Operator commands, in order (an unknown command is an error, not a silent no-op)."""
        for cmd in commands:
            op, key, args = cmd[0], cmd[1], cmd[2:]
            if op == "HSET":
                self.hashes[key].update(zip(args[::2], args[1::2], strict=True))
            elif op == "ZADD":
                self.zsets[key].update((m, float(s)) for s, m in zip(args[::2], args[1::2], strict=True))
            elif op == "ZREM":
                for member in args:
                    self.zsets[key].pop(member, None)
            elif op == "ZREMRANGEBYRANK":
                ranked = self._ranked(key)  # ascending, like Redis ranks
                n = len(ranked)
                start, stop = int(args[0]), int(args[1])
                start, stop = (start + n if start < 0 else start), (stop + n if stop < 0 else stop)
                for member in ranked[max(start, 0) : stop + 1] if stop >= 0 else ():  # as Redis: none
                    del self.zsets[key][member]
            elif op == "ZREMRANGEBYSCORE":
                low, high = (float(str(a).lstrip("(")) for a in args)
                for member, score in list(self.zsets[key].items()):
                    if low <= score <= high:
                        del self.zsets[key][member]
            elif op == "DEL":
                for k in cmd[1:]:
                    for table in (self.hashes, self.zsets, self.lists, self.strings):
                        table.pop(k, None)
            elif op == "SET":
                self.strings[key] = args[0]
            elif op == "LPUSH":
                self.lists[key][:0] = reversed(args)
            elif op == "RPUSH":
                self.lists[key].extend(args)
            elif op == "LTRIM":
                start, stop = int(args[0]), int(args[1])
                self.lists[key] = self.lists[key][start : None if stop == -1 else stop + 1]
            elif op != "EXPIRE":
                raise ValueError(f"MemoryStore does not know {op}")
            for table in (self.hashes, self.zsets, self.lists):
                if key in table and not table[key]:
                    del table[key]  # Redis deletes an emptied collection

    def _ranked(self, key: str) -> list[str]:
        z = self.zsets.get(key, {})
        return sorted(z, key=lambda m: (z[m], m))

    def top(self, key: str, k: int) -> list[str]:
        """ZREVRANGE key 0 k-1."""
        return self._ranked(key)[::-1][:k]
