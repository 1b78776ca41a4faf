"""An independent reference ("truth table") for Pulse's activity windows.

It recomputes, from the raw Kafka records of the input topics, exactly what Redis
must contain and which records must be dead-lettered, so that end-to-end tests can
compare a real worker's state with it.

Independence is the point: nothing here imports ``streams`` (the implementation under
test) or ``schemas.events``.  Only the contract is shared: the JSON Schema files in
``schemas/`` (validated with the ``jsonschema`` library, ``format`` ignored) and the
rules restated below.

The rules, per input record, in this order:

1. ``oversized``: ``len(value) > max_message_bytes``;
2. ``invalid_json``: the value is ``None`` or :func:`orjson.loads` fails (not UTF-8,
   not JSON, nesting deeper than 1024, a number that overflows a double, ...);
3. ``schema``: the document fails the JSON Schema of its topic (draft 7);
4. ``timestamp``: ``ts`` is neither an RFC 3339 string with a UTC offset (upper or lower
   case ``T``/``Z``, parsed with :meth:`datetime.datetime.fromisoformat`, ``tzinfo`` required)
   nor a JSON Schema integer (a Python ``int``, ``bool`` excluded, or an integral float such
   as ``1.7e12``, see :func:`parse_ts_ms`), or lies outside ``[2000-01-01, now + max_future_seconds]``;
   an RSVP's ``starts_at``, when present, only has to parse by the same rule.

Valid events are processed per topic-partition in offset order.  The partition's
watermark is the highest ``ts`` (ms) of any valid event so far, the current one
included; an event is ``late`` (dead-lettered) when
``watermark > window_end * 1000 + grace_seconds * 1000``.  A valid, non-late event whose
``id`` was already applied on the same topic in the same window is a duplicate: skipped,
not dead-lettered.  Windows are tumbling and epoch aligned:
``start = ts_ms // 1000 // W * W`` (seconds).

Keys restate the README's key contract: an id inside a key has ``% : { } * ? [ ] \\``
percent-encoded (``%XX``, upper-case hex), everything else as written (:func:`key_id`).
On Redis Cluster (the README's cluster layout) key ``pulse:X`` is stored as ``pulse:{pN}:X``, N
being the input partition the community's events arrived on, and the communities leaderboard of a
window is kept once per partition (each holding that partition's communities); :func:`read_redis`
and :func:`assert_matches` read a cluster client's nodes, check every tag and merge the boards.

Typical use in an end-to-end test::

    records = [r for t in settings.input_topics for r in read_topic(bootstrap, t)]
    expected = recompute(records, settings)
    dead = read_topic(bootstrap, settings.dead_letter_topic)
    assert_matches(redis_client, expected, dead_letter_records=dead)
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import orjson
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match

__all__ = [
    "DEAD_LETTER_TOPIC",
    "INPUT_TOPICS",
    "MIN_TS_MS",
    "REASONS",
    "Expected",
    "Record",
    "RefSettings",
    "Rejected",
    "ValidEvent",
    "assert_matches",
    "classify",
    "dead_letters_from",
    "parse_ts_ms",
    "read_redis",
    "read_topic",
    "recompute",
]

INPUT_TOPICS: dict[str, str] = {"posts": "post", "reactions": "reaction", "rsvps": "rsvp"}
"""Logical input topic -> stem of its schema file (``schemas/{stem}.schema.json``)."""

DEAD_LETTER_TOPIC = "dead-letters"
"""Logical name of the dead-letter topic (the prefix stands before it)."""

MIN_TS_MS = 946_684_800_000
"""2000-01-01T00:00:00Z in epoch milliseconds: the earliest valid ``ts``."""

REASONS = ("oversized", "invalid_json", "schema", "timestamp", "late")
"""Every dead-letter reason, in the order the checks run (``late`` last)."""

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

KeyTriple = tuple[str, int, int]
"""(full source topic, partition, offset): identifies a source record."""


# --------------------------------------------------------------------------------------------
# Records and settings
# --------------------------------------------------------------------------------------------


@dataclass
class Record:
    """One Kafka record as read from a topic (``topic`` is the full name, prefix included)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)


