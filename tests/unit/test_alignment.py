"""Event-time alignment of co-partitioned topics (:mod:`streams.alignment`), alone and in the pipeline.

The property: whatever order the engine delivers a task's partitions in, and whenever it says a
partition is caught up, every message comes out exactly once, each partition's order is kept,
and nothing is released past the frontier of a partition that may still bring older events.
"""

from __future__ import annotations

import copy

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.alignment import EventTimeAligner
from streams.config import Settings
from streams.pipeline import Message, PartitionProgress, Pipeline

TOPICS = ("posts", "reactions", "rsvps")

# A delivery schedule: steps of (topic index, how many next messages it delivers, caught up after?)
steps = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5), st.booleans()), max_size=40)
streams_ = st.lists(st.lists(st.integers(0, 1000), max_size=15).map(sorted), min_size=3, max_size=3)


def _deliver(
    aligner: EventTimeAligner[str], times: list[list[int]], sent: list[int], topic: int, count: int,
    now: float,
) -> list[tuple[int, int, tuple[str, int]]]:
    """The next ``count`` messages of ``topic`` (as far as there are any), added at ``now``."""
    added = []
    for k in range(sent[topic], min(sent[topic] + count, len(times[topic]))):
        tp = (TOPICS[topic], 0)
        aligner.add(tp, k, f"{topic}:{k}", times[topic][k], now=now)
        added.append((times[topic][k], k, tp))
    sent[topic] += len(added)
    return added


@settings(max_examples=300, deadline=None)
@given(times=streams_, schedule=steps)
def test_every_message_once_in_partition_order_never_past_a_live_frontier(
    times: list[list[int]], schedule: list[tuple[int, int, bool]]
) -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(idle_ms=10_000, max_held=10_000)
    tps = [(t, 0) for t in TOPICS]
    aligner.assign(tps, now=0.0)
    sent = [0, 0, 0]
    out: list[tuple[int, int, tuple[str, int], str]] = []
    clock = 0.0
    for topic, count, end in schedule:
        _deliver(aligner, times, sent, topic, count, clock)
        if end and sent[topic] == len(times[topic]):
            aligner.caught_up(tps[topic])
        released = aligner.release(now=clock)
        # Nothing newer than the frontier of a partition that may still bring something.
        live = [
            times[i][sent[i] - 1] if sent[i] else -1
            for i in range(3)
            if not (sent[i] == len(times[i]) and aligner.sources[tps[i]].caught_up)
        ]
        for _, offset, tp, _ in released:
            ts = times[TOPICS.index(tp[0])][offset]
            assert not live or ts <= min(live)
        out.extend(released)
        clock += 0.001
    for i in range(3):  # deliver the rest and end every partition: all must come out
        for k in range(sent[i], len(times[i])):
            aligner.add(tps[i], k, f"{i}:{k}", times[i][k], now=clock)
        aligner.caught_up(tps[i])
    out.extend(aligner.release(now=clock))
    assert aligner.held() == 0
    for i, tp in enumerate(tps):
        assert [offset for _, offset, t, _ in out if t == tp] == list(range(len(times[i])))
    stamps = [times[TOPICS.index(tp[0])][offset] for _, offset, tp, _ in out]
    assert stamps == sorted(stamps) or not schedule  # in-order input comes out merged in time order


@settings(max_examples=300, deadline=None)
@given(times=streams_, schedule=steps, cap=st.integers(1, 6))
def test_over_the_cap_only_the_oldest_go_early_and_nothing_is_lost(
    times: list[list[int]], schedule: list[tuple[int, int, bool]], cap: int
) -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(idle_ms=10_000, max_held=cap)
    tps = [(t, 0) for t in TOPICS]
    aligner.assign(tps, now=0.0)
    sent = [0, 0, 0]
    held: list[tuple[int, int, tuple[str, int]]] = []  # (ts, offset, tp) buffered, recomputed here
    out: list[tuple[int, int, tuple[str, int], str]] = []
    forced = 0
    for topic, count, _ in schedule:
        held += _deliver(aligner, times, sent, topic, count, 0.0)
        # every partition is live (none caught up): the limit is the earliest newest-time, and over
        # the cap the time of the (held - cap)-th oldest message
        aligned = limit = min(times[i][sent[i] - 1] if sent[i] else -1 for i in range(3))
        if held and len(held) > cap:
            limit = max(limit, sorted(ts for ts, *_ in held)[len(held) - cap - 1])
        expected = sorted(entry for entry in held if entry[0] <= limit)
        forced += sum(1 for entry in expected if entry[0] > aligned)  # went before alignment allowed
        held = [entry for entry in held if entry[0] > limit]
        released = aligner.release(now=0.0)
        assert sorted((ts, offset, tp) for ts, offset, tp, _ in released) == expected
        assert [ts for ts, *_ in released] == sorted(ts for ts, *_ in released)  # merged in time order
        assert aligner.held() == len(held) <= cap
        out.extend(released)
    assert aligner.take_forced() == forced
    for tp in tps:
        aligner.caught_up(tp)
    out.extend(aligner.release(now=0.0))
    for i, tp in enumerate(tps):
        assert [offset for _, offset, t, _ in out if t == tp] == list(range(sent[i]))


