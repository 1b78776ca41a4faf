"""The one path data takes: raw messages → decode/validate → lateness and de-duplication → operators.

:meth:`Pipeline.apply_batch` is pure with respect to the outside world: it knows nothing of
Kafka, Faust or Redis.  It takes a batch of :class:`Message` (from any engine, or from a list
in a test) and the per-partition :class:`PartitionProgress`, and returns a :class:`BatchResult`
holding everything a sink must write in one transaction: operator changes, the new progress
of each partition (next offset, watermark, ids applied per window) and the dead letters.

Progress is per topic-partition, as in Kafka Streams: a partition's watermark (highest event
time seen) decides lateness, and de-duplication remembers the ids applied per window only
until the window is closed (window end + grace behind the watermark), which bounds memory.
A retried event has the same key and so lands on the same partition.

>>> from streams.config import Settings
>>> p = Pipeline(Settings(_env_file=None))
>>> post = b'{"id":"e1","community":"c1","member":"ann","ts":1767225600000,"post":"p1","text":"hi"}'
>>> progress = {}
>>> r = p.apply_batch([Message("posts", 0, 0, b"c1", post), Message("posts", 0, 1, b"c1", post),
...                    Message("posts", 0, 2, b"c1", b"oops")], progress)
>>> len(r.events), r.duplicates, [(d.reason, d.message.offset) for d in r.dead_letters]
(1, 1, [('invalid_json', 2)])
>>> progress[("posts", 0)].next_offset, r.activity[("c1", 1767225600)].posts
(3, 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from schemas.events import Event, EventDecoder, Post, Rejection
from streams.alignment import EventTimeAligner
from streams.config import Settings
from streams.operators.activity import ActivityWindow, WindowDelta

TopicPartition = tuple[str, int]
"""(logical topic name, partition)."""


class Message(NamedTuple):
    """One consumed Kafka record, engine-neutral.  ``topic`` is the logical name (no prefix)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class DeadLetter(NamedTuple):
    message: Message
    reason: str
    detail: str


@dataclass(slots=True)
class PartitionProgress:
    """What a partition has applied: restored from the store on assignment, saved with every batch."""

    next_offset: int = -1  # -1: nothing applied yet, start at the beginning
    watermark: int = 0  # highest event time (ms) of any valid event seen on the partition
    seen: dict[int, set[str]] = field(default_factory=dict)  # open window start → ids applied


@dataclass(slots=True)
class PartitionChange:
    """How one partition's progress moved in one batch (what the sink persists)."""

    expected_offset: int  # next offset before the batch: the fence
    next_offset: int
    watermark: int
    new_ids: dict[int, list[str]] = field(default_factory=dict)
    closed_windows: list[int] = field(default_factory=list)
    open_windows: list[int] = field(default_factory=list)


@dataclass(slots=True)
class BatchResult:
    events: list[Event]
    dead_letters: list[DeadLetter]
    duplicates: int
    partitions: dict[TopicPartition, PartitionChange]
    activity: dict[tuple[str, int], WindowDelta]
    messages: int = 0
    commands: list[list[Any]] = field(default_factory=list)  # stateful operators' writes + snapshots
    event_partitions: list[int] = field(default_factory=list)  # input partition of each of ``events``


