"""Atmosphere: bilingual sentiment, reaction valence, and the AtmosphereIndex operator on scripted
streams (a drop, a steady control, a neutral volume spike, a Chinese drop, a silence), plus the
snapshot contract (pickle mid-stream changes nothing) and determinism."""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
from collections.abc import Sequence

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import BOOSTER_DICT, NEGATE, SentimentIntensityAnalyzer

from online_models import sentiment as sentiment_module
from online_models.sentiment import MAX_CHARS, sentiment, split_scripts, vader_compound, zh_sentiment
from schemas.events import Event, Post, Reaction, Rsvp
from streams.operators.atmosphere import AtmosphereConfig, AtmosphereIndex, AtmosphereState, valence
from streams.operators.base import Output
from streams.operators.runner import run_locally
from tests.texts import BAD, CALM, NEUTRAL, REACTIONS, TEXTS
from tests.workers import ROOT

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000
HOUR = 3_600_000


# --------------------------------------------------------------------------------------------------
# Sentiment
# --------------------------------------------------------------------------------------------------


VADER = SentimentIntensityAnalyzer()
"""The library itself, the reference (one instance: it keeps no state between texts)."""


def test_english_is_vader_compound() -> None:
    sia = VADER
    for text in (
        *TEXTS["en"]["pos"],
        *TEXTS["en"]["neg"],
        "VADER is VERY SMART, uber handsome!!!",
        "Not bad at all",
        "The plot was good, but the characters are uncompelling.",
        "kind of good :)",
    ):
        assert sentiment(text) == sia.polarity_scores(text)["compound"], text  # fmt: skip
    assert all(sentiment(t) > 0.5 for t in TEXTS["en"]["pos"])
    assert all(sentiment(t) < -0.5 for t in TEXTS["en"]["neg"])
    assert all(sentiment(t) == 0.0 for t in TEXTS["en"]["neu"])


_WORDS = [*list(VADER.lexicon)[::50], *BOOSTER_DICT, *NEGATE, "no", "least", "at",
          "very", "never", "so", "this", "without", "doubt", "kind", "of", "nor", "the", "shit", "bomb",
          "GREAT", "NOT", "!", "?", "??", ":)", "😀", "🎉", "💘", "founder", "Berlin"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_WORDS), st.sampled_from(["", ",", ".", "!", "?"])), max_size=14))
def test_fast_vader_equals_the_library(words: list[tuple[str, str]]) -> None:
    text = " ".join(w + p for w, p in words)
    assert vader_compound(text) == VADER.polarity_scores(text)["compound"]


def test_chinese_fast_model_reads_tone_and_agrees_with_snownlp() -> None:
    from snownlp import SnowNLP

    for tone in ("pos", "neg"):
        for text in TEXTS["zh"][tone]:
            ours, theirs = sentiment(text), SnowNLP(text).sentiments
            assert (ours > 0) == (theirs > 0.5) == (tone == "pos"), (text, ours, theirs)
    assert sentiment("这次活动太棒了，感谢大家的精彩分享！") > 0.5
    assert sentiment("这个社群越来越无聊了，广告太多，我要退群了。") < -0.5


def test_mixed_text_is_split_by_script_and_weighted_by_length() -> None:
    zh, other, han = split_scripts("Honestly 很失望，真的很 frustrating")
    assert (zh, other.split(), han) == ("很失望，真的很", ["Honestly", "frustrating"], 6)
    mixed = sentiment("Honestly 很失望，真的很 frustrating")
    assert mixed < 0
    assert (
        min(zh_sentiment(zh), vader_compound(other)) <= mixed <= max(zh_sentiment(zh), vader_compound(other))
    )
    assert sentiment("恭喜！Amazing 🎉") > 0.3
    # Longer Chinese part weighs more: same English, more Chinese praise → higher score.
    assert sentiment("太棒了，感谢大家，很赞 ok") > sentiment("太棒了 ok")


