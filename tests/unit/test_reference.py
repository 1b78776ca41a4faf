"""Unit tests of the independent reference in ``tests/reference.py`` (no broker, no Redis).

Every expected number is worked out by hand from the contract, never with the code under test.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.records import BODIES, MS0, MS1, NOW, counts, ev, raw, run, scenario_records
from tests.records import dead_letter as _dl
from tests.reference import (
    Expected,
    Record,
    RefSettings,
    dead_letters_from,
    parse_ts_ms,
    recompute,
)

# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def test_window_assignment_at_boundaries() -> None:
    recs = [
        ev("posts", 0, "a", MS0),  # first ms of S0
        ev("posts", 1, "b", MS1 - 1),  # last ms of S0
        ev("posts", 2, "c", MS1),  # first ms of S1
        ev("posts", 3, "d", "2023-11-14T22:59:59.999Z"),  # S0
        ev("posts", 4, "e", "2023-11-14T22:59:59.999999+00:00"),  # S0: sub-ms digits are floored
        ev("posts", 5, "f", "2023-11-14T23:00:00Z"),  # S1
        ev("posts", 6, "g", "2023-11-15T00:00:00+01:00"),  # 23:00Z: S1
        ev("posts", 7, "h", "2023-11-14T23:59:59.999+01:00"),  # 22:59:59.999Z: S0
    ]
    exp = run(recs)
    assert exp.hashes == {
        "pulse:activity:c1:3600s:1699999200": {
            "interactions": "0",
            "participants": "1",
            "posts": "5",
            "score": 0.5 * 0 + 0.3 * 1 + 0.2 * 5,
        },
        "pulse:activity:c1:3600s:1700002800": {
            "interactions": "0",
            "participants": "1",
            "posts": "3",
            "score": 0.5 * 0 + 0.3 * 1 + 0.2 * 3,
        },
    }
    assert exp.zsets == {
        "pulse:lb:communities:3600s:1699999200": {"c1": 0.5 * 0 + 0.3 * 1 + 0.2 * 5},
        "pulse:lb:communities:3600s:1700002800": {"c1": 0.5 * 0 + 0.3 * 1 + 0.2 * 3},
        "pulse:lb:members:c1:3600s:1699999200": {"m1": 5.0},
        "pulse:lb:members:c1:3600s:1700002800": {"m1": 3.0},
    }
    assert (exp.applied, exp.duplicates, exp.dead_letters) == (8, 0, {})


def test_window_size_not_dividing_an_hour() -> None:
    # 1_700_000_000 s // 7 = 242_857_142 -> start 1_699_999_994;
    # 1_699_999_993 s // 7 = 242_857_141 -> start 1_699_999_987
    exp = run(
        [ev("posts", 0, "a", 1_699_999_993_999), ev("posts", 1, "b", 1_700_000_000_000)], window_seconds=7
    )
    assert set(exp.hashes) == {"pulse:activity:c1:7s:1699999987", "pulse:activity:c1:7s:1699999994"}
    assert set(exp.zsets) == {
        "pulse:lb:communities:7s:1699999987",
        "pulse:lb:communities:7s:1699999994",
        "pulse:lb:members:c1:7s:1699999987",
        "pulse:lb:members:c1:7s:1699999994",
    }


# --------------------------------------------------------------------------------------------
# Lateness and watermarks
# --------------------------------------------------------------------------------------------


def test_lateness_exactly_at_grace_counts_one_ms_beyond_is_late() -> None:
    grace_limit_s0 = MS1 + 300_000  # S0's end + 300 s of grace, in ms
    recs = [
        ev("posts", 0, "a", MS0 + 1000),  # S0
        ev("posts", 1, "b", grace_limit_s0),  # S1; watermark == S0's limit
        ev("posts", 2, "c", MS0 + 2000),  # S0, watermark not *greater* than the limit: counts
        ev("posts", 3, "d", grace_limit_s0 + 1),  # S1; watermark 1 ms beyond S0's limit
        ev("posts", 4, "e", MS0 + 3000),  # S0: late
        ev("posts", 0, "f", MS0, partition=1),  # other partition, own watermark: counts
        ev("reactions", 0, "g", MS0),  # other topic, same partition number: own watermark, counts
    ]
    exp = run(recs)
    assert exp.dead_letters == {("posts", 0, 4): "late"}
    assert counts(exp, "pulse:activity:c1:3600s:1699999200") == ("1", "1", "3")  # a, c, f + g
    assert counts(exp, "pulse:activity:c1:3600s:1700002800") == ("0", "1", "2")  # b, d
    assert (exp.applied, exp.duplicates) == (6, 0)
    assert exp.dead_letter_payloads[("posts", 0, 4)] == (recs[4].key, recs[4].value)


def test_grace_zero_and_custom_grace() -> None:
    recs = [
        ev("posts", 0, "a", MS1),
        ev("posts", 1, "b", MS1 - 1),
        ev("posts", 2, "c", MS1 + 1),
        ev("posts", 3, "d", MS0),
    ]
    exp = run(recs, grace_seconds=0)
    # b: watermark MS1 == S0's end -> counts; d: watermark MS1 + 1 > S0's end -> late
    assert exp.dead_letters == {("posts", 0, 3): "late"}
    assert counts(exp, "pulse:activity:c1:3600s:1699999200") == ("0", "1", "1")
    exp = run(recs, grace_seconds=1)
    assert exp.dead_letters == {}
    assert counts(exp, "pulse:activity:c1:3600s:1699999200") == ("0", "1", "2")


def test_out_of_order_within_grace() -> None:
    recs = [
        ev("posts", 0, "a", MS1 + 180_000),  # S1, 3 min into it
        ev("posts", 1, "b", MS0 + 3_000_000),  # S0, older but within grace (limit MS1 + 300 000)
        ev("posts", 2, "c", MS1 + 360_000),  # S1, watermark now beyond S0's grace
        ev("posts", 3, "d", MS0 + 3_590_000),  # S0: late
        ev("posts", 4, "e", MS1 + 1000),  # S1, older than the watermark but its window is open: counts
    ]
    exp = run(recs)
    assert exp.dead_letters == {("posts", 0, 3): "late"}
    assert counts(exp, "pulse:activity:c1:3600s:1699999200") == ("0", "1", "1")
    assert counts(exp, "pulse:activity:c1:3600s:1700002800") == ("0", "1", "3")


def test_offset_order_not_list_order() -> None:
    recs = [ev("posts", 1, "b", MS0), ev("posts", 0, "a", MS1 + 400_000)]  # offset 0 comes first
    assert run(recs).dead_letters == {("posts", 0, 1): "late"}


def test_invalid_records_do_not_advance_the_watermark() -> None:
    recs = [
        ev("posts", 0, "a", NOW + 10**9),  # too far in the future: timestamp
        # no "post" nor "text": schema, whatever its ts
        raw("posts", 1, orjson.dumps({"id": "b", "community": "c1", "member": "m1", "ts": MS1 + 10**7})),
        ev("posts", 2, "c", MS0),  # counts: the watermark is still unset
        ev("posts", 3, "d", MS1 + 300_000),  # valid: moves it to S0's limit exactly
        ev("posts", 4, "e", MS0 + 1),  # counts
    ]
    exp = run(recs)
    assert exp.dead_letters == {("posts", 0, 0): "timestamp", ("posts", 0, 1): "schema"}
    assert counts(exp, "pulse:activity:c1:3600s:1699999200") == ("0", "1", "2")


def test_late_copy_of_an_applied_id_is_late_not_a_duplicate() -> None:
    recs = [ev("posts", 0, "x", MS0), ev("posts", 1, "y", MS1 + 301_000), ev("posts", 2, "x", MS0)]
    exp = run(recs)
    assert exp.dead_letters == {("posts", 0, 2): "late"}
    assert (exp.applied, exp.duplicates) == (2, 0)


# --------------------------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------------------------


def test_duplicates() -> None:
    recs = [
        ev("posts", 0, "e1", MS0, member="m1"),
        ev("posts", 1, "e1", MS0 + 5000, member="m2"),  # same topic, window, id: skipped (m2 not counted)
        ev("posts", 2, "e1", MS1),  # same id, next window: counts
        ev("posts", 0, "e1", MS0 + 1, partition=1),  # same topic, other partition, same window: skipped
        ev("reactions", 0, "e1", MS0),  # same id on another topic: counts
        ev("rsvps", 0, "e1", MS0),  # and on the third topic too
        ev("rsvps", 1, "e1", MS0 + 7),  # but only once there
    ]
    exp = run(recs)
    assert exp.dead_letters == {}
    assert (exp.applied, exp.duplicates) == (4, 3)
    assert exp.hashes["pulse:activity:c1:3600s:1699999200"] == {
        "interactions": "2",
        "participants": "1",
        "posts": "1",
        "score": 0.5 * 2 + 0.3 * 1 + 0.2 * 1,
    }
    assert exp.zsets["pulse:lb:members:c1:3600s:1699999200"] == {"m1": 1.0 + 0.5 + 0.5}
    assert counts(exp, "pulse:activity:c1:3600s:1700002800") == ("0", "1", "1")


def test_duplicate_id_across_communities_in_one_topic_counts_once() -> None:
    recs = [ev("posts", 0, "z", MS0, community="c1"), ev("posts", 1, "z", MS0, community="c2")]
    exp = run(recs)
    assert list(exp.hashes) == ["pulse:activity:c1:3600s:1699999200"]
    assert exp.duplicates == 1


# --------------------------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------------------------


def _post_of_size(size: int, offset: int, partition: int) -> Record:
    base = {"id": f"big{offset}", "community": "c1", "member": "m1", "ts": MS0, "post": "p", "text": ""}
    base["text"] = "x" * (size - len(orjson.dumps(base)))
    value = orjson.dumps(base)
    assert len(value) == size
    return Record("posts", partition, offset, b"c1", value, {})


def test_oversized() -> None:
    recs = [
        _post_of_size(1024, 0, 0),  # exactly the limit: fine
        _post_of_size(1025, 1, 0),
        raw("posts", 2, b"x" * 1025),  # not JSON either: oversized is checked first
        raw("posts", 3, b"x" * 1024),  # at the limit: invalid_json
    ]
    exp = run(recs, max_message_bytes=1024)
    assert exp.dead_letters == {
        ("posts", 0, 1): "oversized",
        ("posts", 0, 2): "oversized",
        ("posts", 0, 3): "invalid_json",
    }
    assert exp.applied == 1


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"{",
        b"not json",
        b'{"id": "a",}',
        b"\xff\xfe{}",
        b'{"id": "\xff"}',  # not UTF-8
        b'"\\ud800"',  # lone surrogate
        b"1e400",  # overflows a double
        b"[" * 1025 + b"]" * 1025,  # nesting deeper than 1024
    ],
)
def test_invalid_json(value: bytes | None) -> None:
    assert run([raw("posts", 0, value)]).dead_letters == {("posts", 0, 0): "invalid_json"}


def _doc(topic: str = "posts", **fields: Any) -> dict[str, Any]:
    body = {"id": "a", "community": "c1", "member": "m1", "ts": MS0, **BODIES[topic], **fields}
    return {k: v for k, v in body.items() if v is not ...}


@pytest.mark.parametrize(
    ("topic", "doc"),
    [
        ("posts", []),
        ("posts", "just a string"),
        ("posts", 17),
        ("posts", None),
        ("posts", _doc(text=...)),  # text missing
        ("posts", _doc(id="")),
        ("posts", _doc(id="x" * 257)),
        ("posts", _doc(id=5)),
        ("posts", _doc(member=...)),
        ("posts", _doc(community="")),
        ("posts", _doc(ts=True)),  # booleans are not integers
        ("posts", _doc(ts=None)),
        ("posts", _doc(ts=1.5e12 + 0.5)),  # not integral
        ("posts", _doc(ts="2023-11-14T22:00:00Z" + " " * 45)),  # 65 chars > maxLength 64
        ("posts", _doc(ts="yesterday" * 8)),  # schema beats timestamp (72 chars)
        ("posts", _doc(kind="rant")),
        ("posts", _doc(tags=[""])),
        ("posts", _doc(text="x" * 10_001)),
        ("reactions", _doc("reactions", reaction="meh")),
        ("reactions", _doc("reactions", post=...)),
        ("rsvps", _doc("rsvps", status="nope")),
        ("rsvps", _doc("rsvps", capacity=-1)),
        ("rsvps", _doc("rsvps", starts_at=False)),
    ],
)
def test_schema(topic: str, doc: Any) -> None:
    assert run([raw(topic, 0, orjson.dumps(doc))]).dead_letters == {(topic, 0, 0): "schema"}


@pytest.mark.parametrize(
    ("topic", "doc"),
    [
        ("posts", _doc(id="x" * 256, extra_field={"any": "thing"}, kind="need", reply_to="p0", tags=["a"])),
        ("posts", _doc(ts=946_684_800_000)),  # 2000-01-01 exactly
        ("posts", _doc(ts="2000-01-01T01:00:00+01:00")),  # the same instant
        ("posts", _doc(ts=NOW + 300_000)),  # exactly max_future_seconds ahead
        ("posts", _doc(ts="2023-11-14T22:00:00.123456-05:30")),
        ("rsvps", _doc("rsvps", starts_at=0)),  # starts_at only has to parse
        ("rsvps", _doc("rsvps", starts_at="1970-01-01T00:00:00Z")),
        ("rsvps", _doc("rsvps", starts_at="2999-01-01T00:00:00+02:00")),
        ("posts", _doc(starts_at="not checked on posts")),
        ("posts", _doc(ts=1.7e12)),  # integral float: an integer under JSON Schema draft 7 (issue 15)
        ("rsvps", _doc("rsvps", starts_at=1.7e12)),
        ("posts", _doc(ts="2023-11-14t22:00:00.5z")),  # RFC 3339 allows lower case t and z (issue 15)
    ],
)
def test_valid_edge_cases(topic: str, doc: Any) -> None:
    exp = run([raw(topic, 0, orjson.dumps(doc))])
    assert (exp.dead_letters, exp.applied) == ({}, 1)


@pytest.mark.parametrize(
    ("topic", "doc"),
    [
        ("posts", _doc(ts="2023-11-14T22:00:00")),  # no UTC offset
        ("posts", _doc(ts="2023-11-14")),
        ("posts", _doc(ts="yesterday")),
        ("posts", _doc(ts="")),
        ("posts", _doc(ts="2023-11-14T25:00:00Z")),
        ("posts", _doc(ts=946_684_799_999)),  # 1 ms before 2000
        ("posts", _doc(ts="1999-12-31T23:59:59.999Z")),
        ("posts", _doc(ts=-1)),
        ("posts", _doc(ts=NOW + 300_001)),  # 1 ms too far ahead
        ("posts", _doc(ts=2**63 - 1)),
        ("rsvps", _doc("rsvps", starts_at="soon")),
        ("rsvps", _doc("rsvps", starts_at="2023-11-15T18:00:00")),  # no offset
    ],
)
def test_timestamp(topic: str, doc: Any) -> None:
    assert run([raw(topic, 0, orjson.dumps(doc))]).dead_letters == {(topic, 0, 0): "timestamp"}


def test_huge_json_numbers() -> None:
    # orjson reads integers beyond 64 bits as floats; JSON Schema calls 1e29 an integer, far in the future
    value = b'{"id": "a", "community": "c1", "member": "m1", "post": "p", "text": "", "ts": %s}'
    recs = [raw("posts", 0, value % b"100000000000000000000000000000"), raw("posts", 1, value % b"1e400")]
    assert run(recs).dead_letters == {("posts", 0, 0): "timestamp", ("posts", 0, 1): "invalid_json"}


def test_max_future_seconds_setting() -> None:
    recs = [ev("posts", 0, "a", NOW + 5000), ev("posts", 1, "b", NOW + 5001)]
    assert run(recs, max_future_seconds=5).dead_letters == {("posts", 0, 1): "timestamp"}
    assert run(recs, max_future_seconds=0).dead_letters == {
        ("posts", 0, 0): "timestamp",
        ("posts", 0, 1): "timestamp",
    }


def test_parse_ts_ms() -> None:
    assert parse_ts_ms(1_700_000_000_123) == 1_700_000_000_123
    assert parse_ts_ms("2023-11-14T22:13:20.123Z") == 1_700_000_000_123
    assert parse_ts_ms("2023-11-14T22:13:20.1239+00:00") == 1_700_000_000_123  # floored
    assert parse_ts_ms("2023-11-15T00:13:20+02:00") == 1_700_000_000_000
    assert parse_ts_ms("2023-11-14T22:13:20") is None
    assert parse_ts_ms(False) is None


# --------------------------------------------------------------------------------------------
# Aggregates, members, weights
# --------------------------------------------------------------------------------------------


def test_distinct_members_across_topics_and_communities() -> None:
    recs = [
        ev("posts", 0, "p-1", MS0, member="m1"),
        ev("reactions", 0, "r-1", MS0 + 1, member="m1"),
        ev("reactions", 1, "r-2", MS0 + 2, member="m2"),
        ev("rsvps", 0, "v-1", MS0 + 3, member="m3"),
        ev("rsvps", 1, "v-2", MS0 + 4, member="m1"),
        ev("posts", 0, "p-2", MS0 + 5, member="m1", community="c2", partition=1),
    ]
    exp = run(recs)
    c1 = 0.5 * 4 + 0.3 * 3 + 0.2 * 1
    c2 = 0.5 * 0 + 0.3 * 1 + 0.2 * 1
    assert exp.hashes == {
        "pulse:activity:c1:3600s:1699999200": {
            "interactions": "4",
            "participants": "3",
            "posts": "1",
            "score": c1,
        },
        "pulse:activity:c2:3600s:1699999200": {
            "interactions": "0",
            "participants": "1",
            "posts": "1",
            "score": c2,
        },
    }
    assert exp.zsets == {
        "pulse:lb:communities:3600s:1699999200": {"c1": c1, "c2": c2},
        "pulse:lb:members:c1:3600s:1699999200": {"m1": 1.0 + 0.5 + 0.5, "m2": 0.5, "m3": 0.5},
        "pulse:lb:members:c2:3600s:1699999200": {"m1": 1.0},
    }


def test_member_contributions() -> None:
    recs = [
        ev("posts", 0, "p1", MS0, member="m1"),
        ev("posts", 1, "p2", MS0, member="m1", kind="need"),
        ev("posts", 2, "p3", MS0, member="m1", kind="resolved", reply_to="p2"),
        ev("reactions", 0, "r1", MS0, member="m1"),
        ev("reactions", 1, "r2", MS0, member="m1", reaction="report"),
        ev("reactions", 2, "r3", MS0, member="m2"),
        ev("rsvps", 0, "v1", MS0, member="m1", status="declined"),
    ]
    exp = run(recs)
    assert exp.zsets["pulse:lb:members:c1:3600s:1699999200"] == {"m1": 3 * 1.0 + 2 * 0.5 + 0.5, "m2": 0.5}
    assert counts(exp, "pulse:activity:c1:3600s:1699999200") == ("4", "2", "3")  # every kind, status counts


def test_score_is_computed_in_contract_order() -> None:
    # I=1, C=1, H=2: 0.5*1 + 0.3*1 + 0.2*2 = 0.8 + 0.4 = 1.2000000000000002 in binary floating point,
    # whereas 0.5 + (0.3 + 0.4) would be 1.2.
    recs = [ev("reactions", 0, "r", MS0), ev("posts", 0, "a", MS0), ev("posts", 1, "b", MS0)]
    exp = run(recs)
    assert exp.hashes["pulse:activity:c1:3600s:1699999200"]["score"] == 1.2000000000000002
    assert exp.zsets["pulse:lb:communities:3600s:1699999200"] == {"c1": 1.2000000000000002}


def test_custom_weights() -> None:
    recs = [
        ev("posts", 0, "a", MS0, member="m1"),
        ev("reactions", 0, "b", MS0, member="m2"),
        ev("rsvps", 0, "c", MS0, member="m2"),
        ev("rsvps", 1, "d", MS0, member="m3"),
    ]
    exp = run(
        recs,
        w_interactions=2.0,
        w_participants=10.0,
        w_posts=100.0,
        member_post_weight=0.0,
        member_reaction_weight=3.0,
        member_rsvp_weight=0.25,
    )
    assert exp.hashes["pulse:activity:c1:3600s:1699999200"] == {
        "interactions": "3",
        "participants": "3",
        "posts": "1",
        "score": 136.0,  # 2*3 + 10*3 + 100*1
    }
    # m1's contribution is 0 but m1 is still a participant and still in the leaderboard
    assert exp.zsets["pulse:lb:members:c1:3600s:1699999200"] == {"m1": 0.0, "m2": 3.25, "m3": 0.25}


def test_topic_prefix() -> None:
    recs = [
        ev("posts", 0, "a", MS0, prefix="acme."),
        ev("reactions", 0, "b", "nonsense", prefix="acme."),
        Record("acme.dead-letters", 0, 0, b"c1", b"ignored", {}),
    ]
    exp = recompute(recs, RefSettings(topic_prefix="acme."), now_ms=NOW)
    assert list(exp.hashes) == ["pulse:activity:c1:3600s:1699999200"]  # no prefix in Redis keys
    assert exp.dead_letters == {("acme.reactions", 0, 0): "timestamp"}
    with pytest.raises(ValueError, match="not an input topic"):
        recompute([ev("posts", 0, "a", MS0)], RefSettings(topic_prefix="acme."), now_ms=NOW)


def test_empty() -> None:
    assert run([]) == Expected(hashes={}, zsets={}, dead_letters={}, applied=0, duplicates=0)


# --------------------------------------------------------------------------------------------
# Invariants on random streams
# --------------------------------------------------------------------------------------------

_random_event = st.tuples(
    st.sampled_from(["posts", "reactions", "rsvps"]),
    st.integers(0, 2),  # partition
    st.sampled_from(["e1", "e2", "e3", "e4"]),  # few ids: many duplicates
    st.integers(MS0 - 4_000_000, MS1 + 4_000_000),
    st.sampled_from(["c1", "c2"]),
    st.sampled_from(["m1", "m2", "m3"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_random_event, max_size=40), st.sampled_from([0, 300, 10**6]))
def test_invariants(events: list[tuple[str, int, str, int, str, str]], grace: int) -> None:
    recs = [
        ev(topic, offset, id, ts, community=c, member=m, partition=p)
        for offset, (topic, p, id, ts, c, m) in enumerate(events)
    ]
    exp = run(recs, grace_seconds=grace)
    assert exp.applied + exp.duplicates + len(exp.dead_letters) == len(recs)
    assert set(exp.dead_letters.values()) <= {"late"}
    if grace == 10**6:
        assert not exp.dead_letters
    total = 0
    for key, h in exp.hashes.items():
        _, _, community, w, start = key.split(":")
        members = exp.zsets[f"pulse:lb:members:{community}:{w}:{start}"]
        assert int(h["participants"]) == len(members)
        assert exp.zsets[f"pulse:lb:communities:{w}:{start}"][community] == h["score"]
        # with the default weights every contribution is a multiple of 0.5: exact sums
        assert sum(members.values()) == int(h["posts"]) * 1.0 + int(h["interactions"]) * 0.5
        total += int(h["interactions"]) + int(h["posts"])
    assert total == exp.applied


# --------------------------------------------------------------------------------------------
# Dead letters and the comparison, against the real Redis of the test session
# --------------------------------------------------------------------------------------------


@pytest.fixture
def scenario() -> tuple[list[Record], Expected]:
    return scenario_records()


def test_dead_letters_from(scenario: tuple[list[Record], Expected]) -> None:
    recs, exp = scenario
    dls = [_dl(recs[3], "invalid_json", 0), _dl(recs[5], "late", 1), _dl(recs[3], "invalid_json", 2)]
    assert (
        dead_letters_from(dls)
        == {("posts", 0, 1): "invalid_json", ("posts", 0, 3): "late"}
        == exp.dead_letters
    )
    with pytest.raises(AssertionError, match="reasons"):
        dead_letters_from([*dls, _dl(recs[3], "schema", 3)])
    bad = _dl(recs[3], "schema", 3)
    del bad.headers["pulse.offset"]
    with pytest.raises(AssertionError, match=r"pulse\.\* header"):
        dead_letters_from([bad])


