"""Producers: one per kind of message (posts, reactions, RSVPs, late and malformed), each
returning a ready :class:`~streams.simulator.base.SimMessage`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from streams.simulator.base import HOUR_MS, MALFORMED_KINDS, TOPICS, SimMessage, _dumps, _json
from streams.simulator.phrases import (
    EDGE_TEXTS,
    EN,
    KIND_VALUES,
    N_KINDS,
    N_TONES,
    N_TOPICS,
    NEED,
    NEU,
    OFFER,
    POOL_SIZE,
    POST,
    REPLY,
    RESOLVED,
    TOPIC_TAGS,
)
from streams.simulator.world import REACTIONS_BY_TONE, TABLE_SIZE, Community, Meetup

if TYPE_CHECKING:  # a type only: the engine imports this module
    from streams.simulator.engine import Simulator

# --------------------------------------------------------------------------------------------------
# Producers: one per kind of message, each returns a ready SimMessage
# --------------------------------------------------------------------------------------------------
# Hot producers draw one ``getrandbits`` and slice it into fields (member, tone, text...): one C
# call instead of ``random()`` + multiply + ``int()`` per decision.  They write the JSON with one
# f-string from pre-encoded parts (texts, tags and community ids are JSON-encoded once; ids and
# timestamps are generated JSON-safe), which costs half of a dict plus ``orjson.dumps``.  Both
# are what make 150k+ events/s possible.  Probabilities are therefore in units of 1/1024.

_new = tuple.__new__  # SimMessage(...) without the NamedTuple's Python-level __new__
RECENT_KEEP = 400  # recent posts kept per community as reply / reaction targets
OPEN_NEEDS_KEEP = 200  # needs nobody resolved are eventually forgotten
KIND_JSON = tuple(f',"kind":"{k}"' for k in KIND_VALUES)
EDGE_JSON = tuple(_json(t) for t in EDGE_TEXTS)


class _PostProducer:
    """Posts, replies, needs, offers and resolutions of needs."""

    # Cumulative thresholds in 1/1024: need, offer, resolved (if a need is open), reply, else post.
    T_NEED, T_OFFER, T_RESOLVED, T_REPLY = 92, 164, 195, 461

    def __init__(self, sim: Simulator) -> None:
        self.bits = sim.rng.getrandbits
        self.ts_json = sim.fmt_ts.json
        self.prefix = sim.id_prefix
        self.pools = sim.phrasebank.encoded
        self.edge_cut = round(sim.config.edge_text_rate * 1024)

    def produce(self, c: Community, ts: int, eid: str, k: int) -> SimMessage:
        bits = self.bits
        a = bits(29)  # 0-9 kind, 10-16 tone, 17-23 language, 24-28 text
        b = bits(30)  # 0-19 reply target (0-6 topic, 0-9 need), 20-29 edge-text test
        r = a & 1023
        reply = ""
        if r < self.T_NEED:
            kind, topic = NEED, c.topic_table[b & 127]
        elif r < self.T_OFFER:
            kind, topic = OFFER, c.topic_table[b & 127]
        elif r < self.T_RESOLVED and c.open_needs:
            needs = c.open_needs
            kind = RESOLVED
            reply_to, topic = needs.pop(((b & 1023) * len(needs)) >> 10)
            reply = f',"reply_to":"{reply_to}"'
        elif r < self.T_REPLY and c.recent:
            recent = c.recent  # product of two uniforms: mostly the newest posts get replies
            kind = REPLY
            reply_to, topic, _ = recent[-1 - (((b & 1023) * ((b >> 10) & 1023) * len(recent)) >> 20)]
            reply = f',"reply_to":"{reply_to}"'
        else:
            kind, topic = POST, c.topic_table[b & 127]
        tone = c.tone_table[(a >> 10) & 127]
        text, tags = self.pools[
            ((c.lang_table[(a >> 17) & 127] * N_KINDS + kind) * N_TOPICS + topic) * N_TONES + tone
        ][a >> 24]
        if b >> 20 < self.edge_cut:
            text, tags = EDGE_JSON[(bits(8) * len(EDGE_JSON)) >> 8], ',"tags":[]'
        if c.omit_defaults:  # this publisher leaves out kind=post and empty tags
            kind_json = "" if kind in (POST, REPLY) else KIND_JSON[kind]
            if tags == ',"tags":[]':
                tags = ""
        else:
            kind_json = KIND_JSON[kind]
        pid = f"{self.prefix}p{k}"
        recent = c.recent
        recent.append((pid, topic, tone))
        if len(recent) > RECENT_KEEP:
            del recent[: RECENT_KEEP // 2]
        if kind == NEED:
            c.open_needs.append((pid, topic))
            if len(c.open_needs) > OPEN_NEEDS_KEEP:
                del c.open_needs[: OPEN_NEEDS_KEEP // 2]
        value = (
            f'{{"id":"{eid}"{c.json_head}{c.member_table[bits(16) & c.member_mask]}",'
            f'"ts":{self.ts_json(ts, c) if c.ts_style else ts},"post":"{pid}",'
            f'"text":{text}{kind_json}{tags}{reply}}}'
        )
        return _new(SimMessage, ("posts", c.key, value.encode(), None))


class _ReactionProducer:
    """Reactions to recent posts of the same community; the target's tone shapes the reaction."""

    def __init__(self, sim: Simulator) -> None:
        self.bits = sim.rng.getrandbits
        self.ts_json = sim.fmt_ts.json

    def produce(self, c: Community, ts: int, eid: str, k: int) -> SimMessage | None:
        recent = c.recent
        if not recent:
            return None
        b = self.bits(27)  # 0-19 target (product of two uniforms: recent posts), 20-26 reaction
        post, _, tone = recent[-1 - (((b & 1023) * ((b >> 10) & 1023) * len(recent)) >> 20)]
        value = (
            f'{{"id":"{eid}"{c.json_head}{c.member_table[self.bits(16) & c.member_mask]}",'
            f'"ts":{self.ts_json(ts, c) if c.ts_style else ts},"post":"{post}",'
            f'"reaction":"{REACTIONS_BY_TONE[tone][b >> 20]}"}}'
        )
        return _new(SimMessage, ("reactions", c.key, value.encode(), None))


