"""Event-time alignment of co-partitioned topics: operators see a community's events in time order.

A community's posts, reactions and RSVPs live in three topics, on the same partition number (the
key is the community).  A consumer catching up on a backlog (a new deployment starting at the
beginning of its topics, a worker back after an outage) fetches those partitions independently:
one batch may hold hours of posts and none of the reactions that happened meanwhile.  The
activity windows do not care (they add counts), but event-time operators do: an atmosphere index
or a 10-minute activity slot fed all of a day's posts before its reactions sees a day without
reactions.  Kafka Streams solves this with stream-time synchronisation (``max.task.idle.ms``),
and so does Pulse: the decoded messages of one *task* (one partition number across the input
topics) are buffered per topic-partition and released in timestamp order, only up to the
earliest *frontier* (newest buffered time) of the task's topic-partitions that may still bring
older events.

A topic-partition stops holding the others back when it is *caught up* (the engine saw its end:
the batch engine compares its position with the fetch's high watermark, because the embedded
broker never lets librdkafka's ``PARTITION_EOF`` fire). An engine that cannot see partition ends
(Faust) relies instead on ``idle_ms``: a partition that brought nothing for that long holds
nobody back. One that can (:meth:`EventTimeAligner.expect_ends`) waits for the end however long
the consumer takes to get there — in a backlog, librdkafka may hand out minutes of one partition
before the next, and a wall-clock timeout would then release the leading topic early — and keeps
the leading partition from being fetched meanwhile (``pause``, see :meth:`held_of`). A task
never holds more than ``max_held`` messages: beyond that it releases its oldest ones (still in
time order) down to the cap, so memory stays bounded whatever happens and only messages not yet
fetched can arrive out of order (:meth:`EventTimeAligner.take_forced` counts such releases).
Without a clock (``now=None``) nothing is held: tests and replays that call the pipeline with a
whole stream get it back merged in time order.

Held messages are not applied and their offsets are not stored, so a crash loses nothing: the
worker re-reads them from Kafka.

>>> a = EventTimeAligner(idle_ms=500, max_held=1000)
>>> a.assign([("posts", 0), ("reactions", 0)], now=0.0)
>>> a.add(("posts", 0), 0, "p@10", 10, now=0.0)
>>> a.add(("posts", 0), 1, "p@30", 30, now=0.0)
>>> a.add(("reactions", 0), 0, "r@20", 20, now=0.0)
>>> [item for *_, item in a.release(now=0.1)]  # reactions may still bring something before 30
['p@10', 'r@20']
>>> a.caught_up(("reactions", 0))
>>> [item for *_, item in a.release(now=0.2)]
['p@30']
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from itertools import islice
from operator import itemgetter
from typing import Generic, TypeVar

T = TypeVar("T")
TopicPartition = tuple[str, int]


class _Source(Generic[T]):
    """One topic-partition: its buffered (ts, offset, tp, item) and what is known of its end."""

    __slots__ = ("buffer", "caught_up", "frontier", "last_seen")

    def __init__(self, now: float | None) -> None:
        self.buffer: deque[tuple[int, int, TopicPartition, T]] = deque()
        self.caught_up = False
        self.frontier = -1  # newest event time buffered or released (ms)
        self.last_seen = now  # wall time of the last message or of the assignment (s)


class EventTimeAligner(Generic[T]):
    """Buffers decoded messages per topic-partition; releases each task in event-time order."""

    def __init__(self, idle_ms: int, max_held: int) -> None:
        self.idle = idle_ms / 1000
        self.max_held = max_held
        self.sources: dict[TopicPartition, _Source[T]] = {}
        self.buffered_end: dict[TopicPartition, int] = {}  # offset after the last buffered message
        self.forced = 0  # messages released early because a task held more than max_held

    # --- what the engine knows -------------------------------------------------------------------
    def assign(self, partitions: Iterable[TopicPartition], now: float | None) -> None:
        """Start over with these partitions (after an assignment or a restore): drop every buffer."""
        self.sources = {tp: _Source(now) for tp in partitions}
        self.buffered_end = {}

    def caught_up(self, tp: TopicPartition) -> None:
        """The engine reached ``tp``'s end: it holds nobody back until it brings a message."""
        source = self.sources.get(tp)
        if source is not None:
            source.caught_up = True

    def expect_ends(self) -> None:
        """The engine reports every partition's end: wait for it instead of timing out."""
        self.idle = float("inf")

    def held(self) -> int:
        return sum(len(s.buffer) for s in self.sources.values())

    def take_forced(self) -> int:
        """Messages released early because of the cap since the last call."""
        forced, self.forced = self.forced, 0
        return forced

    def held_of(self, tp: TopicPartition) -> int:
        """Messages of ``tp`` waiting for the rest of its task (the engine pauses a runaway one)."""
        source = self.sources.get(tp)
        return len(source.buffer) if source is not None else 0

    # --- messages --------------------------------------------------------------------------------
    def add(self, tp: TopicPartition, offset: int, item: T, ts: int | None, now: float | None = None) -> None:
        """Buffer one message; ``ts`` None (an undecodable message) travels with its predecessor."""
        self.add_many(tp, [(ts, offset, item)], now)

    def add_many(
        self, tp: TopicPartition, entries: list[tuple[int | None, int, T]], now: float | None = None
    ) -> None:
        """Buffer a partition's messages (in offset order) at once: the per-batch path."""
        source = self.sources.get(tp)
        if source is None:
            source = self.sources[tp] = _Source(now)
        frontier = source.frontier
        append = source.buffer.append
        for ts, offset, item in entries:
            if ts is None or ts < frontier:
                ts = frontier  # keep the partition's order: never release a message before its predecessor
            else:
                frontier = ts
            append((ts, offset, tp, item))
        source.frontier = frontier
        source.caught_up = False
        source.last_seen = now
        self.buffered_end[tp] = entries[-1][1] + 1

    def release(self, now: float | None) -> list[tuple[int, int, TopicPartition, T]]:
        """What may be applied now, as (ts, offset, tp, item) merged in event-time order (each
        partition's order kept: the sort is stable and a partition's times never decrease)."""
        tasks: dict[int, list[_Source[T]]] = {}
        for tp, source in self.sources.items():
            if source.buffer or not source.caught_up:
                tasks.setdefault(tp[1], []).append(source)
        out: list[tuple[int, int, TopicPartition, T]] = []
        for members in tasks.values():
            held = sum(len(s.buffer) for s in members)
            if not held:
                continue
            limit, early = self._limit(members, now, held)
            runs = 0
            first = len(out)
            for source in members:
                buf = source.buffer
                if not buf or buf[0][0] > limit:
                    continue
                runs += 1
                if buf[-1][0] <= limit:
                    out.extend(buf)
                    buf.clear()
                else:
                    while buf and buf[0][0] <= limit:
                        out.append(buf.popleft())
            if runs > 1:
                out[first:] = sorted(out[first:], key=itemgetter(0))
            if early < limit:  # over the cap: count what went before its partners caught up
                self.forced += sum(1 for entry in islice(out, first, None) if entry[0] > early)
        return out

    def _limit(self, members: list[_Source[T]], now: float | None, held: int) -> tuple[float, float]:
        """The newest event time the task may release, and the one alignment alone allows: the
        earliest frontier of a source that may still bring older events (neither caught up nor
        idle); over the cap the first is the time of the oldest message that must go to bring the
        task back to ``max_held``."""
        if now is None:
            return float("inf"), float("inf")
        limit = float("inf")
        for source in members:
            if source.caught_up or source.last_seen is None or now - source.last_seen >= self.idle:
                continue
            limit = min(limit, source.frontier)
        excess = held - self.max_held
        if excess > 0:  # each buffer is in time order: merge them lazily up to the excess-th oldest
            merged = heapq.merge(*(s.buffer for s in members), key=itemgetter(0))
            cut = next(islice(merged, excess - 1, None))[0]
            if cut > limit:
                return cut, limit
        return limit, limit
