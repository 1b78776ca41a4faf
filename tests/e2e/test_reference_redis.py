"""The reference's comparison with a real Redis (``assert_matches``): it must pass on equal
state and report every kind of difference."""

from __future__ import annotations

from typing import Any

import pytest

from tests.records import MS0, ev, run, scenario_records
from tests.records import dead_letter as _dl
from tests.reference import Expected, Record, assert_matches, read_redis


@pytest.fixture
def scenario() -> tuple[list[Record], Expected]:
    return scenario_records()


def _fill(client: Any, exp: Expected) -> None:
    for key, h in exp.hashes.items():
        client.hset(key, mapping=h)
    for key, z in exp.zsets.items():
        client.zadd(key, z)


def test_assert_matches_passes_on_equal_state(
    scenario: tuple[list[Record], Expected], redis_client: Any
) -> None:
    recs, exp = scenario
    client = redis_client
    _fill(client, exp)
    client.set("pulse:other:thing", b"not compared")
    assert read_redis(client) == (exp.hashes, exp.zsets)
    dls = [_dl(recs[3], "invalid_json", 0), _dl(recs[5], "late", 1), _dl(recs[5], "late", 2)]  # a redelivery
    assert_matches(client, exp)
    assert_matches(client, exp, dead_letter_records=dls)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.delete("pulse:activity:c1:3600s:1699999200"), "missing hash pulse:activity:c1:"),
        (
            lambda r: r.hset("pulse:activity:c1:3600s:1699999200", mapping={"score": 1.1}),
            "field 'score' is 1.1, expected",
        ),
        (
            lambda r: r.hset("pulse:activity:c1:3600s:1699999200", mapping={"posts": "1.0"}),
            "field 'posts' is '1.0'",
        ),
        (
            lambda r: r.hset("pulse:activity:c1:3600s:1699999200", mapping={"extra": 1}),
            "unexpected field 'extra'",
        ),
        (lambda r: r.zadd("pulse:lb:members:c1:3600s:1699999200", {"m9": 1}), "unexpected member 'm9'"),
        (lambda r: r.zadd("pulse:lb:communities:3600s:1699999200", {"c1": 1.1}), "member 'c1' is 1.1"),
        (lambda r: r.zrem("pulse:lb:members:c2:3600s:1700002800", "m1"), "missing zset pulse:lb:members:c2"),
        (
            lambda r: r.zadd("pulse:lb:communities:60s:0", {"c1": 1}),
            "unexpected zset pulse:lb:communities:60s:0",
        ),
        (lambda r: r.set("pulse:lb:junk", b"x"), "unexpected string key pulse:lb:junk"),
    ],
)
def test_assert_matches_reports_redis_differences(
    scenario: tuple[list[Record], Expected], mutate: Any, message: str, redis_client: Any
) -> None:
    _, exp = scenario
    client = redis_client
    _fill(client, exp)
    mutate(client)
    with pytest.raises(AssertionError, match="differ from the reference") as info:
        assert_matches(client, exp)
    assert message in str(info.value)


def test_assert_matches_reports_dead_letter_differences(
    scenario: tuple[list[Record], Expected], redis_client: Any
) -> None:
    recs, exp = scenario
    client = redis_client
    _fill(client, exp)
    changed = _dl(recs[5], "late", 1)
    changed.value = b"rewritten"
    cases = {
        "missing dead letter ('posts', 0, 3)": [_dl(recs[3], "invalid_json", 0)],
        "unexpected dead letter ('posts', 0, 0)": [
            *map(_dl, [recs[3], recs[5], recs[0]], ["invalid_json", "late", "late"], [0, 1, 2])
        ],
        "reason 'schema', expected 'invalid_json'": [_dl(recs[3], "schema", 0), _dl(recs[5], "late", 1)],
        "key/value not the original": [_dl(recs[3], "invalid_json", 0), changed],
    }
    for message, dls in cases.items():
        with pytest.raises(AssertionError) as info:
            assert_matches(client, exp, dead_letter_records=dls)
        assert message in str(info.value), str(info.value)


def test_assert_matches_truncates_long_diffs(redis_client: Any) -> None:
    exp = run([ev("posts", i, f"id{i}", MS0, community=f"c{i}") for i in range(30)])
    with pytest.raises(AssertionError) as info:
        assert_matches(redis_client, exp)
    text = str(info.value)
    assert "61 missing keys" in text and "... and 41 more" in text
