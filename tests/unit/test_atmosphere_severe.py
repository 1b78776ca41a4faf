"""Severe atmosphere drops (issue 18): >= 70 % negative posts and mostly negative reactions at
>= 30 posts an hour are alerted in minutes (issue 18 asks within 10; README: 9 of these 16), after
a day of history or only 9 hours; calm streams with the odd burst of complaints raise nothing.

Post texts are real: human-rated tweets from VADER's ground truth (positive: mean rating >= 1.5,
negative: <= -1.5) and Hacker News titles as the neutral chatter (``online_models/data/real``)."""

from __future__ import annotations

import math
import random

import pytest

from schemas.events import Post, Reaction
from streams.evaluation.realtext import hn_posts, vader_tweets
from streams.operators.atmosphere import AtmosphereConfig, AtmosphereIndex
from streams.operators.runner import run_locally

H = 3_600_000
MIN = 60_000
T0 = 1_767_571_200_000
TWEETS = vader_tweets()
POSITIVE = [t for r, t in TWEETS if r >= 1.5]
NEGATIVE = [t for r, t in TWEETS if r <= -1.5]
NEUTRAL = [p.text for p in hn_posts()]


def _stream(rng: random.Random, start: int, end: int, per_hour: float, mood: tuple[float, float]) -> list:
    """Posts at ``per_hour`` (Poisson), each negative with mood[0], positive with mood[1], else neutral;
    every post gets 0-3 reactions within minutes, negative ones ``sad``/``angry``, others ``like``."""
    events: list = []
    t = start + rng.expovariate(per_hour / H)
    i = 0
    while t < end:
        roll = rng.random()
        bad = roll < mood[0]
        text = rng.choice(NEGATIVE if bad else POSITIVE if roll < mood[0] + mood[1] else NEUTRAL)
        post = f"p{start}-{i}"
        events.append(Post(f"e{post}", "c", f"m{rng.randrange(60)}", int(t), post, text, "post", (), None))
        for j in range(rng.randrange(4)):
            kind = rng.choice(("sad", "angry")) if bad else "like"
            ts = int(t + rng.uniform(0.2, 5.0) * MIN)
            events.append(Reaction(f"r{post}-{j}", "c", f"m{rng.randrange(60)}", ts, post, kind))
        t += rng.expovariate(per_hour / H)
        i += 1
    return events


def _drops(events: list, config: AtmosphereConfig | None = None) -> list[dict]:
    events = sorted(events, key=lambda e: (e.ts, e.id))
    outputs, _ = run_locally(AtmosphereIndex(config), events, batch=25)
    return [m.value for o in outputs for m in o.messages if m.value["kind"] == "atmosphere_drop"]


CALM = (0.05, 0.45)
SEVERE = (0.8, 0.05)


def _drop_streams() -> list[tuple[int, list]]:
    """16 streams: 9 or 30 hours of calm, then a severe drop (80 % negative) at 30 or 60 posts/h."""
    out = []
    for history_hours in (9, 30):
        for per_hour in (30, 60):
            for seed in range(4):
                rng = random.Random(history_hours * 100 + per_hour + seed * 7)
                drop = T0 + history_hours * H
                calm = _stream(rng, T0, drop, per_hour, CALM)
                out.append((drop, calm + _stream(rng, drop, drop + 2 * H, per_hour, SEVERE)))
    return out


def _delays(config: AtmosphereConfig | None = None) -> tuple[list[float], int]:
    delays, early = [], 0
    for drop, events in _drop_streams():
        alerts = _drops(events, config)
        early += sum(a["ts"] < drop for a in alerts)
        after = [a["ts"] for a in alerts if a["ts"] >= drop]
        delays.append((after[0] - drop) / MIN if after else math.inf)
    return delays, early


def test_severe_drops_are_alerted_in_minutes_and_faster_than_by_the_z_test_alone():
    delays, early = _delays()
    baseline, _ = _delays(AtmosphereConfig(severe_h=math.inf))  # the severe path off: issue 5's detector
    assert early == 0  # no alert in the calm hours before any drop
    assert all(d <= 35 for d in delays), delays  # every drop caught within 35 minutes
    within = sum(d <= 10 for d in delays)
    # Issue 18's target is every drop within 10 minutes; with 5-10 posts in those minutes (0-2 in
    # two of these streams) that is not reachable at <= 1 false alarm a week (README): measured
    # 9 of 16 (before the per-post model 8; z-test alone 6), tuned on other seeds (10-13).
    assert within >= len(delays) // 2, delays
    assert within > sum(d <= 10 for d in baseline), (delays, baseline)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_calm_week_with_bursts_of_complaints_raises_at_most_one_alert(seed: int):
    rng = random.Random(seed)
    events = _stream(rng, T0, T0 + 7 * 24 * H, 30, CALM)
    for day in range(7):  # once a day, three complaints in a row from one member
        at = T0 + day * 24 * H + rng.randrange(24) * H
        for k in range(3):
            text = NEGATIVE[k]
            events.append(
                Post(f"x{day}-{k}", "c", "grumpy", at + k * MIN, f"x{day}-{k}", text, "post", (), None)
            )
    assert len(_drops(events)) <= 1


def test_a_snapshot_from_before_the_severe_path_restores_with_its_defaults():
    """States pickled before issue 18 lack the six severe-path fields (the last ones)."""
    from streams.operators.atmosphere import AtmosphereState

    events = _stream(random.Random(9), T0, T0 + 3 * H, 30, CALM)
    _, states = run_locally(AtmosphereIndex(), sorted(events, key=lambda e: (e.ts, e.id)), batch=25)
    st = states["c"]
    old = AtmosphereState.__new__(AtmosphereState)
    old.__setstate__(st.__getstate__()[:-6])
    assert (old.neg_share, old.severe, old.severe_ts) == ([0.1, 0.1], 0.0, 0)
    assert (old.severe_posts, old.severe_since, old.severe_members) == ({}, 0, {})
    assert (old.posts, old.reactions, old.index) == (st.posts, st.reactions, st.index)
    more = _stream(random.Random(10), T0 + 3 * H, T0 + 4 * H, 30, CALM)
    op = AtmosphereIndex()
    op.apply_batch({"c": old}, sorted(more, key=lambda e: (e.ts, e.id)))  # runs on
    assert old.posts == st.posts + sum(isinstance(e, Post) for e in more)