class SettingsLike(Protocol):
    """The attributes of ``streams.config.Settings`` that :func:`recompute` reads."""

    topic_prefix: str
    window_seconds: int
    grace_seconds: int
    max_future_seconds: int
    max_message_bytes: int
    w_interactions: float
    w_participants: float
    w_posts: float
    member_post_weight: float
    member_reaction_weight: float
    member_rsvp_weight: float


@dataclass
class RefSettings:
    """A stand-in for ``streams.config.Settings`` with the contract's defaults.

    Any object with these attributes works with :func:`recompute` (the real
    ``Settings`` included); this one exists so tests need not import ``streams``.
    """

    topic_prefix: str = ""
    window_seconds: int = 3600
    grace_seconds: int = 300
    max_future_seconds: int = 300
    max_message_bytes: int = 1_000_000
    w_interactions: float = 0.5
    w_participants: float = 0.3
    w_posts: float = 0.2
    member_post_weight: float = 1.0
    member_reaction_weight: float = 0.5
    member_rsvp_weight: float = 0.5


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """A record that must be dead-lettered: one of :data:`REASONS` and a human detail."""

    reason: str
    detail: str


@dataclass(frozen=True)
class ValidEvent:
    """The fields of a decoded, valid event that the activity windows need."""

    id: str
    community: str
    member: str
    ts_ms: int


@cache
def _validator(logical_topic: str) -> Draft7Validator:
    """The draft-7 validator of a topic's schema file (no format checker: ``format`` is ignored)."""
    path = SCHEMA_DIR / f"{INPUT_TOPICS[logical_topic]}.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


_RFC3339_SHAPE = r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)"