def test_a_quiet_partition_holds_back_only_until_it_is_idle() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(idle_ms=500, max_held=100)
    aligner.assign([("posts", 0), ("reactions", 0)], now=0.0)
    aligner.add(("posts", 0), 0, "p", 5_000, now=0.1)
    assert aligner.release(now=0.2) == []  # reactions (assigned at 0.0) may still bring older ones
    assert aligner.release(now=0.6) == [(5_000, 0, ("posts", 0), "p")]  # idle for 0.6 s > 0.5 s


def test_max_held_releases_the_oldest_down_to_the_cap_rather_than_grow() -> None:
    aligner: EventTimeAligner[int] = EventTimeAligner(idle_ms=60_000, max_held=3)
    aligner.assign([("posts", 0), ("reactions", 0)], now=0.0)
    aligner.add(("reactions", 0), 0, -1, 0, now=0.0)
    for k in range(3):
        aligner.add(("posts", 0), k, k, 100 + k, now=0.0)
    # reactions (not caught up) hold everything after ts 0; 4 held > 3: the oldest posts go too
    assert [item for *_, item in aligner.release(now=0.0)] == [-1]  # ts 0 is the frontier: in order
    for k in range(3, 6):
        aligner.add(("posts", 0), k, k, 100 + k, now=0.0)
    released = [item for *_, item in aligner.release(now=0.0)]
    assert released == [0, 1, 2] and aligner.held() == 3 and aligner.take_forced() == 3
    aligner.add(("reactions", 0), 1, -2, 50, now=0.0)  # not fetched in time: the one late message
    assert [item for *_, item in aligner.release(now=0.0)] == [-2]


def _msg(topic: str, offset: int, ts: int) -> Message:
    if topic == "posts":
        doc = {
            "id": f"p{offset}",
            "community": "c",
            "member": "m",
            "ts": ts,
            "post": f"p{offset}",
            "text": "hi",
        }
    else:
        doc = {
            "id": f"r{offset}",
            "community": "c",
            "member": "m",
            "ts": ts,
            "post": "p0",
            "reaction": "like",
        }
    return Message(topic, 0, offset, b"c", orjson.dumps(doc))


def test_pipeline_holds_a_topic_that_ran_ahead_and_stores_only_released_offsets() -> None:
    """A catching-up consumer fetched an hour of posts before any reaction: the operators must see
    the reactions in between, and a crash while posts are held must re-read them from Kafka."""
    base = 1_767_225_600_000
    pipeline = Pipeline(Settings(_env_file=None, window_seconds=3600))
    pipeline.aligner.assign([("posts", 0), ("reactions", 0)], now=0.0)
    progress: dict[tuple[str, int], PartitionProgress] = {}
    posts = [_msg("posts", k, base + k * 60_000) for k in range(60)]
    first = pipeline.apply_batch(posts, progress, now=0.1)
    assert first.messages == 0 and progress[("posts", 0)].next_offset == -1  # nothing applied yet
    reactions = [_msg("reactions", k, base + k * 60_000 + 30_000) for k in range(30)]
    second = pipeline.apply_batch(reactions, progress, now=0.2)
    stamps = [ev.ts for ev in second.events]
    assert stamps == sorted(stamps) and len(second.events) == 30 + 30  # posts up to the 30th reaction
    assert progress[("posts", 0)].next_offset == 30 and progress[("reactions", 0)].next_offset == 30
    # A crash now: a new pipeline restored from the stored progress gets the held posts again.
    restored = Pipeline(Settings(_env_file=None, window_seconds=3600))
    again = restored.apply_batch(posts, copy.deepcopy(progress))
    assert [ev.id for ev in again.events] == [f"p{k}" for k in range(30, 60)]
    pipeline.aligner.caught_up(("reactions", 0))
    rest = pipeline.apply_batch([], progress, now=0.3)
    assert [ev.id for ev in rest.events] == [f"p{k}" for k in range(30, 60)]
