"""Issue #7 end to end: needs/offers and RSVPs published to the real broker, a real ``pulse worker``
running ``matching,recommendations``, and the documented Redis keys and ``match-candidates``
messages checked against expectations computed here, not read back from the operator.

The expected scores come from :class:`Reference`, a re-statement of the documented scoring formula
(``streams/operators/matching.py``) on top of the shared text features; which pairs match, which
keys exist and which meetups are recommended are written out by hand from the documented rules.
The whole stream is published in event-time order (one watermark per partition: nothing is late),
and the TTL is exercised in event time (the settings have no match TTL knob: 14 days it is).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis

from online_models.text_features import extract_terms, normalize_tag
from online_models.text_stage import informativeness
from streams.config import Settings
from streams.operators.matching import MatchConfig
from streams.publisher import Outgoing, Publisher
from streams.topics import ensure_topics
from tests import reference
from tests.workers import pulse, stop, wait_caught_up

pytestmark = pytest.mark.slow

SECOND, MINUTE, HOUR, DAY = 1_000, 60_000, 3_600_000, 86_400_000
TTL_MS = 14 * DAY  # MatchConfig's documented default; Settings cannot change it
CFG = MatchConfig()
MATCH, MEET = "acme", "meetups"  # the two communities

TEXTS: dict[str, tuple[str, tuple[str, ...]]] = {  # post id → (text, tags)
    "N1": ("Looking for a React frontend engineer for our fintech MVP", ("react", "Frontend", "fintech")),
    "O1": ("资深React前端工程师，可接兼职合同工作", ("React", "frontend", "contract")),
    "O2": ("Offering bookkeeping and tax filing for small bakeries", ("accounting",)),
    "O3": ("React frontend engineer available for fintech MVP work", ("react", "frontend", "fintech")),
    "R1": ("Found our engineer, thanks everyone!", ()),
    "O4": ("Senior React frontend engineer available for contract work", ("react", "frontend")),
    "N2": ("Need a Rust backend developer for our payments API", ("rust", "payments")),
    "O5": ("Rust backend developer with payments experience, open to projects", ("rust",)),
    "N3": ("Hiring a Rust backend developer for payments systems", ("rust", "hiring")),
    "O6": ("Rust backend developer for payments, remote", ("rust", "payments")),
    "P1": ("Slides from the LLM evals night", ("ai", "llm")),
    "P2": ("See you all next week!", ()),
}


@dataclass(frozen=True)
class Doc:
    """One post as published; ``tag_keys``/``terms`` are the features the documented scorer uses."""

    pid: str
    member: str
    kind: str
    ts: int
    text: str
    tags: tuple[str, ...] = ()
    reply_to: str | None = None
    community: str = MATCH

    @property
    def tag_keys(self) -> frozenset[str]:
        kinds = {"need", "offer", "resolved", "post"}
        return frozenset(f"#{t}" for t in map(normalize_tag, self.tags) if t and t not in kinds)

    @property
    def terms(self) -> frozenset[str]:
        return frozenset(extract_terms(self.text))

    def message(self) -> Outgoing:
        value: dict[str, Any] = {
            "id": f"ev-{self.pid}", "community": self.community, "member": self.member, "ts": self.ts,
            "post": self.pid, "text": self.text, "kind": self.kind, "tags": list(self.tags),
        }  # fmt: skip
        if self.reply_to:
            value["reply_to"] = self.reply_to
        return Outgoing("posts", self.community.encode(), orjson.dumps(value))


def post(
    pid: str, member: str, kind: str, ts: int, reply_to: str | None = None, community: str = MATCH
) -> Doc:
    text, tags = TEXTS[pid]
    return Doc(pid, member, kind, ts, text, tags, reply_to, community)


class Reference:
    """The documented score, recomputed: binary TF-IDF cosines with ``idf = ln((1+n)/(1+df)) + 1``
    (text terms: times their wordfreq informativeness)
    learned from the community's needs and offers so far (the new one included); a post's norms are
    those of when it opened, the dot product uses the newcomer's weights; relevance =
    w_tags·cos(tags) + w_text·cos(terms) (one cosine takes both weights when a side has no tags or
    no terms; × tags_only_factor when both have both and share no term), discounted by
    (1 - f^shared keys); + w_recency·recency.  Track records stay 0 here (no thanks/insightful
    reactions, the resolved need had no replies)."""

    def __init__(self) -> None:
        self.df: Counter[str] = Counter()
        self.n = 0
        self.norms: dict[str, tuple[float, float]] = {}
        self.weights: dict[str, Callable[[str], float]] = {}

    def learn(self, doc: Doc) -> None:
        self.df.update(doc.tag_keys | doc.terms)
        self.n += 1
        n, df = self.n, dict(self.df)
        # Tags weigh their IDF; text terms their IDF x wordfreq informativeness (issue 18).
        def weight(k: str) -> float:
            idf = math.log((1 + n) / (1 + df.get(k, 0))) + 1
            return idf if k.startswith("#") else idf * informativeness(k)

        self.weights[doc.pid] = weight
        self.norms[doc.pid] = (
            math.sqrt(sum(weight(k) ** 2 for k in doc.tag_keys)),
            math.sqrt(sum(weight(k) ** 2 for k in doc.terms)),
        )

    def score(self, new: Doc, cand: Doc) -> tuple[float, list[str], list[str]]:
        """(score, shared tags, matched terms) of ``new`` arriving while ``cand`` is open."""
        w = self.weights[new.pid]
        (tn_new, xn_new), (tn_cand, xn_cand) = self.norms[new.pid], self.norms[cand.pid]
        shared_tags, shared_terms = new.tag_keys & cand.tag_keys, new.terms & cand.terms
        tag_cos = min(1.0, sum(w(k) ** 2 for k in shared_tags) / (tn_new * tn_cand)) if shared_tags else 0.0
        text_cos = (
            min(1.0, sum(w(k) ** 2 for k in shared_terms) / (xn_new * xn_cand)) if shared_terms else 0.0
        )
        if not (tn_new and tn_cand):
            relevance = (CFG.w_tags + CFG.w_text) * text_cos
        elif not (xn_new and xn_cand):
            relevance = (CFG.w_tags + CFG.w_text) * tag_cos
        else:
            relevance = CFG.w_tags * tag_cos + CFG.w_text * text_cos
            if not text_cos:  # both have text, no shared term: only the tags agree
                relevance *= CFG.tags_only_factor
        relevance *= 1 - CFG.single_key_factor ** (len(shared_tags) + len(shared_terms))
        assert relevance >= CFG.min_relevance, (new.pid, cand.pid, relevance)
        recency = max(0.0, 1 - (new.ts - min(new.ts, cand.ts)) / TTL_MS)
        score = round(relevance + CFG.w_recency * recency, 6)
        terms = sorted(shared_terms, key=lambda t: (-w(t), t))[:8]
        return score, sorted(k[1:] for k in shared_tags), terms


def publish(settings: Settings, messages: Iterable[Outgoing]) -> None:
    Publisher(settings).publish(list(messages))


def rsvp(eid: str, member: str, ts: int, meetup: str, status: str, **meetup_fields: Any) -> Outgoing:
    value = {"id": eid, "community": MEET, "member": member, "ts": ts, "meetup": meetup, "status": status}
    return Outgoing("rsvps", MEET.encode(), orjson.dumps({**value, **meetup_fields}))


def reaction(eid: str, member: str, ts: int, post: str, kind: str) -> Outgoing:
    value = {"id": eid, "community": MEET, "member": member, "ts": ts, "post": post, "reaction": kind}
    return Outgoing("reactions", MEET.encode(), orjson.dumps(value))


def zsets(client: redis.Redis, pattern: str) -> dict[str, dict[str, float]]:
    """Every sorted set matching ``pattern``, keyed by the key's last segment."""
    out = {}
    for key in client.scan_iter(pattern, count=1000):
        out[key.decode().rsplit(":", 1)[1]] = {
            m.decode(): s for m, s in client.zrange(key, 0, -1, withscores=True)
        }
    return out