def test_emoji_and_empty_texts() -> None:
    assert sentiment("") == sentiment("   ") == sentiment("\n\t") == 0.0
    assert sentiment("🎉") > 0 and sentiment("👍") > 0 and sentiment("🚀🚀🚀") > 0
    assert sentiment("😡") < 0 and sentiment("💔") < 0 and sentiment("👎") < 0
    assert sentiment("太棒了🎉") > 0
    assert sentiment("<script>alert('pulse')</script> anyone hiring?") == 0.0
    assert sentiment("NUL byte here: \x00 end") == 0.0


def test_long_texts_are_bounded_and_cache_changes_nothing() -> None:
    for text in ("a" * 10_000, "中" * 10_000, "great " * 2_000, "糟糕" * 5_000):
        assert -1.0 <= sentiment(text) <= 1.0
        assert sentiment(text) == sentiment_module._score(text[:MAX_CHARS])
    for text in (*TEXTS["en"]["neg"], *TEXTS["zh"]["pos"], "Honestly 很失望"):
        assert sentiment(text) == sentiment(text) == sentiment_module._score(text)


def test_chinese_scores_do_not_depend_on_the_hash_seed() -> None:
    """The n-gram sum runs in a fixed order: a restarted worker (new PYTHONHASHSEED) scores alike."""
    code = "from online_models.sentiment import zh_sentiment as z; print(repr(z('活动又取消了，真烦')))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
        ).stdout
        for seed in ("1", "2", "3")
    }  # fmt: skip
    assert len(outs) == 1


def test_model_file_is_small_and_versioned() -> None:
    path = ROOT / "online_models" / "data" / "zh_sentiment.json"
    assert path.stat().st_size < 2_000_000
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == 1 and len(doc["weights"]) > 1000


def test_reaction_valence() -> None:
    assert valence("love") > valence("like") > valence("laugh") > 0 > valence("sad") > valence("angry")
    assert valence("report") == -1.0 == min(valence(r) for r in ("sad", "angry", "report"))
    assert valence("insightful") > 0 and valence("thanks") > 0 and valence("unknown") == 0.0


# --------------------------------------------------------------------------------------------------
# Scripted streams
# --------------------------------------------------------------------------------------------------


def stream(
    community: str,
    start: int,
    hours: float,
    posts_per_hour: float,
    tone: dict[str, float],
    lang: str = "en",
    seed: int = 0,
) -> list[Event]:
    """Posts with the given tone mix, ~1.5 reactions per post on the latest posts, a few RSVPs."""
    rng = random.Random(f"{community}:{start}:{seed}")
    events: list[Event] = []
    recent: list[tuple[str, str]] = []
    t = float(start)
    end = start + hours * HOUR
    n = 0
    rate = posts_per_hour * 2.7 / HOUR  # all events per ms
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return events
        n += 1
        ts, eid, member = int(t), f"{community}:{start}:{n}", f"m{rng.randrange(60)}"
        r = rng.random()
        if r < 1 / 2.7 or not recent:
            kind = rng.choices(list(tone), list(tone.values()))[0]
            pid = f"{community}:{start}:p{n}"
            recent = [*recent[-4:], (pid, kind)]
            events.append(
                Post(eid, community, member, ts, pid, rng.choice(TEXTS[lang][kind]), "post", (), None)
            )
        elif r < 2.5 / 2.7:
            pid, kind = rng.choice(recent)
            events.append(Reaction(eid, community, member, ts, pid, rng.choice(REACTIONS[kind])))
        else:
            events.append(Rsvp(eid, community, member, ts, f"{community}:meetup", "going", (), None, None))


def run(
    events: Sequence[Event],
    op: AtmosphereIndex | None = None,
    batch: int = 500,
    snapshot_every_batch: bool = False,
) -> tuple[list[Output], dict[str, AtmosphereState]]:
    return run_locally(op or AtmosphereIndex(), events, batch, snapshot_every_batch)


def alerts(outputs: Sequence[Output], community: str | None = None) -> list[dict]:
    return [
        m.value for o in outputs for m in o.messages if community is None or m.value["community"] == community
    ]