class _RsvpProducer:
    """Meetup RSVPs: going/maybe/declined before the start, cancelled by some, attended after it."""

    CAPACITIES = (20, 30, 40, 50, 80, 100, 150, 200)
    T_ATTEND = 461  # /1024: a check-in, when a started meetup has members who said going
    T_NEW_MEETUP = 20  # /1024: announce another meetup although some are open
    OVER_MS = 4 * HOUR_MS  # a meetup is over (no more check-ins) this long after its start
    CLOSE_MS = 15 * 60_000  # RSVPs close this long before the start

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.rng = sim.rng
        self.bits = sim.rng.getrandbits
        self.fmt = sim.fmt_ts
        self.settle_ms = sim.config.disorder_ms  # check-ins only once jitter cannot pull ts before the start

    def produce(self, c: Community, ts: int, eid: str, k: int) -> SimMessage:
        a = self.bits(30)  # 0-9 check-in test, 10-19 status, 20-29 which meetup
        b = self.bits(26)  # 0-15 member, 16-25 new-meetup test
        meetups = c.meetups
        if meetups and meetups[0].starts_at + self.OVER_MS < ts:
            c.meetups = meetups = [m for m in meetups if m.starts_at + self.OVER_MS >= ts]
        if meetups and meetups[0].starts_at + self.settle_ms <= ts and a & 1023 < self.T_ATTEND:
            started = [m for m in meetups if m.going and m.starts_at + self.settle_ms <= ts]
            if started:
                m = started[((a >> 20) * len(started)) >> 10]
                while m.going:
                    member = m.going.pop()
                    if m.status.get(member) == "going":
                        m.status[member] = "attended"
                        return self._emit(c, ts, eid, m, member, "attended")
        upcoming = [m for m in meetups if m.starts_at > ts + self.CLOSE_MS]
        if not upcoming or (len(upcoming) < 4 and b >> 16 < self.T_NEW_MEETUP):
            upcoming.append(self._new_meetup(c, ts, k))
        m = upcoming[((a >> 20) * len(upcoming)) >> 10]
        member = c.member_table[b & c.member_mask]
        before = m.status.get(member)
        r = (a >> 10) & 1023
        if before == "going":
            status = "cancelled" if r < 512 else "maybe"
        elif before == "maybe":
            status = "going" if r < 614 else "declined"
        else:
            status = "going" if r < 614 else "maybe" if r < 870 else "declined"
        if status == "going":
            if m.capacity is not None and len(m.going) >= m.capacity:
                status = "maybe"  # full: the platform wait-lists
            else:
                m.going.append(member)
        m.status[member] = status
        return self._emit(c, ts, eid, m, member, status)

    def _new_meetup(self, c: Community, ts: int, k: int) -> Meetup:
        rng = self.rng
        # 40% start within hours (so check-ins happen inside a typical span), the rest within two weeks.
        ahead = rng.randint(1, 5) * HOUR_MS if rng.random() < 0.4 else rng.randint(12, 14 * 24) * HOUR_MS
        starts_at = (ts + ahead) // 1_800_000 * 1_800_000 + 1_800_000  # on a half hour
        topic = c.topic_table[rng.randrange(TABLE_SIZE)]
        tags = ["meetup", *rng.sample(TOPIC_TAGS[topic], 2)]
        capacity = None if rng.random() < 0.1 else rng.choice(self.CAPACITIES)
        cap = "" if capacity is None else f',"capacity":{capacity}'
        tail = f',"meetup_tags":{_json(tags)},"starts_at":{self.fmt.json(starts_at, c)}{cap}}}'
        m = Meetup(f"{self.sim.id_prefix}m{k}", starts_at, capacity, tags, tail)
        c.meetups.append(m)
        c.meetups.sort(key=lambda x: x.starts_at)
        return m

    def _emit(self, c: Community, ts: int, eid: str, m: Meetup, member: str, status: str) -> SimMessage:
        value = (
            f'{{"id":"{eid}"{c.json_head}{member}","ts":{self.fmt.json(ts, c)},'
            f'"meetup":"{m.id}","status":"{status}"{m.json_tail}'
        )
        return _new(SimMessage, ("rsvps", c.key, value.encode(), None))