def candidates_topic(settings: Settings) -> list[tuple[bytes | None, dict[str, Any]]]:
    """The ``match-candidates`` topic, read whole with confluent-kafka."""
    records = reference.read_topic(settings.kafka_bootstrap, settings.topic("match-candidates"))
    return [(r.key, orjson.loads(r.value or b"null")) for r in records]


def test_matches_resolve_expire_and_meetup_recommendations(make_settings, redis_client, tmp_path):
    settings = make_settings(partitions=2, operators="matching,recommendations")
    ensure_topics(settings)
    worker = pulse("worker", settings=settings, log=tmp_path / "worker.log")
    ref = Reference()
    sent: list[Doc] = []
    expected_messages: list[tuple[bytes, dict[str, Any]]] = []

    def step(docs: list[Doc], pairs: dict[str, list[str]] | None = None) -> None:
        """Publish ``docs`` and wait until applied; ``pairs``: newcomer → the open posts it must meet."""
        by_pid = {d.pid: d for d in sent + docs}
        for doc in docs:
            if doc.kind in ("need", "offer"):
                assert len(doc.tag_keys | doc.terms) <= CFG.max_query_keys  # else the scorer keeps a subset
                ref.learn(doc)
            for other in (pairs or {}).get(doc.pid, []):
                score, tags, terms = ref.score(doc, by_pid[other])
                need, offer = (doc, by_pid[other]) if doc.kind == "need" else (by_pid[other], doc)
                expected_messages.append((MATCH.encode(), {
                    "need": need.pid, "offer": offer.pid, "need_member": need.member,
                    "offer_member": offer.member, "community": MATCH, "score": score,
                    "reasons": {"shared_tags": tags, "matched_terms": terms}, "ts": doc.ts,
                }))  # fmt: skip
        sent.extend(docs)
        publish(settings, (d.message() for d in docs))
        wait_caught_up(redis_client, settings, timeout=60, proc=worker)

    def score_of(need: str, offer: str) -> float:
        return next(v["score"] for _, v in expected_messages if (v["need"], v["offer"]) == (need, offer))

    now = int(time.time() * 1000) // MINUTE * MINUTE - MINUTE
    t1, t2 = now - 15 * DAY, now  # the first posts are 15 days old in event time: past the 14-day TTL at t2
    try:
        # 1. A need, a Chinese offer that meets it, an unrelated offer and the need's author's own offer.
        need, offer = post("N1", "ann", "need", t1), post("O1", "bob", "offer", t1 + MINUTE)
        unrelated, own = (
            post("O2", "cat", "offer", t1 + 2 * MINUTE),
            post("O3", "ann", "offer", t1 + 3 * MINUTE),
        )
        assert not (unrelated.tag_keys | unrelated.terms) & (need.tag_keys | need.terms)
        assert {"react", "frontend", "engineer"} <= offer.terms & need.terms  # via the zh→en glossary
        step([need, offer, unrelated, own], {"O1": ["N1"]})
        s1 = score_of("N1", "O1")
        assert zsets(redis_client, f"pulse:matches:{MATCH}:*") == {"N1": {"O1": s1}, "O1": {"N1": s1}}
        for key in ("N1", "O1"):
            assert TTL_MS // 1000 - 600 < redis_client.ttl(f"pulse:matches:{MATCH}:{key}") <= TTL_MS // 1000
        got = candidates_topic(settings)
        assert got == expected_messages, got
        assert got[0][1]["reasons"]["shared_tags"] == ["frontend", "react"]
        assert {"react", "frontend", "engineer"} <= set(got[0][1]["reasons"]["matched_terms"])

        # 2. A resolved reply closes the need: both keys go, a later matching offer meets nothing.
        step(
            [
                post("R1", "ann", "resolved", t1 + 4 * MINUTE, reply_to="N1"),
                post("O4", "eve", "offer", t1 + 5 * MINUTE),
            ]
        )
        assert zsets(redis_client, f"pulse:matches:{MATCH}:*") == {}
        assert candidates_topic(settings) == expected_messages

        # 3. TTL: N2 and O5 match 15 days before t2, N3 13 days before; at t2 a new offer meets N3 only.
        n2, o5 = post("N2", "fay", "need", t1 + 6 * MINUTE), post("O5", "gus", "offer", t1 + 7 * MINUTE)
        step([n2, o5, post("N3", "ivy", "need", t2 - 13 * DAY)], {"O5": ["N2"], "N3": ["O5"]})
        s2, s3 = score_of("N2", "O5"), score_of("N3", "O5")
        assert zsets(redis_client, f"pulse:matches:{MATCH}:*") == {
            "N2": {"O5": s2}, "N3": {"O5": s3}, "O5": {"N2": s2, "N3": s3},
        }  # fmt: skip
        step([post("O6", "hal", "offer", t2)], {"O6": ["N3"]})
        s4 = score_of("N3", "O6")
        assert zsets(redis_client, f"pulse:matches:{MATCH}:*") == {"N3": {"O6": s4}, "O6": {"N3": s4}}
        # EXPIRE = seconds of event time N3 has left: 14 - 13 days.
        assert DAY // 1000 - 30 <= redis_client.ttl(f"pulse:matches:{MATCH}:N3") <= DAY // 1000
        got = candidates_topic(settings)
        assert got == expected_messages, got
        assert all("O3" not in (v["need"], v["offer"]) for _, v in got)  # never the author's own offer

        # 4. Recommendations: upcoming (event time), not full, not answered by the member.
        t3 = t2 + SECOND
        meetups = {  # id → (starts_at, tags, capacity)
            "m-ai": (t3 + 2 * DAY, ["ai", "llm"], 50),
            "m-web": (t3 + 3 * DAY, ["react", "frontend"], None),
            "m-full": (t3 + DAY, ["ai"], 1),
            "m-past": (t3 - 3 * HOUR, ["ai"], None),
            "m-soon": (t3 + 15 * SECOND, ["ai"], None),  # upcoming now, started before step 4b
        }

        def answer(member: str, ts: int, mid: str, status: str) -> Outgoing:
            starts, tags, cap = meetups[mid]
            extra = {"capacity": cap} if cap is not None else {}
            return rsvp(
                f"{member}-{mid}", member, ts, mid, status, starts_at=starts, meetup_tags=tags, **extra
            )

        hosts = [
            answer(f"host{i}", t3 + i * SECOND, mid, "attended" if mid == "m-past" else "going")
            for i, mid in enumerate(meetups)
        ]
        tagged = post("P1", "host0", "post", t3 + 6 * SECOND, community=MEET)
        plain = post("P2", "host1", "post", t3 + 7 * SECOND, community=MEET)
        publish(settings, [*hosts, tagged.message(), plain.message()])
        wait_caught_up(redis_client, settings, timeout=60, proc=worker)

        t4 = t3 + 20 * SECOND  # after m-soon started
        answers = {"u1": ("m-ai", "going"), "u2": ("m-web", "maybe"), "u3": ("m-ai", "declined"),
                   "u4": ("m-full", "going")}  # fmt: skip
        active = [
            answer(m, t4 + i * SECOND, mid, status) for i, (m, (mid, status)) in enumerate(answers.items())
        ]
        # The schema makes the meetup fields optional: an RSVP without them leaves m-full full.
        active.append(rsvp("u5-m-full", "u5", t4 + 4 * SECOND, "m-full", "going"))
        active.append(reaction("r-zed", "zed", t4 + 5 * SECOND, "P1", "like"))  # interest in a tagged post
        active.append(reaction("r-yan", "yan", t4 + 6 * SECOND, "P2", "like"))  # untagged: no signal
        publish(settings, active)
        wait_caught_up(redis_client, settings, timeout=60, proc=worker)
    finally:
        stop(worker)

    last = t4 + 6 * SECOND
    full = {mid for mid, (_, _, cap) in meetups.items() if cap is not None and cap <= 1}  # one host going
    upcoming = {mid for mid, (starts, _, _) in meetups.items() if starts > last and mid not in full}
    assert upcoming == {"m-ai", "m-web"}
    expected_recs = {m: upcoming - {mid} for m, (mid, _) in answers.items()} | {
        "u5": upcoming,
        "zed": upcoming,
    }
    recs = zsets(redis_client, f"pulse:recs:{MEET}:*")
    got_recs = {m: set(r) for m, r in recs.items() if not m.startswith("host")}
    assert got_recs == expected_recs
    assert all(math.isfinite(s) for r in recs.values() for s in r.values())
    # EXPIRE: until the last recommended meetup starts (m-web, three days after t3).
    ttl = redis_client.ttl(f"pulse:recs:{MEET}:zed")
    assert (meetups["m-web"][0] - last) // 1000 - 60 <= ttl <= (meetups["m-web"][0] - t4) // 1000

    assert candidates_topic(settings) == expected_messages  # nothing more from the meetup stream
    assert reference.read_topic(settings.kafka_bootstrap, settings.dead_letter_topic) == []
