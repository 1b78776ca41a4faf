"""The decoder accepts exactly what the published JSON Schema files accept (issue 15).

The schema files are checked by the ``jsonschema`` library with its ``date-time`` format
checker (``rfc3339-validator``), a different implementation from the decoder's fastjsonschema
and msgspec: on generated documents — valid ones and ones broken field by field — a message is
accepted by :class:`~schemas.events.EventDecoder` if and only if its document is valid under the
schema (formats included) and its times lie in the plausible range; a document the schema refuses
is rejected as ``schema``, one whose only fault is a ``date-time`` as ``timestamp``.  The fast
path (msgspec) and the schema path (fastjsonschema) give the same answer for every document.
"""

from __future__ import annotations

import calendar
import functools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from schemas import events
from schemas.events import MIN_TS_MS, EventDecoder, Post, Reaction, Rejection, Rsvp
from tests.workers import ROOT

SCHEMA_DIR = ROOT / "schemas"
FILES = {"posts": "post", "reactions": "reaction", "rsvps": "rsvp"}
NOW_MS = 1_893_456_000_000  # 2030-01-01T00:00:00Z: the decoder's clock in these tests
LATEST_MS = NOW_MS  # max_future_ms = 0


def _validators(formats: bool) -> dict[str, Draft7Validator]:
    out = {}
    for topic, name in FILES.items():
        schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
        checker = Draft7Validator.FORMAT_CHECKER if formats else None
        out[topic] = Draft7Validator(schema, format_checker=checker)
    return out


WITH_FORMATS = _validators(True)
WITHOUT_FORMATS = _validators(False)


def test_the_format_checker_really_checks_date_times() -> None:
    """jsonschema ignores ``date-time`` silently unless rfc3339-validator is installed."""
    checker = Draft7Validator.FORMAT_CHECKER
    assert "date-time" in checker.checkers
    assert not checker.conforms("2026-01-01T00:00:00", "date-time")
    assert checker.conforms("2026-01-01t00:00:00.5z", "date-time")


@functools.cache  # the decoder holds no state between messages: one for every example
def decoder() -> EventDecoder:
    return EventDecoder(max_message_bytes=1_000_000, max_future_ms=0, clock=lambda: NOW_MS / 1000)


# --- the two defects of issue 15, each failing before the fix ---------------------------------


@pytest.mark.parametrize(
    "ts",
    [
        "2026-11-30T04:29:52.391z",
        "2026-11-30t04:29:52.391Z",
        "2026-11-30t04:29:52.391z",
        "2026-11-30T12:29:52.391+08:00",
    ],
)
def test_lower_case_t_and_z_are_rfc_3339(ts: str) -> None:
    raw = orjson.dumps({"id": "e1", "community": "c", "member": "m", "ts": ts, "post": "p", "text": "hi"})
    ev = decoder().decode("posts", raw)
    assert isinstance(ev, Post), ev
    assert ev.ts == calendar.timegm((2026, 11, 30, 4, 29, 52)) * 1000 + 391
    assert WITH_FORMATS["posts"].is_valid(orjson.loads(raw))


def _exact_ms(value: str) -> int | str:
    """What parse_ts answers without its per-minute cache (``datetime`` does the work)."""
    try:
        if not events._RFC3339.match(value):
            return f"ts {value[:64]!r} is not an RFC 3339 date-time"
        return events._parse_rfc3339(value, "ts")
    except events.TimestampError as exc:
        return str(exc)


def _parsed(value: str) -> int | str:
    try:
        return events.parse_ts(value)
    except events.TimestampError as exc:
        return str(exc)


@settings(max_examples=3000, deadline=None)
@given(
    minute=st.sampled_from(
        ["2026-11-30T04:29", "2026-11-30t23:59", "1969-12-31T23:59", "0001-01-01T00:00", "9999-12-31T23:59",
         "2026-02-29T10:00", "2024-02-29T10:00", "2026-01-01T24:00", "2026-13-01T00:00", "0000-01-01T00:00"]
    ),
    second=st.integers(0, 99),
    fraction=st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=10).map(lambda f: "." + f)),
    offset=st.sampled_from(["Z", "z", "", "+08:00", "-05:30", "+23:59", "-00:00", "+24:00", "+05:60"]),
)
def test_parse_ts_per_minute_cache_agrees_with_datetime(
    minute: str, second: int, fraction: str, offset: str
) -> None:
    value = f"{minute}:{second:02d}{fraction}{offset}"
    expected = _exact_ms(value)
    assert _parsed(value) == expected  # fills the cache (when valid) ...
    assert _parsed(value) == expected  # ... and reads it; other seconds of the minute read it too


