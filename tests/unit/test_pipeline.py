"""The pure core without Kafka or Redis: pipeline + MemoryStore against a straightforward recompute."""

from __future__ import annotations

import json
import random
from collections import defaultdict

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import Settings
from streams.pipeline import Message, PartitionProgress, Pipeline
from streams.sinks.memory import MemoryStore

SETTINGS = Settings(_env_file=None, window_seconds=600, grace_seconds=120)
BASE_MS = 1_767_225_600_000  # 2026-01-01, a window boundary for 600 s windows
KIND_TOPIC = {"post": "posts", "reaction": "reactions", "rsvp": "rsvps"}


def encode(kind: str, i: int, community: str, member: str, ts: int) -> bytes:
    doc: dict[str, object] = {"id": f"{kind}{i}", "community": community, "member": member, "ts": ts}
    if kind == "post":
        doc.update(post=f"p{i}", text="hello")
    elif kind == "reaction":
        doc.update(post="p0", reaction="like")
    else:
        doc.update(meetup="m1", status="going")
    return orjson.dumps(doc)


def recompute(unique: list[tuple[str, int, str, str, int]]) -> tuple[dict, dict]:
    """The contract, written the obvious way: count per community and window."""
    size = SETTINGS.window_seconds
    counts: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: {"i": 0, "h": 0})
    members: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for kind, _i, community, member, ts in unique:
        key = (community, ts // 1000 // size * size)
        if kind == "post":
            counts[key]["h"] += 1
            weight = 1.0
        else:
            counts[key]["i"] += 1
            weight = 0.5
        members[key][member] = members[key].get(member, 0.0) + weight
    hashes, zsets = {}, {}
    for (community, start), c in counts.items():
        sfx = f":{size}s:{start}"
        participants = len(members[(community, start)])
        score = 0.5 * c["i"] + 0.3 * participants + 0.2 * c["h"]
        hashes[f"pulse:activity:{community}{sfx}"] = {
            "interactions": str(c["i"]),
            "posts": str(c["h"]),
            "participants": str(participants),
            "score": score,
        }
        zsets[f"pulse:lb:members:{community}{sfx}"] = members[(community, start)]
        zsets.setdefault(f"pulse:lb:communities{sfx}", {})[community] = score
    return hashes, zsets


def hostile_payloads() -> st.SearchStrategy[bytes]:
    """Bytes that look more and more like events: noise, JSON of any shape, near-miss events."""
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=10,
    )
    field = st.one_of(json_values, st.text(max_size=5), st.integers(-(2**70), 2**70), st.just(""))
    near_miss = st.fixed_dictionaries(
        {k: field for k in ("id", "community", "member", "ts")},
        optional={
            k: field for k in ("post", "text", "reaction", "meetup", "status", "tags", "starts_at", "kind")
        },
    )
    encode = lambda doc: json.dumps(doc).encode()  # noqa: E731 - stdlib json: big ints, NaN, Infinity
    return st.one_of(
        st.binary(max_size=200),
        json_values.map(encode),
        near_miss.map(encode),
        st.integers(1, 1100).map(lambda depth: b"[" * depth + b"]" * depth),
    )


events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["post", "reaction", "rsvp"]),
        st.sampled_from(["c1", "c2", "c3"]),
        st.sampled_from(["ann", "bob", "cai", "dan", "eve"]),
        st.integers(0, 3 * 600_000),  # three windows of event time
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(events=events_strategy, seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 40))
def test_any_order_within_grace_and_any_duplication_gives_the_recompute(events, seed, batch):
    rng = random.Random(seed)
    unique = [(kind, i, c, m, BASE_MS + dt) for i, (kind, c, m, dt) in enumerate(events)]
    stream = list(unique) + [e for e in unique if rng.random() < 0.3]  # platform retries: same id, same bytes
    grace = SETTINGS.grace_seconds * 1000
    # Any disorder that stays within the grace period: sort by ts plus a jitter below the grace.
    stream.sort(key=lambda e: e[4] + rng.randrange(grace))
    messages = [
        Message(KIND_TOPIC[k], 0, offset, c.encode(), encode(k, i, c, m, ts))
        for offset, (k, i, c, m, ts) in enumerate(stream)
    ]
    store, pipeline, progress = MemoryStore(SETTINGS), Pipeline(SETTINGS), {}
    for at in range(0, len(messages), batch):
        store.commit(pipeline.apply_batch(messages[at : at + batch], progress))
    hashes, zsets = recompute(unique)
    assert store.hashes == hashes
    assert store.zsets == zsets


