"""Event contract v1: typed records and the one function that turns raw bytes into them.

The JSON Schema files beside this module are the contract (publishers in other languages
validate against them).  :meth:`EventDecoder.decode` accepts exactly what the files accept, then
adds what a schema cannot: a ``date-time`` must be RFC 3339 (upper or lower case ``T``/``Z``) and
every timestamp must lie in a plausible range.  Integers are JSON Schema (draft 7) integers, so an
integral float such as ``1796178550641.0`` is one.  Anything else comes back as a
:class:`Rejection` with a bounded ``reason`` (a metric label) and a human ``detail`` naming the field.

Validation has two paths with one answer.  The fast one decodes the bytes straight into a msgspec
struct whose constraints mirror the schema file (~1 µs for parsing and validation together;
orjson then a conversion took ~2 µs, fastjsonschema alone ~2 µs).  Anything it refuses is
parsed by orjson (depth-limited; its error names an invalid JSON) and goes through the schema
file itself, compiled by fastjsonschema, which either names the failing field or accepts the
event (a value the fast path does not take, e.g. an integral float): the fast path may only
ever be stricter than the schema, never looser, and ``tests/test_schema_contract.py`` checks
both against the ``jsonschema`` library on generated events.

>>> d = EventDecoder(max_message_bytes=10_000, max_future_ms=300_000)
>>> ev = d.decode("posts", b'{"id":"e1","community":"c","member":"m","ts":"2026-01-01T00:00:00Z",'
...                         b'"post":"p1","text":"hello"}')
>>> ev.kind, ev.ts, ev.tags
('post', 1767225600000, ())
>>> d.decode("reactions", b'{"id":"e2","community":"c","member":"m","ts":1767225600000,'
...                        b'"post":"p1","reaction":"meh"}').detail[:40]
"reaction: must be one of ['like', 'love'"
>>> d.decode("posts", b"\\xff\\xfe").reason
'invalid_json'
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import fastjsonschema
import msgspec
import orjson
from msgspec import UNSET, Meta, Struct, UnsetType

SCHEMA_DIR = Path(__file__).parent
SCHEMA_FILES = {"posts": "post.schema.json", "reactions": "reaction.schema.json", "rsvps": "rsvp.schema.json"}

MIN_TS_MS = 946_684_800_000
"""2000-01-01T00:00:00Z: older event times are impossible for this product (and catch 0 / negatives)."""


@dataclass(slots=True)  # not frozen: frozen construction costs 5x, and events are never mutated
class Post:
    id: str
    community: str
    member: str
    ts: int  # epoch milliseconds
    post: str
    text: str
    kind: str
    tags: tuple[str, ...]
    reply_to: str | None
    # The text stage's TextAnalysis (online_models.text_stage), filled once per post by the runner.
    analysis: Any = field(default=None, compare=False, repr=False)


@dataclass(slots=True)  # not frozen: frozen construction costs 5x, and events are never mutated
class Reaction:
    id: str
    community: str
    member: str
    ts: int
    post: str
    reaction: str


@dataclass(slots=True)  # not frozen: frozen construction costs 5x, and events are never mutated
class Rsvp:
    id: str
    community: str
    member: str
    ts: int
    meetup: str
    status: str
    meetup_tags: tuple[str, ...]
    starts_at: int | None
    capacity: int | None


Event = Post | Reaction | Rsvp


class Rejection(NamedTuple):
    """Why a message is not an event: ``reason`` is one of a fixed set, ``detail`` says what and where."""

    reason: str  # oversized | invalid_json | schema | timestamp | late (the last set by the pipeline)
    detail: str


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# ASCII digits only (re.ASCII: \d would otherwise take other scripts' digits); the offset is checked
# below.  Groups: up to the minute, seconds, fraction, offset (for the per-minute cache).
_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\d[Tt]\d\d:\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)?\Z", re.ASCII
)
_SECOND_MS = {f"{s:02d}": s * 1000 for s in range(60)}  # "60" (a leap second) is absent: exact path
_FRACTION_MS = {  # the first three digits of a fraction → whole milliseconds ("5" → 500)
    f"{n:0{k}d}": int(f"{n:0{k}d}".ljust(3, "0")) for k in (1, 2, 3) for n in range(10**k)
}
_MINUTES: dict[str, int] = {}
"""Minute and UTC offset of a timestamp (e.g. ``2026-01-01T08:00+08:00``) → that minute in epoch
ms.  Event times cluster around now, so the minutes are few and a minute's later timestamps skip
``fromisoformat`` and the datetime arithmetic (~0.6 µs of the ~1.2 µs a parse took)."""
_MINUTES_MAX = 4096  # cleared when full (~0.6 MB); even a backlog visits minutes roughly in order


class TimestampError(ValueError):
    pass


def parse_ts(value: object, field: str = "ts") -> int:
    """RFC 3339 string, or integer epoch ms (a JSON Schema integer: ``5`` or ``5.0``) → epoch ms.

    >>> parse_ts("2026-01-01T08:00:00+08:00"), parse_ts(5), parse_ts(5.0), parse_ts("2026-01-01t00:00:00.5z")
    (1767225600000, 5, 5, 1767225600500)
    >>> parse_ts("2026-01-01T08:00:59.1239+08:00") - parse_ts("2026-01-01T08:00:00+08:00")  # cached minute
    59123
    >>> parse_ts("2026-01-01T00:00:00")
    Traceback (most recent call last):
    ...
    schemas.events.TimestampError: ts '2026-01-01T00:00:00' has no UTC offset (RFC 3339 requires one)
    """
    if value.__class__ is int:
        return value  # type: ignore[return-value]
    if not isinstance(value, str):
        if isinstance(value, float) and value.is_integer():  # what many encoders write for an integer
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        raise TimestampError(f"{field} {value!r:.40} is not integer epoch milliseconds")
    match = _RFC3339.match(value)
    if match is None:
        raise TimestampError(f"{field} {value[:64]!r} is not an RFC 3339 date-time")
    minute, second, fraction, offset = match.groups()
    if offset is not None:
        base = _MINUTES.get(minute + offset)
        if base is not None:
            second_ms = _SECOND_MS.get(second)
            if second_ms is not None:
                return base + second_ms + (_FRACTION_MS[fraction[:3]] if fraction else 0)
    ms = _parse_rfc3339(value, field)
    second_ms = _SECOND_MS.get(second)
    # a valid minute is cached, except hour 24: some Pythons' fromisoformat take T24:00:00 as the
    # next midnight, and no other second of that "minute" is valid
    if offset is not None and second_ms is not None and minute[11:13] != "24":
        if len(_MINUTES) >= _MINUTES_MAX:
            _MINUTES.clear()
        _MINUTES[minute + offset] = ms - second_ms - (_FRACTION_MS[fraction[:3]] if fraction else 0)
    return ms


def _parse_rfc3339(value: str, field: str) -> int:
    """A string of RFC 3339's shape → epoch ms by ``datetime`` (which rejects impossible dates)."""
    try:
        # RFC 3339 (5.6) allows lower case t and z; fromisoformat takes only upper case
        dt = datetime.fromisoformat(value.upper())
    except ValueError:
        raise TimestampError(f"{field} {value[:64]!r} is not an RFC 3339 date-time") from None
    if dt.tzinfo is None:
        raise TimestampError(f"{field} {value[:64]!r} has no UTC offset (RFC 3339 requires one)")
    td = dt - _EPOCH  # exact integer arithmetic (no float rounding at window edges), = td // 1 ms
    return td.days * 86_400_000 + td.seconds * 1000 + td.microseconds // 1000