def merged(*parts: list[Event]) -> list[Event]:
    return sorted((e for p in parts for e in p), key=lambda e: (e.ts, e.id))


DROP_AT = T0 + 24 * HOUR


@pytest.fixture(scope="module")
def drop_run() -> tuple[list[Event], list[Output], dict[str, AtmosphereState]]:
    """'c' sours for two hours after a calm day, then recovers; 'control' stays calm throughout."""
    events = merged(
        stream("c", T0, 24, 120, CALM),
        stream("c", DROP_AT, 2, 120, BAD),
        stream("c", DROP_AT + 2 * HOUR, 10, 120, CALM),
        stream("control", T0, 36, 120, CALM),
    )
    outputs, states = run(events)
    return events, outputs, states


def test_scripted_drop_alerts_once_with_evidence_then_recovers(drop_run) -> None:
    events, outputs, _ = drop_run
    found = alerts(outputs, "c")
    assert [a["kind"] for a in found] == ["atmosphere_drop", "recovery"]
    drop, recovery = found
    assert DROP_AT <= drop["ts"] <= DROP_AT + 10 * MIN  # caught within 10 minutes at 120 posts/h
    assert drop["index_after"] < drop["index_before"] and drop["index_after"] < drop["baseline"]
    assert drop["id"] and drop["community"] == "c"
    # Evidence: the most negative posts of the last hour before the alert, most negative first.
    window = [
        (sentiment(e.text), e.ts, e.post, e.member)
        for e in events
        if e.__class__ is Post and e.community == "c" and drop["ts"] - HOUR <= e.ts <= drop["ts"]
    ]
    expected = sorted((s, -t, p, m) for s, t, p, m in window if s <= -0.05)[:5]  # ties: newest first
    assert [(p["post"], p["member"], p["score"]) for p in drop["evidence"]["negative_posts"]] == [
        (post, member, score) for score, _, post, member in expected
    ]
    assert {p["member"] for p in drop["evidence"]["negative_posts"]} <= set(drop["evidence"]["members"])
    mix = drop["evidence"]["reaction_mix"]
    assert abs(sum(mix.values()) - 1.0) < 0.01 and mix.get("angry", 0) + mix.get("report", 0) > 0
    # Recovery follows once the tone is back, and names the alert it closes.
    assert recovery["ts"] > DROP_AT + 2 * HOUR
    assert recovery["recovers"]["id"] == drop["id"] and recovery["recovers"]["kind"] == "atmosphere_drop"
    assert recovery["index_after"] > recovery["index_before"]


def test_alert_side_effects_redis_and_kinds(drop_run) -> None:
    _, outputs, states = drop_run
    with_alert = next(o for o in outputs if any(m.value["community"] == "c" for m in o.messages))
    message = next(m for m in with_alert.messages if m.value["community"] == "c")
    assert message.topic == "alerts" and message.key == "c"
    assert ["LPUSH", "pulse:alerts:c", orjson.dumps(message.value).decode()] in with_alert.commands
    assert ["LTRIM", "pulse:alerts:c", 0, 99] in with_alert.commands
    assert with_alert.alerts == ["atmosphere_drop"]
    hset = next(c for c in outputs[-1].commands if c[0] == "HSET" and c[1] == "pulse:atmosphere:c")
    st_c = states["c"]
    assert hset == ["HSET", "pulse:atmosphere:c", "index", round(st_c.index, 4), "baseline",
                    round(st_c.baseline, 4), "updated", st_c.last_ts, "posts", st_c.posts,
                    "reactions", st_c.reactions]  # fmt: skip
    obs = [o for o in outputs[-1].observations if o.community == "c"]
    assert [(o.metric, o.value) for o in obs] == [("atmosphere_index", round(st_c.index, 4))]


def test_steady_control_community_gives_no_alert(drop_run) -> None:
    _, outputs, _ = drop_run
    assert alerts(outputs, "control") == []