def parse_ts_ms(value: Any) -> int | None:
    """Epoch milliseconds of a ``ts``/``starts_at`` value, or ``None`` if it doesn't parse.

    * a Python ``int`` (not ``bool``) is taken as epoch milliseconds as is, and so is an
      integral ``float`` (``1.7e12``: an integer under JSON Schema draft 7);
    * a ``str`` must have the RFC 3339 shape (``YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)``, ``T``
      and ``Z`` in either case, ASCII digits), parse with :meth:`datetime.fromisoformat` (after
      upper-casing) and carry a UTC offset; sub-millisecond digits are floored (exact integer
      arithmetic, no float rounding);
    * anything else (a fractional ``float``, ``bool``, ``None``, containers) does not parse.

    >>> parse_ts_ms("2000-01-01T00:00:00Z"), parse_ts_ms("2000-01-01t01:00:00.0019+01:00")
    (946684800000, 946684800001)
    >>> parse_ts_ms("2000-01-01T00:00:00") is None, parse_ts_ms(True) is None, parse_ts_ms(1.5) is None
    (True, True, True)
    >>> parse_ts_ms(1.0), parse_ts_ms("2000-01-01T00:00:00z")
    (1, 946684800000)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        if not re.fullmatch(_RFC3339_SHAPE, value, flags=re.ASCII):
            return None
        try:
            dt = datetime.fromisoformat(value.upper())
        except ValueError:
            return None
        if dt.tzinfo is None or dt.utcoffset() is None:
            return None
        return (dt - _EPOCH) // _ONE_MS
    return None


def classify(
    value: bytes | None, logical_topic: str, *, max_message_bytes: int, max_ts_ms: int
) -> Rejected | ValidEvent:
    """Run the contract's checks on one record value, in order, and say what it is.

    ``max_ts_ms`` is the latest acceptable ``ts`` (wall clock + ``max_future_seconds``).
    """
    if value is not None and len(value) > max_message_bytes:
        return Rejected("oversized", f"{len(value)} bytes > {max_message_bytes}")
    if value is None:
        return Rejected("invalid_json", "no value (tombstone)")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejected("invalid_json", str(exc))
    if not isinstance(doc, dict):  # before jsonschema: its message would repr a 1000-deep array
        return Rejected("schema", f"<root>: {type(doc).__name__} is not an object")
    validator = _validator(logical_topic)
    if not validator.is_valid(doc):
        err = best_match(validator.iter_errors(doc))
        return Rejected("schema", f"{'/'.join(map(str, err.absolute_path)) or '<root>'}: {err.message}")
    ts_ms = parse_ts_ms(doc["ts"])
    if ts_ms is None:
        return Rejected("timestamp", f"ts does not parse: {doc['ts']!r}")
    if ts_ms < MIN_TS_MS:
        return Rejected("timestamp", f"ts {ts_ms} before 2000-01-01")
    if ts_ms > max_ts_ms:
        return Rejected("timestamp", f"ts {ts_ms} more than max_future_seconds ahead ({max_ts_ms})")
    if logical_topic == "rsvps" and "starts_at" in doc and parse_ts_ms(doc["starts_at"]) is None:
        return Rejected("timestamp", f"starts_at does not parse: {doc['starts_at']!r}")
    return ValidEvent(id=doc["id"], community=doc["community"], member=doc["member"], ts_ms=ts_ms)


# --------------------------------------------------------------------------------------------
# The recomputation
# --------------------------------------------------------------------------------------------


@dataclass
class Expected:
    """What Redis and the dead-letter topic must hold after every input record was processed.

    ``hashes`` maps ``pulse:activity:{community}:{W}s:{start}`` to
    ``{"interactions": str, "participants": str, "posts": str, "score": float}``;
    ``zsets`` maps ``pulse:lb:communities:{W}s:{start}`` and
    ``pulse:lb:members:{community}:{W}s:{start}`` to ``{member: score}``;
    ``dead_letters`` maps ``(source topic, partition, offset)`` to the reason.
    ``applied`` counts events that were counted, ``duplicates`` the skipped copies.
    ``dead_letter_payloads`` keeps each dead letter's original ``(key, value)`` and
    ``dead_letter_details`` a human explanation (for diffs only; never compared).
    """

    hashes: dict[str, dict[str, str | float]]
    zsets: dict[str, dict[str, float]]
    dead_letters: dict[KeyTriple, str]
    applied: int
    duplicates: int
    dead_letter_payloads: dict[KeyTriple, tuple[bytes | None, bytes | None]] = field(default_factory=dict)
    dead_letter_details: dict[KeyTriple, str] = field(default_factory=dict)
    homes: dict[str, set[int]] = field(default_factory=dict)
    """community -> the input partitions its applied events came from (one, when keyed right)."""


@dataclass
class _Window:
    """Running counts of one (community, window)."""

    interactions: int = 0
    posts: int = 0
    members: dict[str, float] = field(default_factory=dict)


def key_id(identifier: str) -> str:
    """An id as it stands inside a key (README, key contract): ``% : { } * ? [ ] \\`` as ``%XX``.

    >>> key_id("a:b%{c}")
    'a%3Ab%25%7Bc%7D'
    """
    return "".join(f"%{ord(ch):02X}" if ch in '%:{}*?[]\\' else ch for ch in identifier)


def _logical(topic: str, prefix: str) -> str | None:
    """The logical name of a full topic name, ``None`` for the dead-letter topic.

    Raises ValueError for a topic that is neither an input topic nor the dead-letter topic.
    """
    logical = topic[len(prefix) :] if topic.startswith(prefix) else None
    if logical == DEAD_LETTER_TOPIC:
        return None
    if logical not in INPUT_TOPICS:
        raise ValueError(f"record from topic {topic!r} is not an input topic under prefix {prefix!r}")
    return logical


def recompute(records: Iterable[Record], settings: SettingsLike, *, now_ms: int | None = None) -> Expected:
    """Recompute the expected Redis state and dead letters from raw input records.

    ``records`` may mix the three input topics (records of the dead-letter topic are
    ignored; any other topic raises ValueError).  They are processed sorted by
    ``(topic, partition, offset)``, which keeps each partition in offset order.
    ``now_ms`` is the wall clock for the ``max_future_seconds`` rule (default: now);
    pass the time the worker ran if events sit near that bound.
    """
    prefix = settings.topic_prefix
    w = int(settings.window_seconds)
    grace_ms = int(settings.grace_seconds) * 1000
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    max_ts_ms = now_ms + int(settings.max_future_seconds) * 1000
    member_weight = {
        "posts": float(settings.member_post_weight),
        "reactions": float(settings.member_reaction_weight),
        "rsvps": float(settings.member_rsvp_weight),
    }
    w_i, w_c, w_h = float(settings.w_interactions), float(settings.w_participants), float(settings.w_posts)

    watermarks: dict[tuple[str, int], int] = {}
    applied_ids: set[tuple[str, int, str]] = set()
    windows: dict[tuple[str, int], _Window] = {}
    expected = Expected(hashes={}, zsets={}, dead_letters={}, applied=0, duplicates=0)

    def reject(rec: Record, reason: str, detail: str) -> None:
        k = (rec.topic, rec.partition, rec.offset)
        expected.dead_letters[k] = reason
        expected.dead_letter_details[k] = detail
        expected.dead_letter_payloads[k] = (rec.key, rec.value)

    for rec in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        logical = _logical(rec.topic, prefix)
        if logical is None:
            continue
        verdict = classify(
            rec.value, logical, max_message_bytes=settings.max_message_bytes, max_ts_ms=max_ts_ms
        )
        if isinstance(verdict, Rejected):
            reject(rec, verdict.reason, verdict.detail)
            continue
        tp = (rec.topic, rec.partition)
        wm = max(watermarks.get(tp, verdict.ts_ms), verdict.ts_ms)
        watermarks[tp] = wm
        start = verdict.ts_ms // 1000 // w * w
        limit_ms = (start + w) * 1000 + grace_ms
        if wm > limit_ms:
            reject(rec, "late", f"watermark {wm} > window end + grace {limit_ms}")
            continue
        dedupe_key = (logical, start, verdict.id)
        if dedupe_key in applied_ids:
            expected.duplicates += 1
            continue
        applied_ids.add(dedupe_key)
        expected.applied += 1
        expected.homes.setdefault(verdict.community, set()).add(rec.partition)
        win = windows.setdefault((verdict.community, start), _Window())
        if logical == "posts":
            win.posts += 1
        else:
            win.interactions += 1
        win.members[verdict.member] = win.members.get(verdict.member, 0.0) + member_weight[logical]

    for (community, start), win in windows.items():
        i, c, h = win.interactions, len(win.members), win.posts
        score = w_i * i + w_c * c + w_h * h
        cid = key_id(community)
        expected.hashes[f"pulse:activity:{cid}:{w}s:{start}"] = {
            "interactions": str(i),
            "participants": str(c),
            "posts": str(h),
            "score": score,
        }
        expected.zsets.setdefault(f"pulse:lb:communities:{w}s:{start}", {})[community] = score
        expected.zsets[f"pulse:lb:members:{cid}:{w}s:{start}"] = dict(win.members)
    return expected


# --------------------------------------------------------------------------------------------
# Reading Kafka and Redis
# --------------------------------------------------------------------------------------------


def read_topic(
    bootstrap: str, topic: str, timeout: float = 30, *, config: dict[str, Any] | None = None
) -> list[Record]:
    """Read a whole topic: every partition from the beginning to its end.

    Uses ``assign()`` (no consumer group join, so it's quick) and ``read_committed``
    (the librdkafka default, as a worker sees it).  A partition is read when an
    end-of-partition event arrives at or past the high watermark that
    ``get_watermark_offsets`` reported at the start.  That high watermark is only a
    lower bound: Tansu (the embedded broker) answers ListOffsets(latest) with the last
    *batch's* base offset + 1, too low after a multi-record batch, so the fetch's own
    end of partition decides; records appended after it are left out.

    ``config`` adds librdkafka settings (e.g. ``settings.kafka_config()`` for SASL/TLS).
    A topic that doesn't exist reads as empty.  Records come back in (partition, offset)
    order; raises TimeoutError if some partition's end isn't reached within ``timeout`` s.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"pulse-reference-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False,
    }
    conf.update(config or {})
    deadline = time.monotonic() + timeout
    consumer = Consumer(conf)
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or (meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            return []
        if meta.error is not None:
            raise KafkaException(meta.error)
        partitions = sorted(meta.partitions)
        at_least: dict[int, int] = {}  # partition -> high watermark at the start (a lower bound of its end)
        for p in partitions:
            left = max(0.1, deadline - time.monotonic())
            _, at_least[p] = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=left, cached=False
            )
        ends: dict[int, int] = {}  # partition -> offset of its end, once reached
        by_partition: dict[int, list[Record]] = {p: [] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        while len(ends) < len(partitions):
            left = deadline - time.monotonic()
            if left <= 0:
                pending = sorted(set(partitions) - ends.keys())
                raise TimeoutError(f"read_topic({topic!r}): partitions {pending} not read to the end")
            for msg in consumer.consume(num_messages=10_000, timeout=min(1.0, left)):
                p, off, err = msg.partition(), msg.offset(), msg.error()
                if err is not None and err.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(err)
                if p is None or off is None:  # only error events lack them
                    continue
                if err is not None:  # end of partition
                    if p not in ends and off >= at_least[p]:
                        ends[p] = off
                    continue
                if p in ends:  # appended after the end was reached
                    continue
                raw_headers: list[tuple[str, str | bytes | None]] = msg.headers() or []  # type: ignore[assignment]
                headers = {k: _as_bytes(v) for k, v in raw_headers}
                by_partition[p].append(
                    Record(topic, p, off, _opt_bytes(msg.key()), _opt_bytes(msg.value()), headers)
                )
        return [r for p in partitions for r in by_partition[p]]
    finally:
        consumer.close()


def _as_bytes(x: str | bytes | None) -> bytes:
    """A header value as bytes (``None`` -> ``b""``)."""
    return x.encode() if isinstance(x, str) else (x or b"")


def _opt_bytes(x: str | bytes | None) -> bytes | None:
    """A key or value as bytes, ``None`` kept (no deserializer is configured, so it's bytes already)."""
    return x.encode() if isinstance(x, str) else x


def _text(x: bytes | str) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else x


_CLUSTER_TAG = re.compile(r"^pulse:\{p(\d+)\}:")


def _is_cluster(client: Any) -> bool:
    return hasattr(client, "get_primaries")


_Hashes = dict[str, dict[str, str | float]]
_Read = tuple[_Hashes, dict[str, dict[str, float]], dict[str, str], dict[str, set[int]]]


def _read_redis_all(client: Any) -> _Read:
    """Hashes, sorted sets, keys of any other type under the Pulse activity patterns, and (cluster
    layout) the partition tags each key was found under: ``{key without tag: {N, ...}}`` — for a
    communities board, ``{board:community: {N}}`` per member, the per-partition boards merged."""
    hashes: dict[str, dict[str, str | float]] = {}
    zsets: dict[str, dict[str, float]] = {}
    others: dict[str, str] = {}
    tags: dict[str, set[int]] = {}
    if _is_cluster(client):
        client.nodes_manager.initialize()  # the primaries now (a failover may have changed them)
        nodes = [client.get_redis_connection(node) for node in client.get_primaries()]
        patterns: tuple[str, ...] = ("pulse:{p*}:activity:*", "pulse:{p*}:lb:*")
    else:
        nodes, patterns = [client], ("pulse:activity:*", "pulse:lb:*")
    for node in nodes:
        found = {_text(k) for pattern in patterns for k in node.scan_iter(match=pattern, count=1000)}
        for stored in sorted(found):
            tag = _CLUSTER_TAG.match(stored)
            key = stored if tag is None else "pulse:" + stored[tag.end() :]
            kind = _text(node.type(stored))
            if kind == "hash":
                fields: dict[str, str | float] = {}
                for f, v in node.hgetall(stored).items():
                    name, text = _text(f), _text(v)
                    if name == "score":
                        try:
                            fields[name] = float(text)
                        except ValueError:
                            fields[name] = text
                    else:
                        fields[name] = text
                hashes[key] = fields
            elif kind == "zset":
                rows = {_text(m): float(s) for m, s in node.zrange(stored, 0, -1, withscores=True)}
                if tag is not None and key.startswith("pulse:lb:communities:"):
                    for member in rows:  # merged below; a community on two partitions shows twice
                        tags.setdefault(f"{key}:{member}", set()).add(int(tag.group(1)))
                    zsets.setdefault(key, {}).update(rows)
                    continue
                zsets[key] = rows
            elif kind != "none":  # "none": expired or deleted since the SCAN
                others[key] = kind
                continue
            if tag is not None:
                tags.setdefault(key, set()).add(int(tag.group(1)))
    return hashes, zsets, others, tags


def read_redis(client: Any) -> tuple[dict[str, dict[str, str | float]], dict[str, dict[str, float]]]:
    """Every ``pulse:activity:*`` hash and ``pulse:lb:*`` sorted set in Redis (found with SCAN).

    Hash fields and values are decoded to ``str``; the ``score`` field is a float.
    Sorted sets map member -> float score.  Works with or without ``decode_responses``.
    Keys of other types under those patterns are left out (:func:`assert_matches` reports them).
    """
    hashes, zsets, _, _ = _read_redis_all(client)
    return hashes, zsets


def _source_of(dead_letter: Record) -> KeyTriple:
    """(source topic, partition, offset) from a dead letter's headers (KeyError/ValueError if absent)."""
    h = dead_letter.headers
    return h["pulse.topic"].decode(), int(h["pulse.partition"]), int(h["pulse.offset"])


def dead_letters_from(records: Iterable[Record]) -> dict[KeyTriple, str]:
    """Dead letters (read from the dead-letter topic) as ``{(source topic, partition, offset): reason}``.

    Delivery is at-least-once, so copies of one source record collapse; copies that
    disagree on the reason, or a record missing a ``pulse.*`` header, raise AssertionError.
    """
    out: dict[KeyTriple, str] = {}
    for rec in records:
        try:
            k = _source_of(rec)
            reason = rec.headers["pulse.reason"].decode()
        except (KeyError, ValueError) as exc:
            raise AssertionError(
                f"dead letter at {rec.topic}[{rec.partition}]@{rec.offset} lacks a valid pulse.* header "
                f"({exc!r}); headers: {sorted(rec.headers)}"
            ) from None
        if k in out and out[k] != reason:
            raise AssertionError(f"dead letter {k} delivered twice with reasons {out[k]!r} and {reason!r}")
        out[k] = reason
    return out


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


def _short(x: Any, limit: int = 160) -> str:
    s = repr(x)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _diff_mapping(key: str, got: dict[str, Any], want: dict[str, Any], what: str) -> list[str]:
    """Differences between two flat mappings (hash fields or zset members) of one Redis key."""
    out: list[str] = []
    for name in sorted(want.keys() - got.keys()):
        out.append(f"{key}: missing {what} {name!r} (expected {want[name]!r})")
    for name in sorted(got.keys() - want.keys()):
        out.append(f"{key}: unexpected {what} {name!r} = {got[name]!r}")
    for name in sorted(want.keys() & got.keys()):
        g, e = got[name], want[name]
        # Floats (scores) compare as floats; everything else (counts as strings) by type and value.
        same = (isinstance(g, float) and g == e) if isinstance(e, float) else (type(g) is type(e) and g == e)
        if not same:
            out.append(f"{key}: {what} {name!r} is {g!r}, expected {e!r}")
    return out


def assert_matches(
    client: Any,
    expected: Expected,
    dead_letter_records: Iterable[Record] | None = None,
    *,
    max_shown: int = 20,
) -> None:
    """Compare Redis (and optionally the dead-letter topic) with ``expected``, exactly.

    Every expected key must exist with exactly the expected fields/members, no other
    ``pulse:activity:*``/``pulse:lb:*`` key may exist, counts must be equal strings and
    scores equal floats.  With ``dead_letter_records`` (the dead-letter topic's records),
    the set of dead letters must equal ``expected.dead_letters`` with the same reasons,
    each carrying the original key and value.  Raises AssertionError with the first
    ``max_shown`` differences and a count per kind.
    """
    hashes, zsets, others, tags = _read_redis_all(client)
    diffs: list[str] = []
    counts = {
        "missing keys": 0, "unexpected keys": 0, "differing keys": 0, "misplaced keys": 0,
        "dead-letter differences": 0,
    }  # fmt: skip
    if _is_cluster(client):  # every key under the tag of its community's partition, exactly once
        home_tags = {key_id(c): parts for c, parts in expected.homes.items()}
        for key, found in sorted(tags.items()):
            if key.startswith("pulse:lb:communities:"):
                community = key.split(":", 5)[5]
                want = expected.homes.get(community, set())
            else:
                want = home_tags.get(key.split(":")[-3], set())  # pulse:activity|lb:members:{c}:{W}s:{start}
            if len(want) != 1 or found != want:
                counts["misplaced keys"] += 1
                diffs.append(f"{key}: stored under partition tags {sorted(found)}, expected {sorted(want)}")

    for kind, got_all, want_all, what in (
        ("hash", hashes, expected.hashes, "field"),
        ("zset", zsets, expected.zsets, "member"),
    ):
        for key in sorted(want_all.keys() - got_all.keys()):
            counts["missing keys"] += 1
            actual = f" (it is a {others[key]})" if key in others else ""
            diffs.append(f"missing {kind} {key}{actual}: expected {_short(want_all[key])}")
        for key in sorted(got_all.keys() - want_all.keys()):
            counts["unexpected keys"] += 1
            diffs.append(f"unexpected {kind} {key} = {_short(got_all[key])}")
        for key in sorted(want_all.keys() & got_all.keys()):
            d = _diff_mapping(key, got_all[key], want_all[key], what)
            if d:
                counts["differing keys"] += 1
                diffs.extend(d)
    for key in sorted(others.keys() - expected.hashes.keys() - expected.zsets.keys()):
        counts["unexpected keys"] += 1
        diffs.append(f"unexpected {others[key]} key {key}")

    if dead_letter_records is not None:
        dl_records = list(dead_letter_records)
        got_dl = dead_letters_from(dl_records)
        want_dl = expected.dead_letters
        dl_diffs: list[str] = []
        for k in sorted(want_dl.keys() - got_dl.keys()):
            detail = expected.dead_letter_details.get(k, "")
            dl_diffs.append(f"missing dead letter {k}: expected reason {want_dl[k]!r} ({detail})")
        for k in sorted(got_dl.keys() - want_dl.keys()):
            dl_diffs.append(f"unexpected dead letter {k} with reason {got_dl[k]!r}")
        for k in sorted(want_dl.keys() & got_dl.keys()):
            if got_dl[k] != want_dl[k]:
                detail = expected.dead_letter_details.get(k, "")
                dl_diffs.append(f"dead letter {k}: reason {got_dl[k]!r}, expected {want_dl[k]!r} ({detail})")
        for rec in dl_records:
            k = _source_of(rec)
            original = expected.dead_letter_payloads.get(k)
            if original is not None and original != (rec.key, rec.value):
                want_key, want_value = original
                dl_diffs.append(
                    f"dead letter {k} at offset {rec.offset}: key/value not the original "
                    f"(got {_short(rec.key, 60)}/{_short(rec.value, 80)}, "
                    f"expected {_short(want_key, 60)}/{_short(want_value, 80)})"
                )
        counts["dead-letter differences"] = len(dl_diffs)
        diffs.extend(dl_diffs)

    if diffs:
        summary = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
        shown = "\n  ".join(diffs[:max_shown])
        more = f"\n  ... and {len(diffs) - max_shown} more" if len(diffs) > max_shown else ""
        raise AssertionError(
            f"Redis/dead letters differ from the reference ({summary}; "
            f"expected {len(expected.hashes)} hashes, {len(expected.zsets)} zsets, "
            f"{len(expected.dead_letters)} dead letters):\n  {shown}{more}"
        )