# The fast path's types: each constraint mirrors the schema file (tests/test_schema_contract.py).
_Id = Annotated[str, Meta(min_length=1, max_length=256)]
_Tag = Annotated[str, Meta(min_length=1, max_length=64)]
_Tags = Annotated[tuple[_Tag, ...], Meta(max_length=32)]
_Time = int | Annotated[str, Meta(max_length=64)]


class _PostIn(Struct, gc=False):
    id: _Id
    community: _Id
    member: _Id
    ts: _Time
    post: _Id
    text: Annotated[str, Meta(max_length=10_000)]
    kind: Literal["post", "need", "offer", "resolved"] = "post"
    tags: _Tags = ()
    reply_to: _Id | UnsetType = UNSET


class _ReactionIn(Struct, gc=False):
    id: _Id
    community: _Id
    member: _Id
    ts: _Time
    post: _Id
    reaction: Literal["like", "love", "insightful", "thanks", "laugh", "sad", "angry", "report"]


class _RsvpIn(Struct, gc=False):
    id: _Id
    community: _Id
    member: _Id
    ts: _Time
    meetup: _Id
    status: Literal["going", "maybe", "declined", "cancelled", "attended"]
    meetup_tags: _Tags = ()
    starts_at: _Time | UnsetType = UNSET
    capacity: Annotated[int, Meta(ge=0, le=1_000_000)] | UnsetType = UNSET


_FAST_TYPES: dict[str, type[Struct]] = {"posts": _PostIn, "reactions": _ReactionIn, "rsvps": _RsvpIn}


@functools.cache  # a compiled validator is a pure function: one per schema file and process
def _compile(topic: str) -> Callable[[Any], Any]:
    schema = json.loads((SCHEMA_DIR / SCHEMA_FILES[topic]).read_text())
    # Formats off: parse_ts checks date-times more strictly (and faster) than the format regex.
    return fastjsonschema.compile(schema, use_formats=False)