def test_volume_spike_with_neutral_tone_gives_no_alert() -> None:
    events = merged(
        stream("s", T0, 30, 40, CALM),
        stream("s", T0 + 24 * HOUR, 3, 200, NEUTRAL, seed=1),  # 5x volume, all neutral questions
    )
    assert [a["kind"] for a in alerts(run(events)[0])] == []


def test_chinese_drop_is_caught() -> None:
    events = merged(
        stream("zh", T0, 24, 120, CALM, "zh"),
        stream("zh", DROP_AT, 2, 120, BAD, "zh"),
        stream("zh", DROP_AT + 2 * HOUR, 10, 120, CALM, "zh"),
    )
    found = alerts(run(events)[0])
    assert [a["kind"] for a in found] == ["atmosphere_drop", "recovery"]
    assert DROP_AT <= found[0]["ts"] <= DROP_AT + 10 * MIN


def test_cooldown_deduplicates_close_drops() -> None:
    events = merged(
        stream("d", T0, 24, 120, CALM),
        stream("d", DROP_AT, 1, 120, BAD),
        stream("d", DROP_AT + HOUR, 1, 120, CALM),
        stream("d", DROP_AT + 2 * HOUR, 1, 120, BAD, seed=1),  # a second drop inside the 6 h cooldown
        stream("d", DROP_AT + 3 * HOUR, 3, 120, CALM, seed=1),
    )
    kinds = [a["kind"] for a in alerts(run(events)[0])]
    assert kinds.count("atmosphere_drop") == 1


def test_activity_collapse_alerts_on_the_next_event_and_recovers() -> None:
    quiet_from = T0 + 3 * 24 * HOUR
    events = merged(
        stream("q", T0, 72, 60, CALM),
        stream("q", quiet_from + 2 * HOUR, 6, 60, CALM, seed=1),  # two hours of silence, then normal
    )
    found = alerts(run(events)[0])
    assert [a["kind"] for a in found] == ["activity_drop", "recovery"]
    quiet, back = found
    assert quiet_from + 2 * HOUR <= quiet["ts"] <= quiet_from + 2 * HOUR + 10 * MIN  # on the first event back
    assert quiet["activity"]["events"] == 0 and quiet["activity"]["expected"] >= 15
    assert back["recovers"]["kind"] == "activity_drop" and back["recovers"]["id"] == quiet["id"]


def test_out_of_order_events_never_move_time_backwards() -> None:
    events = stream("o", T0, 6, 60, CALM)
    shuffled = list(events)
    random.Random(1).shuffle(shuffled[100:140])  # a local disorder of a few minutes
    shuffled[100:140] = sorted(shuffled[100:140], key=lambda e: -e.ts)
    _, states = run(shuffled)
    assert states["o"].last_ts == max(e.ts for e in events)
    assert -1.0 <= states["o"].index <= 1.0


# --------------------------------------------------------------------------------------------------
# Snapshot contract and determinism
# --------------------------------------------------------------------------------------------------


def test_pickle_round_trip_mid_stream_changes_nothing(drop_run) -> None:
    events, uninterrupted, _ = drop_run
    restored, _ = run(events, snapshot_every_batch=True)
    assert restored == uninterrupted


def test_outputs_are_deterministic_and_alerts_do_not_depend_on_batching(drop_run) -> None:
    events, first, _ = drop_run
    again, _ = run(events)
    assert again == first
    small, _ = run(events, batch=37)
    assert alerts(small) == alerts(first)


def test_new_state_is_picklable_and_small() -> None:
    op = AtmosphereIndex(AtmosphereConfig())
    state = op.new_state("c")
    assert pickle.loads(pickle.dumps(state, protocol=5)) == state
    _, states = run(stream("p", T0, 12, 60, CALM))
    # ~3 KB, plus the severe path's evidence of the last 30 minutes' posts (~30 here: ~1.2 KB)
    assert len(pickle.dumps(states["p"], protocol=5)) < 5_000
