"""The simulator's promises: deterministic, valid where it says valid, labelled where it is not.

Every message is checked against the real decoder (:class:`schemas.events.EventDecoder`), so a
label that drifts from the decoder's ``Rejection.reason`` fails here rather than in a dashboard.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict

import pytest

from schemas.events import Event, EventDecoder, Post, Reaction, Rejection, Rsvp
from streams.simulator import MALFORMED_KINDS, POST, Phrasebank, SimConfig, SimMessage, Simulator
from streams.simulator.phrases import EDGE_TEXTS, NEG, NEU, POS

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z: fixed, so the streams are comparable across runs
SPAN_MS = 6 * 3_600_000
WINDOW_PLUS_GRACE_MS = (3600 + 300) * 1000
CJK = re.compile(r"[\u4e00-\u9fff]")


def decoder() -> EventDecoder:
    return EventDecoder(max_message_bytes=1_000_000, max_future_ms=300_000)


def config(**overrides: object) -> SimConfig:
    base: dict[str, object] = {"seed": 42, "events": 20_000, "start_ms": START}
    return SimConfig(**(base | overrides))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def hostile() -> tuple[Simulator, list[SimMessage]]:
    """One stream with every kind of trouble turned up, shared by the checks below."""
    sim = Simulator(
        config(
            dup_rate=0.03, malformed_rate=0.05, late_rate=0.01, oversized_bytes=1_500_000, oversized_count=2
        )
    )
    return sim, list(sim.messages())


def test_same_config_same_bytes_other_seed_other_bytes() -> None:
    cfg = config(events=3_000, dup_rate=0.05, malformed_rate=0.05, late_rate=0.02)
    first = list(Simulator(cfg).messages())
    sim = Simulator(cfg)
    assert list(sim.messages()) == first
    assert list(sim.messages()) == first, "messages() restarts from the seed"
    assert [m.value for m in Simulator(config(seed=43, events=3_000)).messages()] != [m.value for m in first]


def test_default_start_is_in_the_past_and_fixed_by_the_config() -> None:
    cfg = SimConfig(events=500)
    assert cfg.start_ms is not None
    assert cfg.start_ms % 60_000 == 0
    assert cfg.start_ms + cfg.span_seconds * 1000 <= time.time() * 1000
    a, b = Simulator(cfg), Simulator(cfg)
    assert [m.value for m in a.messages()] == [m.value for m in b.messages()]
    # Valid events of a default config decode: nothing lies in the decoder's future.
    d = decoder()
    assert all(not isinstance(d.decode(m.topic, m.value), Rejection) for m in a.messages() if m.label is None)


def test_every_label_is_what_the_decoder_says(hostile: tuple[Simulator, list[SimMessage]]) -> None:
    sim, msgs = hostile
    d = decoder()
    seen_values: set[bytes] = set()
    newest: dict[str, int] = {}  # community -> newest valid event time so far
    labels: Counter[str | None] = Counter()
    for m in msgs:
        labels[m.label] += 1
        result = d.decode(m.topic, m.value)
        if m.label in (None, "duplicate", "late"):
            assert not isinstance(result, Rejection), (m, result)
            assert isinstance(result, Event)
            assert result.community == m.key.decode()
            assert type(result) is {"posts": Post, "reactions": Reaction, "rsvps": Rsvp}[m.topic]
        else:
            assert isinstance(result, Rejection), m.value[:200]
            assert result.reason == m.label, (m.value[:200], result)
            continue
        if m.label == "duplicate":
            assert m.value in seen_values, "a duplicate re-sends bytes sent before"
        elif m.label == "late":
            assert result.ts <= newest[result.community] - WINDOW_PLUS_GRACE_MS
        else:
            assert START <= result.ts <= START + SPAN_MS
            newest[result.community] = max(newest.get(result.community, 0), result.ts)
        seen_values.add(m.value)
    assert set(labels) == {None, "duplicate", "late", "invalid_json", "schema", "timestamp", "oversized"}
    assert labels["oversized"] == sim.stats["oversized"] == 2
    assert labels[None] + labels["late"] == 20_000


def test_all_malformed_categories_occur(hostile: tuple[Simulator, list[SimMessage]]) -> None:
    sim, _ = hostile
    counts = {kind: sim.stats[f"malformed:{kind}"] for kind in MALFORMED_KINDS}
    assert min(counts.values()) >= 20, counts
    assert max(counts.values()) - min(counts.values()) <= 1, "categories come in shuffled rounds"


def test_deep_nesting_and_invalid_utf8_are_really_that(hostile: tuple[Simulator, list[SimMessage]]) -> None:
    _, msgs = hostile
    d = decoder()
    details = [r.detail for m in msgs if isinstance(r := d.decode(m.topic, m.value), Rejection)]
    assert any("depth" in x or "recursion" in x for x in details)
    assert any("UTF-8" in x or "utf-8" in x for x in details)
    assert any("no UTC offset" in x for x in details)
    assert any("in the future" in x for x in details)
    assert any("before 2000" in x for x in details)


def test_ids_unique_except_duplicates(hostile: tuple[Simulator, list[SimMessage]]) -> None:
    _, msgs = hostile
    d = decoder()
    ids = [
        ev.id
        for m in msgs
        if m.label in (None, "late") and not isinstance(ev := d.decode(m.topic, m.value), Rejection)
    ]
    assert len(ids) == len(set(ids))


def test_references_point_backwards_within_the_community() -> None:
    d = decoder()
    posts: dict[str, Post] = {}
    needs_resolved = 0
    for m in Simulator(config(events=30_000)).messages():
        ev = d.decode(m.topic, m.value)
        assert not isinstance(ev, Rejection)
        if isinstance(ev, Post):
            if ev.reply_to is not None:
                parent = posts[ev.reply_to]
                assert parent.community == ev.community
                if ev.kind == "resolved":
                    assert parent.kind == "need"
                    needs_resolved += 1
            posts.setdefault(ev.post, ev)
        elif isinstance(ev, Reaction):
            assert posts[ev.post].community == ev.community
    kinds = Counter(p.kind for p in posts.values())
    assert kinds["need"] > 0 and kinds["offer"] > 0 and needs_resolved > 0
    assert kinds["post"] > kinds["need"] + kinds["offer"]
    assert sum(p.reply_to is not None for p in posts.values()) > 0.2 * len(posts)


def test_rsvps_are_before_the_start_and_checkins_after() -> None:
    d = decoder()
    statuses: Counter[str] = Counter()
    for m in Simulator(config(events=30_000)).messages():
        ev = d.decode(m.topic, m.value)
        if isinstance(ev, Rsvp):
            statuses[ev.status] += 1
            assert ev.starts_at is not None and ev.meetup_tags
            if ev.status == "attended":
                assert ev.ts >= ev.starts_at
            else:
                assert ev.starts_at > ev.ts
            assert ev.capacity is None or ev.capacity > 0
    assert set(statuses) == {"going", "maybe", "declined", "cancelled", "attended"}
    assert statuses["going"] > statuses["declined"]


def test_mix_language_and_heavy_tails() -> None:
    sim = Simulator(config(events=40_000))
    d = decoder()
    topics: Counter[str] = Counter()
    per_community: Counter[str] = Counter()
    per_member: Counter[str] = Counter()
    texts_by_lang: dict[str, list[str]] = defaultdict(list)
    lang_of = {c.id: c.lang for c in sim.communities}
    for m in sim.messages():
        if m.label is not None:
            continue
        topics[m.topic] += 1
        ev = d.decode(m.topic, m.value)
        assert not isinstance(ev, Rejection)
        per_community[ev.community] += 1
        per_member[ev.member] += 1
        if isinstance(ev, Post):
            texts_by_lang["zh" if lang_of[ev.community] else "en"].append(ev.text)
    total = sum(topics.values())
    for topic, share in zip(("posts", "reactions", "rsvps"), sim.config.mix, strict=True):
        assert abs(topics[topic] / total - share) < 0.03, topics
    # Chinese communities write mostly Chinese, English ones mostly not.
    zh = texts_by_lang["zh"]
    en = texts_by_lang["en"]
    assert sum(bool(CJK.search(t)) for t in zh) > 0.8 * len(zh)
    assert sum(bool(CJK.search(t)) for t in en) < 0.1 * len(en)
    assert any(CJK.search(t) and re.search(r"[A-Za-z]{4,}", t) for t in zh), "code-switched text"
    # Zipf communities, heavy-tailed members.
    sizes = sorted(per_community.values(), reverse=True)
    assert sizes[0] > 5 * sizes[-1]
    active = sorted(per_member.values(), reverse=True)
    assert sum(active[: len(active) // 10]) > 0.3 * sum(active)


def test_disorder_stays_within_bound() -> None:
    d = decoder()
    high = worst = worst_duplicate = 0
    for m in Simulator(config(events=20_000, disorder_ms=60_000, dup_rate=0.05)).messages():
        ev = d.decode(m.topic, m.value)
        assert not isinstance(ev, Rejection)
        if m.label == "duplicate":  # a retry of a recent message: older still, but within the grace
            worst_duplicate = max(worst_duplicate, high - ev.ts)
            continue
        high = max(high, ev.ts)
        worst = max(worst, high - ev.ts)
    assert 0 < worst <= 60_000 + 1_000  # + whole-second timestamps of some publishers
    assert worst_duplicate <= 300_000


def test_phrasebank_tone_reads_as_tone() -> None:
    """Positive pools score higher than negative ones with VADER (English), the atmosphere signal."""
    vader = pytest.importorskip("vaderSentiment.vaderSentiment").SentimentIntensityAnalyzer()
    bank = Phrasebank(seed=1)

    def mean(tone: int) -> float:
        texts = [t for topic in range(8) for t, _ in bank.pool(0, POST, topic, tone)]
        return sum(float(vader.polarity_scores(t)["compound"]) for t in texts) / len(texts)

    assert mean(POS) > 0.3 > -0.1 > mean(NEG)


def test_chinese_tone_reads_as_tone() -> None:
    """Same for Chinese with SnowNLP, which is noisier: only the order of the means is checked."""
    snownlp = pytest.importorskip("snownlp")
    bank = Phrasebank(seed=1)

    def mean(tone: int) -> float:
        texts = [t for topic in range(8) for t, _ in bank.pool(1, POST, topic, tone)][::4]
        return sum(float(snownlp.SnowNLP(t).sentiments) for t in texts) / len(texts)

    assert mean(POS) > mean(NEU) + 0.2 > mean(NEG) + 0.3


def test_edge_texts_are_valid_posts() -> None:
    sim = Simulator(config(events=20_000, edge_text_rate=0.05))
    d = decoder()
    texts = set()
    for m in sim.messages():
        ev = d.decode(m.topic, m.value)
        assert not isinstance(ev, Rejection)
        if isinstance(ev, Post):
            texts.add(ev.text)
    assert set(EDGE_TEXTS) <= texts


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        SimConfig(mix=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError):
        SimConfig(dup_rate=1.5)
    assert SimConfig(mix=(2, 1, 1)).mix == (0.5, 0.25, 0.25)


def test_batches_concatenate_to_the_stream() -> None:
    sim = Simulator(config(events=2_500))
    batches = list(sim.iter_batches(1_000))
    assert [len(b) for b in batches][:2] == [1_000, 1_000]
    assert [m for b in batches for m in b] == list(sim.messages())


class _AtmosphereDrop:
    """A scenario as later issues will write them: from ``at_ms`` on, one community turns sour."""

    def __init__(self, community: str, at_ms: int) -> None:
        self.community, self.at_ms = community, at_ms
        self.ticks: list[int] = []
        self.started_at: int | None = None

    def tick(self, sim: Simulator, ts: int) -> None:
        self.ticks.append(ts)
        if self.started_at is None and ts >= self.at_ms:
            next(c for c in sim.communities if c.id == self.community).set_tone(0.0, 0.0, 1.0)
            self.started_at = ts


def test_scenarios_tick_in_event_time_and_steer_a_community() -> None:
    cfg = config(events=20_000, edge_text_rate=0.0)
    target = max(Simulator(cfg).communities, key=lambda c: c.weight).id
    drop = _AtmosphereDrop(target, START + SPAN_MS // 2)
    sim = Simulator(cfg, scenarios=[drop])
    bank = sim.phrasebank
    negative = {t for i in range(3 * 5 * 8) for t, _ in bank.pool(i // 40, i // 8 % 5, i % 8, NEG)}
    d = decoder()
    before: Counter[bool] = Counter()
    after = 0
    for m in sim.messages():
        ev = d.decode(m.topic, m.value)
        if not isinstance(ev, Post) or ev.community != target:
            continue
        if drop.started_at is None:
            before[ev.text in negative] += 1
        elif ev.ts >= drop.started_at + 60_000:  # past the jitter: generated after the change
            assert ev.text in negative, ev.text
            after += 1
    assert len(drop.ticks) == 20 and drop.ticks == sorted(drop.ticks)
    assert after > 100
    assert before[True] < 0.3 * before.total()