def test_late_event_is_dead_lettered_and_exactly_at_grace_counts():
    size, grace = SETTINGS.window_seconds * 1000, SETTINGS.grace_seconds * 1000
    pipeline, progress = Pipeline(SETTINGS), {}
    first = Message("posts", 0, 0, b"c", encode("post", 1, "c", "ann", BASE_MS))
    ahead = Message("posts", 0, 1, b"c", encode("post", 2, "c", "ann", BASE_MS + size + grace))
    on_time = Message("posts", 0, 2, b"c", encode("post", 3, "c", "bob", BASE_MS + 1))
    push = Message("posts", 0, 3, b"c", encode("post", 4, "c", "ann", BASE_MS + size + grace + 1))
    late = Message("posts", 0, 4, b"c", encode("post", 5, "c", "cai", BASE_MS + 2))
    result = pipeline.apply_batch([first, ahead, on_time, push, late], progress)
    assert [e.id for e in result.events] == ["post1", "post2", "post3", "post4"]
    assert [(d.reason, d.message.offset) for d in result.dead_letters] == [("late", 4)]
    # The first window is closed now: its ids are forgotten, so memory stays bounded.
    assert sorted(progress[("posts", 0)].seen) == [BASE_MS // 1000 + 600]
    assert result.partitions[("posts", 0)].closed_windows == [BASE_MS // 1000]


def test_messages_below_the_restored_offset_are_skipped():
    pipeline = Pipeline(SETTINGS)
    progress = {("posts", 0): PartitionProgress(next_offset=2)}
    msgs = [Message("posts", 0, o, b"c", encode("post", o, "c", "ann", BASE_MS)) for o in range(4)]
    result = pipeline.apply_batch(msgs, progress)
    assert [e.id for e in result.events] == ["post2", "post3"]
    assert result.partitions[("posts", 0)].expected_offset == 2
    assert result.partitions[("posts", 0)].next_offset == 4


def test_duplicate_in_a_later_batch_is_skipped_and_bad_input_is_dead_lettered():
    pipeline, progress = Pipeline(SETTINGS), {}
    ev = encode("reaction", 1, "c", "ann", BASE_MS)
    first = pipeline.apply_batch([Message("reactions", 0, 0, b"c", ev)], progress)
    second = pipeline.apply_batch(
        [
            Message("reactions", 0, 1, b"c", ev),
            Message("reactions", 0, 2, b"c", b"\xff\xfe not json"),
            Message("reactions", 0, 3, b"c", b'{"id": 5}'),
            Message("reactions", 0, 4, None, None),
        ],
        progress,
    )
    assert len(first.events) == 1 and not second.events and second.duplicates == 1
    assert [d.reason for d in second.dead_letters] == ["invalid_json", "schema", "invalid_json"]
    assert "must contain" in second.dead_letters[1].detail


@settings(max_examples=400, deadline=None)
@given(topic=st.sampled_from(["posts", "reactions", "rsvps"]), payload=hostile_payloads())
def test_no_input_crashes_the_pipeline(topic, payload):
    """Whatever the bytes, the batch completes: the message is an event or a dead letter with a reason."""
    result = Pipeline(SETTINGS).apply_batch([Message(topic, 0, 0, b"c", payload)], {})
    assert len(result.events) + len(result.dead_letters) == 1
    for dl in result.dead_letters:
        assert dl.reason in {"invalid_json", "schema", "timestamp", "oversized", "late"} and dl.detail