def test_an_integral_float_is_an_integer_as_the_schema_says() -> None:
    raw = b'{"id":"e1","community":"c","member":"m","ts":1796178550641.0,"post":"p","reaction":"like"}'
    assert WITH_FORMATS["reactions"].is_valid(orjson.loads(raw))  # draft 7: 1796178550641.0 is an integer
    ev = decoder().decode("reactions", raw)
    assert isinstance(ev, Reaction), ev
    assert ev.ts == 1_796_178_550_641 and type(ev.ts) is int
    rsvp = (
        b'{"id":"e2","community":"c","member":"m","ts":1.7e12,"meetup":"x","status":"going",'
        b'"starts_at":1.8e12,"capacity":20.0}'
    )
    ev2 = decoder().decode("rsvps", rsvp)
    assert isinstance(ev2, Rsvp), ev2
    assert (ev2.ts, ev2.starts_at, ev2.capacity) == (1_700_000_000_000, 1_800_000_000_000, 20)
    assert type(ev2.ts) is type(ev2.starts_at) is type(ev2.capacity) is int
    fractional = raw.replace(b"550641.0", b"550641.5")
    rejected = decoder().decode("reactions", fractional)
    assert isinstance(rejected, Rejection) and rejected.reason == "schema", rejected


# --- generated documents: decoder and schema against each other -------------------------------

_digits = st.integers(0, 9).map(str)


@st.composite
def date_times(draw: st.DrawFn) -> str:
    """RFC 3339-like strings, valid most of the time and wrong in one place otherwise."""
    year = draw(st.sampled_from([1999, 2000, 2020, 2026, 2029, 2030, 2031]))
    month = draw(st.integers(0, 13) if draw(st.booleans()) else st.integers(1, 12))
    day = draw(st.integers(0, 32) if draw(st.booleans()) else st.integers(1, 28))
    hour, minute = draw(st.integers(0, 24)), draw(st.integers(0, 59))
    second = draw(st.integers(0, 60))
    frac = draw(st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=9).map(lambda d: "." + d)))
    sep = draw(st.sampled_from(["T", "t", " "]))
    zone = draw(
        st.one_of(
            st.sampled_from(["Z", "z", "", "+00:00", "-00:00"]),
            st.builds(
                lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
                st.sampled_from("+-"),
                st.integers(0, 24),
                st.integers(0, 59),
            ),
        )
    )
    return f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}{frac}{zone}"


times = st.one_of(
    date_times(),
    st.integers(MIN_TS_MS - 10, LATEST_MS + 10),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(MIN_TS_MS, LATEST_MS).map(float),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=70),
    st.sampled_from([True, None, [], {}]),
)
ids = st.one_of(
    st.text(min_size=1, max_size=12),
    st.just(""),
    st.text(min_size=255, max_size=258),
    st.integers(-(2**63), 2**63 - 1),
    st.none(),
)
tags = st.one_of(
    st.lists(st.text(min_size=1, max_size=8), max_size=4),
    st.lists(st.text(max_size=66), max_size=34),
    st.text(max_size=3),
    st.none(),
)
FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "posts": {
        "post": ids,
        "text": st.one_of(st.text(max_size=30), st.text(min_size=10_001, max_size=10_002), st.integers(0, 9)),
        "kind": st.sampled_from(["post", "need", "offer", "resolved", "Post", "", None]),
        "tags": tags,
        "reply_to": ids,
    },
    "reactions": {
        "post": ids,
        "reaction": st.sampled_from(
            ["like", "love", "insightful", "thanks", "laugh", "sad", "angry", "report", "meh", "", 1]
        ),
    },
    "rsvps": {
        "meetup": ids,
        "status": st.sampled_from(["going", "maybe", "declined", "cancelled", "attended", "GOING", None]),
        "meetup_tags": tags,
        "starts_at": times,
        "capacity": st.one_of(
            st.integers(-2, 1_000_001), st.floats(-1, 2e6), st.booleans(), st.text(max_size=3)
        ),
    },
}
REQUIRED = {"posts": {"post", "text"}, "reactions": {"post", "reaction"}, "rsvps": {"meetup", "status"}}
_id = st.text(min_size=1, max_size=12)
_tags = st.lists(st.text(min_size=1, max_size=8), max_size=4)
VALID: dict[str, st.SearchStrategy[Any]] = {  # values the schema accepts (dates: mostly)
    "id": _id,
    "community": _id,
    "member": _id,
    "post": _id,
    "meetup": _id,
    "reply_to": _id,
    "ts": st.one_of(
        st.integers(MIN_TS_MS, LATEST_MS), st.integers(MIN_TS_MS, LATEST_MS).map(float), date_times()
    ),
    "starts_at": st.one_of(st.integers(0, 2**53), date_times()),
    "text": st.text(max_size=30),
    "kind": st.sampled_from(["post", "need", "offer", "resolved"]),
    "tags": _tags,
    "meetup_tags": _tags,
    "reaction": st.sampled_from(["like", "love", "insightful", "thanks", "laugh", "sad", "angry", "report"]),
    "status": st.sampled_from(["going", "maybe", "declined", "cancelled", "attended"]),
    "capacity": st.one_of(st.integers(0, 1_000_000), st.integers(0, 1_000_000).map(float)),
}