class Pipeline:
    """Validates and routes a batch through the operators.  Mutates the given progress in place:
    if the sink then fails to commit, the engine either retries the same result or throws all
    in-memory state away and restores it from the store (see :mod:`streams.engines`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.window_seconds = settings.window_seconds
        self.grace_ms = settings.grace_seconds * 1000
        self.decoder = EventDecoder(settings.max_message_bytes, settings.max_future_seconds * 1000)
        self.activity = ActivityWindow(
            settings.window_seconds,
            settings.member_post_weight,
            settings.member_reaction_weight,
            settings.member_rsvp_weight,
        )
        self.aligner: EventTimeAligner[tuple[Message, Event | Rejection]] = EventTimeAligner(
            settings.align_idle_ms, settings.align_max_held
        )
        self.text_max_chars = settings.text_max_chars
        self.held_bytes: dict[TopicPartition, int] = {}  # raw bytes held back by alignment, per partition

    def assign(self, partitions: Iterable[TopicPartition], now: float | None) -> None:
        """Start over with these partitions: nothing held any more (it is re-read from Kafka)."""
        self.aligner.assign(partitions, now)
        self.held_bytes = {}

    def apply_batch(
        self,
        messages: Sequence[Message],
        progress: dict[TopicPartition, PartitionProgress],
        now: float | None = None,
        ends: Iterable[TopicPartition] = (),
    ) -> BatchResult:
        """Decode ``messages``, release what event-time alignment allows (everything when ``now``
        is None, see :mod:`streams.alignment`) and apply it; held messages wait for a later call.
        ``ends``: partitions the consumer has read to their end, these messages included."""
        size = self.window_seconds
        size_ms = size * 1000
        grace_ms = self.grace_ms
        decode = self.decoder.decode
        text_max = self.text_max_chars
        latest_ts = self.decoder.latest_ts()  # the clock, once per batch
        events: list[Event] = []
        event_partitions: list[int] = []
        dead: list[DeadLetter] = []
        changes: dict[TopicPartition, PartitionChange] = {}
        duplicates = 0
        aligner = self.aligner
        buffered_end = aligner.buffered_end
        pending: dict[TopicPartition, list[tuple[int | None, int, tuple[Message, Event | Rejection]]]] = {}
        pending_bytes: dict[TopicPartition, int] = {}
        floors: dict[TopicPartition, int] = {}  # per partition: offsets below it are applied or held
        for msg in messages:
            topic, partition, offset, _, value = msg
            tp = (topic, partition)
            floor = floors.get(tp)
            if floor is None:
                prog = progress.get(tp)
                if prog is None:
                    prog = progress[tp] = PartitionProgress()
                floor = floors[tp] = max(prog.next_offset, buffered_end.get(tp, -1))
            if offset < floor:
                continue  # applied (or held) already, e.g. before a restart or rebalance: never twice
            ev = decode(topic, value, latest_ts)
            cls = ev.__class__
            if cls is Post and len(ev.text) > text_max:  # type: ignore[union-attr]
                ev.text = ev.text[:text_max]  # type: ignore[union-attr]  # operators read only a prefix
            entries = pending.get(tp)
            if entries is None:
                entries = pending[tp] = []
                pending_bytes[tp] = 0
            entries.append((None if cls is Rejection else ev.ts, offset, (msg, ev)))  # type: ignore[union-attr]
            if value is not None:
                pending_bytes[tp] += len(value)
        held_bytes = self.held_bytes
        for tp, entries in pending.items():
            aligner.add_many(tp, entries, now)
            held_bytes[tp] = held_bytes.get(tp, 0) + pending_bytes[tp]
        for tp in ends:
            aligner.caught_up(tp)
        released = aligner.release(now)
        # Per partition while releasing: [progress, change, bytes released, and the window start,
        # ids seen and ids new of its latest event] (consecutive events mostly share a window).
        open_tps: dict[TopicPartition, list[Any]] = {}
        for _, offset, tp, (msg, ev) in released:
            at = open_tps.get(tp)
            if at is None:
                prog = progress[tp]
                change = changes[tp] = PartitionChange(prog.next_offset, prog.next_offset, prog.watermark)
                at = open_tps[tp] = [prog, change, 0, None, None, None]
            else:
                prog = at[0]
            if msg.value is not None:
                at[2] += len(msg.value)
            prog.next_offset = offset + 1
            if ev.__class__ is Rejection:
                dead.append(DeadLetter(msg, ev.reason, ev.detail))  # type: ignore[union-attr]
                continue
            ts = ev.ts  # type: ignore[union-attr]
            if ts > prog.watermark:
                prog.watermark = ts
            start = ts // 1000 // size * size
            if prog.watermark - (start * 1000 + size_ms) > grace_ms:
                dead.append(
                    DeadLetter(
                        msg,
                        "late",
                        f"ts {ts} is in window {start}, closed {grace_ms} ms after its end;"
                        f" partition watermark is {prog.watermark}",
                    )
                )
                continue
            if start != at[3]:
                seen = prog.seen.get(start)
                if seen is None:
                    seen = prog.seen[start] = set()
                at[3], at[4], at[5] = start, seen, None
            else:
                seen = at[4]
            ev_id = ev.id  # type: ignore[union-attr]
            if ev_id in seen:
                duplicates += 1
                continue
            seen.add(ev_id)
            new_ids = at[5]
            if new_ids is None:
                change = at[1]
                new_ids = change.new_ids.get(start)
                if new_ids is None:
                    new_ids = change.new_ids[start] = []
                at[5] = new_ids
            new_ids.append(ev_id)
            events.append(ev)  # type: ignore[arg-type]
            event_partitions.append(tp[1])
        for tp, at in open_tps.items():
            held_bytes[tp] -= at[2]
        for tp, change in changes.items():
            prog = progress[tp]
            change.next_offset = prog.next_offset
            change.watermark = prog.watermark
            horizon = prog.watermark - grace_ms
            for start in list(prog.seen):
                if start * 1000 + size_ms < horizon:
                    del prog.seen[start]
                    change.closed_windows.append(start)
                    change.new_ids.pop(start, None)
            change.open_windows = sorted(prog.seen)
        return BatchResult(
            events=events,
            dead_letters=dead,
            duplicates=duplicates,
            partitions=changes,
            activity=self.activity.apply_batch(events),
            messages=len(released),
            event_partitions=event_partitions,
        )
