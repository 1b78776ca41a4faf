"""Redis as Pulse's state of record: every batch lands in one atomic script with its offsets.

Key layout (the read contract, see README):

- ``pulse:activity:{community}:{size}s:{start}`` hash: interactions, participants, posts, score
- ``pulse:lb:communities:{size}s:{start}`` sorted set: community → score
- ``pulse:lb:members:{community}:{size}s:{start}`` sorted set: member → contribution
- ``pulse:windows:{size}s`` sorted set: window starts that have data
- ``pulse:progress`` hash: per input partition ``o:`` next offset, ``w:`` watermark (ms),
  ``n:`` open windows — written in the same script as the state, so they always agree
- ``pulse:seen:{topic}:{partition}:{start}`` set: event ids applied in an open window
- ``pulse:state:{operator}`` hash: community → snapshot of a stateful operator's state, and
  ``pulse:log:{operator}:{community}`` list: the community's events since that snapshot

Why a Lua script and not MULTI/EXEC: the score needs C after the increments (read after
write), and the fence must abort the whole batch when another worker has moved the offsets.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import cast

import orjson
import redis

from streams.config import Settings
from streams.operators.runner import log_key, state_key
from streams.pipeline import BatchResult, PartitionProgress, TopicPartition

log = logging.getLogger(__name__)

PROGRESS_KEY = "pulse:progress"
UPDATES_CHANNEL = "pulse:updates"


def windows_key(window_seconds: int) -> str:
    """Sorted set of the window starts that have data (score = start): readers find "current" here."""
    return f"pulse:windows:{window_seconds}s"


class Fenced(RuntimeError):
    """The store's offsets moved under us: another worker owns the partition now."""


class RedisStore:
    """Reads progress on assignment and commits batches, for any engine."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        source = resources.files("streams.sinks").joinpath("apply_batch.lua").read_text()
        self._script = client.register_script(source)  # EVALSHA, loaded lazily on first use

    @classmethod
    def connect(cls, settings: Settings) -> RedisStore:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
            **settings.redis_kwargs(),  # type: ignore[arg-type]
        )
        return cls(client, settings)

    def _field(self, kind: str, tp: TopicPartition) -> str:
        return f"{kind}:{self.settings.topic(tp[0])}:{tp[1]}"

    def _seen_key(self, tp: TopicPartition, start: int) -> str:
        return f"pulse:seen:{self.settings.topic(tp[0])}:{tp[1]}:{start}"

    def load_progress(self, partitions: list[TopicPartition]) -> dict[TopicPartition, PartitionProgress]:
        """The stored progress of ``partitions`` (fresh progress where nothing is stored)."""
        fields = [self._field(k, tp) for tp in partitions for k in ("o", "w", "n")]
        # the store's client does not decode responses: fields are bytes (None when absent)
        values = cast("list[bytes | None]", self.client.hmget(PROGRESS_KEY, fields)) if fields else []
        result: dict[TopicPartition, PartitionProgress] = {}
        pipe = self.client.pipeline(transaction=False)
        wanted: list[tuple[TopicPartition, int]] = []
        for i, tp in enumerate(partitions):
            offset, watermark, open_windows = values[3 * i : 3 * i + 3]
            prog = PartitionProgress(
                next_offset=int(offset) if offset is not None else -1,
                watermark=int(watermark) if watermark is not None else 0,
            )
            for start in (int(s) for s in (open_windows or b"").split(b",") if s):
                wanted.append((tp, start))
                pipe.smembers(self._seen_key(tp, start))
            result[tp] = prog
        for (tp, start), ids in zip(wanted, pipe.execute() if wanted else [], strict=True):
            result[tp].seen[start] = {i.decode() for i in ids}
        return result

    def load_states(
        self, wanted: dict[str, list[str]]
    ) -> dict[str, tuple[dict[str, bytes | str | None], dict[str, list[bytes]]]]:
        """Snapshots and logs of the ``wanted`` communities, per operator name (one round trip),
        typed as :meth:`~streams.operators.runner.OperatorRunner.load` takes them."""
        if not wanted:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for name, communities in wanted.items():
            pipe.hmget(state_key(name), communities)
            for community in communities:
                pipe.lrange(log_key(name, community), 0, -1)
        replies = iter(pipe.execute())
        out = {}
        for name, communities in wanted.items():
            blobs = dict(zip(communities, next(replies), strict=True))
            out[name] = (blobs, {community: next(replies) for community in communities})
        return out

    def payload(self, result: BatchResult) -> bytes:
        """The script's argument for ``result``: JSON, decoded by Redis's built-in cjson."""
        s = self.settings
        suffix = f":{s.window_seconds}s:"
        windows = []
        for (community, start), delta in result.activity.items():
            members: list[str | float] = []
            for member, contribution in delta.members.items():
                members.append(member)
                members.append(contribution)
            windows.append([community, f"{suffix}{start}", delta.interactions, delta.posts, members, start])
        fence = []
        progress: list[str | int] = []
        seen = []
        unseen = []
        for tp, change in result.partitions.items():
            fence.append([self._field("o", tp), change.expected_offset])
            progress += [self._field("o", tp), change.next_offset, self._field("w", tp), change.watermark]
            progress += [self._field("n", tp), ",".join(map(str, change.open_windows))]
            seen += [[self._seen_key(tp, start), ids] for start, ids in change.new_ids.items() if ids]
            unseen += [self._seen_key(tp, start) for start in change.closed_windows]
        doc = {
            "fence": fence,
            "activity": {
                "weights": [s.w_interactions, s.w_participants, s.w_posts],
                "windows_key": windows_key(s.window_seconds),
                "windows": windows,
            },
            "ttl": s.retention_seconds,
            "seen": seen,
            "unseen": unseen,
            # Floats as Python's shortest repr: cjson would hand Lua a double that redis.call prints
            # with 17 digits (0.3733 stored as 0.37330000000000002).
            "ops": [[repr(a) if a.__class__ is float else a for a in cmd] for cmd in result.commands],
            "progress": progress,
            "notify": [UPDATES_CHANNEL, orjson.dumps(sorted({c for c, _ in result.activity})).decode()]
            if result.activity
            else None,
        }
        return orjson.dumps(doc)

    def commit(self, result: BatchResult) -> None:
        """Apply ``result`` atomically.  Raises :class:`Fenced`, or redis errors when unreachable."""
        if not result.partitions:
            return
        reply = self._script(keys=[PROGRESS_KEY], args=[self.payload(result)])
        if reply[0] != b"ok":
            field, stored, expected = (x.decode() for x in reply[1:])
            raise Fenced(f"{field}: store has {stored}, this worker expected {expected}")