# the fixed strategies of documents(), built once rather than at every draw
_TOPICS = st.sampled_from(sorted(FILES))
_NOT_AN_OBJECT = st.one_of(st.lists(st.integers(0, 9), max_size=2), st.text(max_size=3), st.none())
_FIELDS = {
    topic: {"id": ids, "community": ids, "member": ids, "ts": times, **fields}
    for topic, fields in FIELDS.items()
}
_EXTRA_NAME = st.text(max_size=5)
_EXTRA_VALUE = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=5), st.none())


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, Any]:
    """A topic and a document: valid field by field, or with each field possibly broken or missing."""
    topic = draw(_TOPICS)
    if draw(st.integers(0, 30)) == 0:
        return topic, draw(_NOT_AN_OBJECT)
    doc: dict[str, Any] = {}
    good = draw(st.integers(0, 2)) > 0  # two thirds of the documents draw only valid values
    for name, strategy in _FIELDS[topic].items():
        required = name in ("id", "community", "member", "ts") or name in REQUIRED[topic]
        if good:
            if required or draw(st.booleans()):
                doc[name] = draw(VALID[name])
        elif draw(st.integers(0, 9)) > 0 if required else draw(st.booleans()):
            doc[name] = draw(strategy)
    if draw(st.booleans()):
        doc[draw(_EXTRA_NAME)] = draw(_EXTRA_VALUE)
    return topic, doc


def _in_range(value: Any) -> bool:
    if isinstance(value, str):
        dt = datetime.fromisoformat(value.upper())  # the format checker passed: RFC 3339 with an offset
        ms = (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    else:
        ms = int(value)
    return MIN_TS_MS <= ms <= LATEST_MS


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_decoder_accepts_exactly_what_the_schema_accepts(case: tuple[str, Any]) -> None:
    topic, doc = case
    raw = orjson.dumps(doc)
    dec = decoder()
    got = dec.decode(topic, raw, LATEST_MS)
    event(got.reason if isinstance(got, Rejection) else "accepted")
    # the fast path never decides differently from the schema file compiled by fastjsonschema
    assert got == dec._decode_checked(topic, orjson.loads(raw), LATEST_MS)
    if not WITHOUT_FORMATS[topic].is_valid(doc):
        assert isinstance(got, Rejection) and got.reason == "schema", (doc, got)
        return
    if not WITH_FORMATS[topic].is_valid(doc):
        assert isinstance(got, Rejection) and got.reason == "timestamp", (doc, got)
        return
    if not _in_range(doc["ts"]):
        assert isinstance(got, Rejection) and got.reason == "timestamp", (doc, got)
        return
    assert not isinstance(got, Rejection), (doc, got)
    assert (got.id, got.community, got.member) == (doc["id"], doc["community"], doc["member"])
    assert got.__class__ is {"posts": Post, "reactions": Reaction, "rsvps": Rsvp}[topic]
    if isinstance(got, Post):
        assert (got.post, got.text, got.kind, got.tags, got.reply_to) == (
            doc["post"],
            doc["text"],
            doc.get("kind", "post"),
            tuple(doc.get("tags", ())),
            doc.get("reply_to"),
        )
    elif isinstance(got, Rsvp):
        assert (got.meetup, got.status, got.meetup_tags) == (
            doc["meetup"],
            doc["status"],
            tuple(doc.get("meetup_tags", ())),
        )
        assert got.capacity == doc.get("capacity") and (got.capacity is None or type(got.capacity) is int)
        assert (got.starts_at is None) == ("starts_at" not in doc)


def test_the_simulators_events_are_valid_under_the_schema() -> None:
    """Both directions on realistic input: every simulated event passes the schema and the decoder."""
    from streams.simulator import SimConfig, Simulator

    dec = EventDecoder(max_message_bytes=1_000_000, max_future_ms=10**12)
    n = 0
    for m in Simulator(SimConfig(seed=3, events=3000, communities=5, members=100, dup_rate=0.0)).messages():
        doc = orjson.loads(m.value)
        assert WITH_FORMATS[m.topic].is_valid(doc), doc
        assert not isinstance(dec.decode(m.topic, m.value), Rejection)
        n += 1
    assert n >= 3000
