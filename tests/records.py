"""Builders of Kafka records for the reference's own tests (unit and Redis-backed)."""

from __future__ import annotations

from typing import Any

import orjson

from tests.reference import Expected, Record, RefSettings, recompute

NOW = 1_800_000_000_000
"""The wall clock the tests pretend (2027-01-15), so ``max_future_seconds`` is deterministic."""

S0 = 1_699_999_200
"""2023-11-14T22:00:00Z, a multiple of 3600: the start of a one-hour window."""
S1 = S0 + 3600
"""2023-11-14T23:00:00Z: the next window's start."""
MS0, MS1 = S0 * 1000, S1 * 1000

BODIES: dict[str, dict[str, Any]] = {
    "posts": {"post": "p1", "text": "hello"},
    "reactions": {"post": "p1", "reaction": "like"},
    "rsvps": {"meetup": "mt1", "status": "going"},
}


def ev(
    topic: str,
    offset: int,
    id: str,
    ts: int | str | float,
    *,
    community: str = "c1",
    member: str = "m1",
    partition: int = 0,
    prefix: str = "",
    **extra: Any,
) -> Record:
    """A record carrying a (by default valid) event of ``topic``; ``extra`` adds or overrides fields."""
    body = {"id": id, "community": community, "member": member, "ts": ts, **BODIES[topic], **extra}
    return Record(prefix + topic, partition, offset, community.encode(), orjson.dumps(body), {})


def raw(topic: str, offset: int, value: bytes | None, *, partition: int = 0) -> Record:
    """A record with an arbitrary value."""
    return Record(topic, partition, offset, b"c1", value, {})


def run(records: list[Record], **overrides: Any) -> Expected:
    return recompute(records, RefSettings(**overrides), now_ms=NOW)


def counts(exp: Expected, key: str) -> tuple[str, str, str]:
    """(interactions, participants, posts) of an activity hash."""
    h = exp.hashes[key]
    return h["interactions"], h["participants"], h["posts"]  # type: ignore[return-value]


def scenario_records() -> tuple[list[Record], Expected]:
    """Six records over two windows and communities, one invalid and one late, with their recompute."""
    recs = [
        ev("posts", 0, "a", MS0, member="m1"),
        ev("reactions", 0, "b", MS0, member="m2"),
        ev("rsvps", 0, "c", MS1, member="m1", community="c2"),
        raw("posts", 1, b"{"),
        ev("posts", 2, "d", MS1 + 400_000),
        ev("posts", 3, "e", MS0),
    ]
    return recs, run(recs)


def dead_letter(src: Record, reason: str, offset: int) -> Record:
    """The dead letter Pulse would write for ``src`` (original key and value, ``pulse.*`` headers)."""
    headers = {
        "pulse.reason": reason.encode(),
        "pulse.detail": b"whatever",
        "pulse.topic": src.topic.encode(),
        "pulse.partition": str(src.partition).encode(),
        "pulse.offset": str(src.offset).encode(),
    }
    return Record("dead-letters", 0, offset, src.key, src.value, headers)