class EventDecoder:
    """Decodes and validates raw message values for the three input topics.

    One instance compiles the schemas once; :meth:`decode` is the per-message hot path.
    ``max_future_ms`` bounds how far ahead of the wall clock an event may be stamped: a
    single event from a wrong clock would otherwise push the partition's watermark ahead
    and make every later event look late.
    """

    def __init__(self, max_message_bytes: int, max_future_ms: int, clock: Callable[[], float] = time.time):
        self.max_message_bytes = max_message_bytes
        self.max_future_ms = max_future_ms
        self._clock = clock
        self._validators = {topic: _compile(topic) for topic in SCHEMA_FILES}
        self._builders: dict[str, Callable[[dict[str, Any], int], Event]] = {
            "posts": _build_post,
            "reactions": _build_reaction,
            "rsvps": _build_rsvp,
        }
        # msgspec decodes and validates straight into the struct (no dict in between); per topic
        # its decode and the builder of the event, in one look-up
        builders: dict[str, Callable[[Any, int], Event]] = {
            "posts": _fast_post,
            "reactions": _fast_reaction,
            "rsvps": _fast_rsvp,
        }
        self._fast: dict[str, tuple[Callable[[bytes], Any], Callable[[Any, int], Event]]] = {
            topic: (msgspec.json.Decoder(t).decode, builders[topic]) for topic, t in _FAST_TYPES.items()
        }

    def latest_ts(self) -> int:
        """The newest acceptable event time now (ms); the pipeline reads the clock once per batch."""
        return int(self._clock() * 1000) + self.max_future_ms

    def decode(self, topic: str, raw: bytes | None, latest_ts: int | None = None) -> Event | Rejection:
        """Bytes of one message on logical ``topic`` → an event, or the reason it is not one."""
        if raw is None:
            return Rejection("invalid_json", "message has no value (tombstone)")
        if len(raw) > self.max_message_bytes:
            return Rejection("oversized", f"message is {len(raw)} bytes, limit {self.max_message_bytes}")
        fast_decode, build = self._fast[topic]
        try:
            fast = fast_decode(raw)
        except (msgspec.DecodeError, RecursionError):  # not JSON, too deep, or not the fast path's shape:
            # orjson and the schema file say why
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                return Rejection("invalid_json", str(exc)[:200])
            return self._decode_checked(topic, data, latest_ts)
        latest = latest_ts if latest_ts is not None else self.latest_ts()
        try:
            ts = parse_ts(fast.ts)  # type: ignore[attr-defined]
            if ts < MIN_TS_MS or ts > latest:
                self._check_ts(ts, latest)  # raises, saying which bound
            return build(fast, ts)
        except TimestampError as exc:
            return Rejection("timestamp", str(exc))

    def _decode_checked(self, topic: str, data: Any, latest_ts: int | None) -> Event | Rejection:
        """The schema file itself (fastjsonschema): what the fast path refused, and why."""
        try:
            self._validators[topic](data)
        except fastjsonschema.JsonSchemaValueException as exc:
            name = exc.name or "data"
            field = name.removeprefix("data").lstrip(".") or "event"
            message = exc.message.removeprefix(name).strip()
            return Rejection("schema", f"{field}: {message}"[:300])
        try:
            return self._builders[topic](data, self._check_ts(parse_ts(data["ts"]), latest_ts))
        except TimestampError as exc:
            return Rejection("timestamp", str(exc))

    def _check_ts(self, ts: int, latest_ts: int | None) -> int:
        if ts < MIN_TS_MS:
            raise TimestampError(f"ts {ts} ms is before 2000-01-01")
        if ts > (latest_ts if latest_ts is not None else self.latest_ts()):
            raise TimestampError(f"ts {ts} ms is more than {self.max_future_ms} ms in the future")
        return ts


def _fast_post(p: _PostIn, ts: int) -> Post:
    reply_to = p.reply_to
    return Post(p.id, p.community, p.member, ts, p.post, p.text, p.kind, p.tags,
                None if reply_to is UNSET else reply_to)  # type: ignore[arg-type]  # fmt: skip


def _fast_reaction(r: _ReactionIn, ts: int) -> Reaction:
    return Reaction(r.id, r.community, r.member, ts, r.post, r.reaction)


def _fast_rsvp(r: _RsvpIn, ts: int) -> Rsvp:
    starts_at, capacity = r.starts_at, r.capacity
    return Rsvp(
        r.id, r.community, r.member, ts, r.meetup, r.status, r.meetup_tags,
        None if starts_at is UNSET else parse_ts(starts_at, "starts_at"),
        None if capacity is UNSET else capacity,  # type: ignore[arg-type]
    )  # fmt: skip


def _build_post(d: dict[str, Any], ts: int) -> Post:
    return Post(
        d["id"], d["community"], d["member"], ts, d["post"], d["text"],
        d.get("kind", "post"), tuple(d.get("tags", ())), d.get("reply_to"),
    )  # fmt: skip


def _build_reaction(d: dict[str, Any], ts: int) -> Reaction:
    return Reaction(d["id"], d["community"], d["member"], ts, d["post"], d["reaction"])


def _build_rsvp(d: dict[str, Any], ts: int) -> Rsvp:
    starts_at, capacity = d.get("starts_at"), d.get("capacity")
    return Rsvp(
        d["id"], d["community"], d["member"], ts, d["meetup"], d["status"],
        tuple(d.get("meetup_tags", ())), None if starts_at is None else parse_ts(starts_at, "starts_at"),
        None if capacity is None else int(capacity),  # a JSON Schema integer may be written 5.0
    )  # fmt: skip
