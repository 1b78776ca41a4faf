"""``pulse demo``'s story table (issue 18): a scripted surge is caught only by an alert about its topic."""

from __future__ import annotations

from streams.demo import _caught_by
from streams.simulator import StoryEvent

T = 1_767_571_200_000


def test_a_surge_row_is_caught_by_its_topic_or_one_of_its_tags_not_by_any_surge():
    surge = StoryEvent("topic_surge", "c1", T, "ai")
    assert _caught_by(surge, {"kind": "topic_surge", "topic": "ai", "ts": T + 60_000})
    assert _caught_by(surge, {"kind": "topic_surge", "topic": "llm", "ts": T + 60_000})  # a tag of "ai"
    assert not _caught_by(surge, {"kind": "topic_surge", "topic": "做过", "ts": T + 60_000})
    assert not _caught_by(surge, {"kind": "topic_surge", "topic": "ai", "ts": T - 1})  # before the script


def test_a_drop_row_is_caught_by_the_next_drop_of_its_community():
    drop = StoryEvent("atmosphere_drop", "c2", T, "70 % negative posts")
    assert _caught_by(drop, {"kind": "atmosphere_drop", "ts": T + 1})
    assert not _caught_by(drop, {"kind": "topic_surge", "topic": "terrible", "ts": T + 1})


def test_the_demo_stream_scripts_a_real_surge_and_trends_alerts_it_by_its_topic():
    """The demo's own stream (its config, offline): the AI topic goes from rare to most of the
    surge community's posts (>= 5x its rate, >= 10 mentions an hour: issue 18's surge), and the
    trends operator's first alert on that topic comes within 30 minutes."""
    import time

    from schemas.events import Event, EventDecoder, Post
    from streams.demo import DEMO_SPAN_SECONDS
    from streams.operators.runner import run_locally
    from streams.operators.trends import TrendingTopics
    from streams.simulator import TOPIC_NAMES, TOPIC_TAGS, DemoStory, SimConfig, Simulator

    story = DemoStory(drop_at=0.85, surge_at=0.8)  # as streams.demo runs it
    start = (int(time.time() * 1000) - 3 * 86_400_000) // 60_000 * 60_000
    config = SimConfig(
        seed=7, events=75_000, communities=30, members=3000, span_seconds=DEMO_SPAN_SECONDS, start_ms=start
    )
    sim = Simulator(config, [story])
    decoder = EventDecoder(max_message_bytes=1_000_000, max_future_ms=300_000)
    decoded = [decoder.decode(m.topic, m.value) for m in sim.messages()]
    surge = next(s for s in story.script if s.kind == "topic_surge")
    events = sorted(
        (e for e in decoded if isinstance(e, Event) and e.community == surge.community), key=lambda e: e.ts
    )
    tags = set(TOPIC_TAGS[TOPIC_NAMES.index(surge.detail)])
    hour = 3_600_000

    def mentions(lo: int, hi: int) -> float:
        n = sum(isinstance(e, Post) and lo <= e.ts < hi and bool(tags & set(e.tags)) for e in events)
        return n * hour / (hi - lo)

    before, after = mentions(surge.ts - 6 * hour, surge.ts), mentions(surge.ts, surge.ts + hour)
    assert after >= 10 and after >= 5 * before, (before, after)
    outputs, _ = run_locally(TrendingTopics(), events, batch=500)
    alerts = [m.value for o in outputs for m in o.messages]
    hits = [a["ts"] for a in alerts if _caught_by(surge, a)]
    assert hits and hits[0] - surge.ts <= 30 * 60_000, [(a.get("topic"), a["ts"] - surge.ts) for a in alerts]
