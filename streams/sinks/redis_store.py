"""Redis as Pulse's state of record: every batch lands in one atomic script with its offsets.

Every key comes from :mod:`streams.keys` (the read contract, see README).  Why a Lua script and
not MULTI/EXEC: the score needs C after the increments (read after write), and the fence must
abort the whole batch when another worker has moved the offsets.  Why the script validates
everything before its first write: Redis does not roll back a script that fails part-way.

Two more promises to the script, kept here: the payload never holds a JSON ``null`` (Lua's cjson
turns it into a truthy userdata), and a number is always finite.  Every key an operator writes
without an expiry of its own gets ``PULSE_IDLE_TTL_SECONDS``, refreshed each batch that writes it,
so a community that goes silent leaves nothing behind.
"""

from __future__ import annotations

import logging
import math
from importlib import resources
from typing import cast

import orjson
import redis

from streams import keys
from streams.config import Settings
from streams.operators.base import RedisCommand
from streams.operators.runner import Stored
from streams.pipeline import BatchResult, PartitionProgress, TopicPartition

log = logging.getLogger(__name__)

PROGRESS_KEY = keys.PROGRESS
UPDATES_CHANNEL = keys.UPDATES
windows_key = keys.windows

_EXPIRING = frozenset({"EXPIRE", "DEL"})
"""Commands after which a key needs no idle TTL from the store (it has its own, or is gone)."""


class Fenced(RuntimeError):
    """The store's offsets moved under us: another worker owns the partition now."""


class StoreRefused(RuntimeError):
    """The batch script refused the batch before writing anything (a key of the wrong type, an
    invalid argument): applying it would fail part-way.  Redis is exactly as before the batch."""


def with_idle_ttl(commands: list[RedisCommand], ttl: int) -> list[RedisCommand]:
    """``commands`` plus an ``EXPIRE key ttl`` for every key they write that none of them expires.

    >>> with_idle_ttl([["HSET", "a", "f", 1], ["ZADD", "b", 1, "m"], ["EXPIRE", "b", 5], ["DEL", "c"]], 9)
    [['HSET', 'a', 'f', 1], ['ZADD', 'b', 1, 'm'], ['EXPIRE', 'b', 5], ['DEL', 'c'], ['EXPIRE', 'a', 9]]
    >>> with_idle_ttl([["SET", "t", "v", "EX", 5]], 9)
    [['SET', 't', 'v', 'EX', 5]]
    """
    written: dict[str, None] = {}
    own: set[str] = set()
    for cmd in commands:
        if cmd[0] in _EXPIRING or (cmd[0] == "SET" and len(cmd) > 3):
            own.add(cmd[1])
        else:
            written[cmd[1]] = None
    return commands + [["EXPIRE", key, ttl] for key in written if key not in own]


_EXACT = 2**53


def _finite_args(commands: list[RedisCommand]) -> list[RedisCommand]:
    """Floats as Python's shortest repr (cjson would hand Lua a double that redis.call prints with
    17 digits: 0.3733 stored as 0.37330000000000002), integers beyond 2**53 as text; no NaN, no
    infinity, no None.

    >>> _finite_args([["HSET", "k", "a", 0.3733, "b", 2**60, "c", 7]])
    [['HSET', 'k', 'a', '0.3733', 'b', '1152921504606846976', 'c', 7]]
    """
    out = []
    for cmd in commands:
        row = []
        for a in cmd:
            if a.__class__ is float:
                if not math.isfinite(a):
                    raise ValueError(f"non-finite number in {cmd[0]} {cmd[1]}: {a}")
                a = repr(a)
            elif a.__class__ is int and not -_EXACT <= a <= _EXACT:
                a = str(a)  # cjson reads JSON numbers as doubles: beyond 2**53 they would change
            elif a is None:
                raise ValueError(f"None in {cmd[0]} {cmd[1]}")
            row.append(a)
        out.append(row)
    return out


