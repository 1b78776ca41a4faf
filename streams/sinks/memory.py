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

from streams import keys
from streams.config import Settings
from streams.operators.activity import activity_score
from streams.pipeline import BatchResult


class MemoryStore:
    """Holds the documented keys as plain dicts: ``hashes`` and ``zsets`` (same shape as Redis)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hashes: dict[str, dict[str, str | float]] = {}
        self.zsets: dict[str, dict[str, float]] = {}

    def commit(self, result: BatchResult) -> None:
        s = self.settings
        weights = (s.w_interactions, s.w_participants, s.w_posts)
        size = s.window_seconds
        for (community, start), delta in result.activity.items():
            key = keys.activity(community, size, start)
            h = self.hashes.setdefault(key, {"interactions": "0", "posts": "0"})
            interactions = int(h["interactions"]) + delta.interactions
            posts = int(h["posts"]) + delta.posts
            members = self.zsets.setdefault(keys.members_board(community, size, start), {})
            for member, contribution in delta.members.items():
                members[member] = members.get(member, 0.0) + contribution
            score = activity_score(interactions, len(members), posts, weights)
            h.update(
                interactions=str(interactions), posts=str(posts), participants=str(len(members)), score=score
            )
            self.zsets.setdefault(keys.communities_board(size, start), {})[community] = score