class _LateProducer:
    """Valid events stamped ``late_by_ms``+ behind their community's newest event: must be dropped late.

    The community's newest event is in the same partition (same key), so whatever watermark the
    pipeline keeps per partition is at least that far ahead.  Late events touch no state (no reply
    target, no meetup), so they do not change the rest of the stream.
    """

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.rnd = sim.rng.random
        self.late_by = sim.config.late_by_ms
        self.pools = sim.phrasebank.pools

    def produce(self, c: Community, eid: str, k: int) -> SimMessage | None:
        if c.last_ts < 0:
            return None
        rnd = self.rnd
        ts = c.last_ts - self.late_by - int(rnd() * self.late_by)
        member = c.member_table[int(rnd() * len(c.member_table))]
        tsv = self.sim.fmt_ts(ts, c)
        if c.recent and rnd() < 0.6:
            post, _, tone = c.recent[int(rnd() * len(c.recent))]
            reaction = REACTIONS_BY_TONE[tone][int(rnd() * TABLE_SIZE)]
            d: dict[str, Any] = {"id": eid, "community": c.id, "member": member, "ts": tsv, "post": post}
            d["reaction"] = reaction
            return SimMessage("reactions", c.key, _dumps(d), "late")
        topic = c.topic_table[int(rnd() * TABLE_SIZE)]
        pool = self.pools[((c.lang * N_KINDS + POST) * N_TOPICS + topic) * N_TONES + NEU]
        text, tags = pool[int(rnd() * POOL_SIZE)]
        d = {"id": eid, "community": c.id, "member": member, "ts": tsv, "post": f"{self.sim.id_prefix}p{k}"}
        d.update(text=text, kind="post", tags=tags)
        return SimMessage("posts", c.key, _dumps(d), "late")