class RedisStore:
    """Reads progress on assignment and commits batches, for any engine."""

    overlaps_commits = True
    """A batch's :meth:`commit` may run in another thread while the next batch is computed (and
    its communities' states loaded): it keeps no state between calls."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        source = resources.files("streams.sinks").joinpath("apply_batch.lua").read_text()
        self._script = client.register_script(source)  # EVALSHA, loaded lazily on first use

    def _k(self, key: str) -> str:
        """A key as this store's layout names it (single-node: as :mod:`streams.keys` builds it)."""
        return key

    def _home_key(self, key: str, community: str) -> str:
        """A community's key where the store keeps it (single node: the key itself)."""
        return key

    def observe(self, result: BatchResult) -> None:
        """Called with each batch's pipeline result before its operator states are loaded (the
        cluster store learns which partition each community lives in)."""

    @classmethod
    def connect(cls, settings: Settings) -> RedisStore:
        from streams.sinks.cluster import ClusterStore, cluster_mode

        if cluster_mode(settings):
            return ClusterStore.connect(settings)
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
        return keys.seen(self.settings.topic(tp[0]), tp[1], start)

    def load_progress(self, partitions: list[TopicPartition]) -> dict[TopicPartition, PartitionProgress]:
        """The stored progress of ``partitions`` (fresh progress where nothing is stored)."""
        fields = [self._field(k, tp) for tp in partitions for k in ("o", "w", "n")]
        # the store's client does not decode responses: fields are bytes (None when absent)
        progress = self._k(PROGRESS_KEY)
        values = cast("list[bytes | None]", self.client.hmget(progress, fields)) if fields else []
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
                pipe.smembers(self._k(self._seen_key(tp, start)))
            result[tp] = prog
        for (tp, start), ids in zip(wanted, pipe.execute() if wanted else [], strict=True):
            result[tp].seen[start] = {i.decode() for i in ids}
        return result

    def load_states(self, communities: list[str], operators: list[str]) -> dict[str, Stored]:
        """Snapshots (per operator) and logs of ``communities`` (one round trip), as
        :meth:`~streams.operators.runner.OperatorRunner.load` takes them."""
        if not communities:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for community in communities:
            pipe.hmget(self._home_key(keys.state(community), community), operators)
            pipe.lrange(self._home_key(keys.log(community), community), 0, -1)
        replies = iter(pipe.execute())
        out: dict[str, Stored] = {}
        for community in communities:
            blobs = dict(zip(operators, next(replies), strict=True))
            out[community] = (blobs, next(replies))
        return out

    def payload(self, result: BatchResult) -> bytes:
        """The script's argument for ``result``: JSON, decoded by Redis's built-in cjson.
        Raises ValueError for a command holding a non-finite number or None (an operator bug)."""
        s = self.settings
        size = s.window_seconds
        windows = []
        for (community, start), delta in result.activity.items():
            members: list[str | float] = []
            for member, contribution in delta.members.items():
                members.append(member)
                members.append(contribution)
            windows.append([
                community,
                self._k(keys.activity(community, size, start)),
                self._k(keys.members_board(community, size, start)),
                self._k(keys.communities_board(size, start)),
                delta.interactions,
                delta.posts,
                members,
                start,
            ])
        fence = []
        progress: list[str | int] = []
        seen = []
        unseen = []
        for tp, change in result.partitions.items():
            fence.append([self._field("o", tp), change.expected_offset])
            progress += [self._field("o", tp), change.next_offset, self._field("w", tp), change.watermark]
            progress += [self._field("n", tp), ",".join(map(str, change.open_windows))]
            seen += [
                [self._k(self._seen_key(tp, start)), ids] for start, ids in change.new_ids.items() if ids
            ]
            unseen += [self._k(self._seen_key(tp, start)) for start in change.closed_windows]
        newest = max((start for _, start in result.activity), default=0)
        doc = {
            "fence": fence,
            "weights": [s.w_interactions, s.w_participants, s.w_posts],
            "windows_key": self._k(keys.windows(size)),
            "windows_trim": newest - s.retention_seconds,
            "windows": windows,
            "ttl": s.retention_seconds,
            "seen": seen,
            "unseen": unseen,
            "ops": _finite_args(with_idle_ttl(result.commands, s.idle_ttl_seconds)),
            "progress": progress,
            "notify": [UPDATES_CHANNEL, orjson.dumps(sorted({c for c, _ in result.activity})).decode()]
            if result.activity
            else [],  # never null: cjson would make it a truthy userdata
        }
        return orjson.dumps(doc)

    def commit(self, result: BatchResult) -> None:
        """Apply ``result`` atomically.  Raises :class:`Fenced`, :class:`StoreRefused` (nothing
        written), or redis errors when unreachable."""
        if not result.partitions:
            return
        try:
            payload = self.payload(result)
        except ValueError as exc:
            raise StoreRefused(str(exc)) from exc
        self._check_reply(self._script(keys=[PROGRESS_KEY], args=[payload]))

    @staticmethod
    def _check_reply(reply: list[bytes]) -> None:
        """Raise for a script reply that is not ``ok``."""
        if reply[0] == b"ok":
            return
        if reply[0] == b"invalid":
            raise StoreRefused(reply[1].decode("utf-8", "replace"))
        field, stored, expected = (x.decode() for x in reply[1:])
        raise Fenced(f"{field}: store has {stored}, this worker expected {expected}")