class _MalformedProducer:
    """Hostile messages, one category after another in shuffled rounds so every category shows up."""

    REQUIRED: ClassVar[dict[str, tuple[str, ...]]] = {
        "posts": ("id", "community", "member", "ts", "post", "text"),
        "reactions": ("id", "community", "member", "ts", "post", "reaction"),
        "rsvps": ("id", "community", "member", "ts", "meetup", "status"),
    }
    STRING_FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "posts": ("id", "community", "member", "post", "text"),
        "reactions": ("id", "community", "member", "post"),
        "rsvps": ("id", "community", "member", "meetup"),
    }

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.rng = sim.rng
        self.deck: list[str] = []
        self.makers: dict[str, Callable[[str, dict[str, Any], int], tuple[str, bytes]]] = {
            name: getattr(self, f"_{name}") for name in MALFORMED_KINDS
        }

    def produce(self, c: Community, ts: int, eid: str, k: int) -> SimMessage:
        if not self.deck:
            self.deck = list(MALFORMED_KINDS)
            self.rng.shuffle(self.deck)
        name = self.deck.pop()
        topic = TOPICS[self.rng.randrange(3)]
        topic, value = self.makers[name](topic, self._valid_dict(c, topic, ts, eid, k), ts)
        self.sim.stats[f"malformed:{name}"] += 1
        return SimMessage(topic, c.key, value, MALFORMED_KINDS[name])

    def oversized(self, c: Community, ts: int, eid: str, k: int, size: int) -> SimMessage:
        """A well-formed post whose text alone is ``size`` bytes: rejected by size before parsing."""
        d = self._valid_dict(c, "posts", ts, eid, k)
        d["text"] = "x" * size
        return SimMessage("posts", c.key, _dumps(d), "oversized")

    def _valid_dict(self, c: Community, topic: str, ts: int, eid: str, k: int) -> dict[str, Any]:
        """A valid event (integer ts) that each category then breaks in exactly one way."""
        d: dict[str, Any] = {"id": eid, "community": c.id, "member": c.member_table[0], "ts": ts}
        prefix = self.sim.id_prefix
        if topic == "posts":
            d.update(post=f"{prefix}p{k}", text="malformed on purpose", kind="post", tags=["ai"])
        elif topic == "reactions":
            d.update(post=c.recent[-1][0] if c.recent else f"{prefix}p0", reaction="like")
        else:
            d.update(meetup=f"{prefix}m0", status="going", meetup_tags=["meetup"])
            d.update(starts_at=ts + HOUR_MS, capacity=50)
        return d

    # One method per MALFORMED_KINDS entry: (topic, valid dict, ts) -> (topic, bytes).

    def _random_bytes(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        first = bytes([0x80 + self.rng.randrange(128)])  # never a JSON value start, never whitespace
        return topic, first + self.rng.randbytes(self.rng.randrange(0, 300))

    def _invalid_utf8(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        raw = _dumps(d)
        bad = self.rng.choice((b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xe4\xb8", b"\x80"))
        at = raw.index(b'"member":"') + 10  # inside a string value: only the encoding is wrong
        return topic, raw[:at] + bad + raw[at:]

    def _truncated_json(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        raw = _dumps(d)
        return topic, raw[: self.rng.randrange(1, len(raw))]

    def _bad_json_syntax(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        raw = _dumps(d)
        variants = (
            raw.replace(f'"ts":{ts}'.encode(), b'"ts":NaN'),
            b"\xef\xbb\xbf" + raw,  # UTF-8 BOM
            raw[:-1] + b",}",  # trailing comma
            raw.replace(b'"', b"'"),  # single quotes
            raw[:-1] + b',"x":"\\ud800"}',  # lone surrogate escape
            raw + raw,  # two documents in one message
            b"",
            b"  \n ",
            raw[:-1] + b"/* comment */}",
        )
        return topic, self.rng.choice(variants)

    def _deep_nesting(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        depth = 5000
        r = self.rng.randrange(3)
        if r == 0:
            return topic, b"[" * depth + b"]" * depth
        if r == 1:
            return topic, b'{"a":' * depth + b"1" + b"}" * depth
        return topic, _dumps(d)[:-1] + b',"extra":' + b"[" * depth + b"]" * depth + b"}"

    def _not_an_object(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        values = (
            b"[" + _dumps(d) + b"]",
            b"42",
            str(ts).encode(),
            b'"hello"',
            b"null",
            b"true",
            b"[]",
            b"-0.5",
        )
        return topic, self.rng.choice(values)

    def _missing_field(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        del d[self.rng.choice(self.REQUIRED[topic])]
        return topic, _dumps(d)

    def _wrong_type(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        # No integral floats for ts or capacity: the JSON Schema accepts 1.0 as an integer.
        r = self.rng.randrange(4)
        if r == 0:
            d[self.rng.choice(self.STRING_FIELDS[topic])] = self.rng.randrange(1, 10**6)
        elif r == 1:
            d["ts"] = self.rng.choice((True, [ts], {"ms": ts}, None))
        elif r == 2 and topic == "rsvps":
            d["capacity"] = self.rng.choice(("50", 50.5, True))
        elif r == 2:
            d["member"] = None
        elif topic == "posts":
            d["tags"] = self.rng.choice(("ai", [1, 2], [None], {"a": 1}))
        else:
            d["id"] = [d["id"]]
        return topic, _dumps(d)

    def _unknown_enum(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        if topic == "reactions":
            d["reaction"] = self.rng.choice(("meh", "🔥", "LIKE", "dislike", "", "clap"))
        elif topic == "rsvps":
            d["status"] = self.rng.choice(("interested", "Going", "no", "waitlist", ""))
        else:
            d["kind"] = self.rng.choice(("question", "announcement", "NEED", "", "ask"))
        return topic, _dumps(d)

    def _empty_id(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        d[self.rng.choice(("id", "id", "community", "member", "meetup" if topic == "rsvps" else "post"))] = ""
        return topic, _dumps(d)

    def _over_limit(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        r = self.rng.randrange(3)
        if topic == "posts" and r == 0:
            d["text"] = self.rng.choice(("y", "长")) * 10_001
        elif topic == "posts" and r == 1:
            d["tags"] = [f"t{i}" for i in range(33)]
        elif topic == "rsvps" and r < 2:
            d["capacity"] = self.rng.choice((-1, 1_000_001))
        else:
            d[self.rng.choice(("id", "member", "community"))] = "z" * 257
        return topic, _dumps(d)

    def _ts_year_9999(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        d["ts"] = self.rng.choice(
            ("9999-12-31T23:59:59Z", "9999-01-01T00:00:00.000+00:00", 253_402_300_799_000)
        )
        return topic, _dumps(d)

    def _ts_before_1970(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        d["ts"] = self.rng.choice(("1969-07-20T20:17:40Z", "0001-01-01T00:00:00Z", -1, -86_400_000))
        return topic, _dumps(d)

    def _ts_naive(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        rfc = str(self.sim.fmt_ts(ts, _UTC_MS))
        d["ts"] = rfc[:-1] if self.rng.random() < 0.5 else rfc[:-5]  # ...T12:34:56.789 or ...T12:34:56
        return topic, _dumps(d)

    def _ts_not_rfc3339(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        bad = (
            "yesterday",
            "2026-02-30T00:00:00Z",
            "",
            "12/31/2025 10:00 PM",
            str(ts),
            "2026-01-01T10:00:00+25:00",
        )
        d["ts"] = self.rng.choice(bad)
        return topic, _dumps(d)

    def _rsvp_bad_starts_at(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        d = {k: v for k, v in d.items() if k in ("id", "community", "member", "ts")}
        d.update(meetup=f"{self.sim.id_prefix}m0", status="going", meetup_tags=["meetup"], capacity=50)
        rfc = str(self.sim.fmt_ts(ts + HOUR_MS, _UTC_MS))
        d["starts_at"] = self.rng.choice((rfc[:-1], "next Tuesday", "2026-13-01T18:00:00Z"))
        return "rsvps", _dumps(d)


_UTC_MS = Community("utc", b"utc", EN, 0.0, 0, "Z", 1, False)
"""A formatting profile (RFC 3339, ms, Z) for the malformed producer's timestamp variants."""


