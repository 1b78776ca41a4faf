"""Measure the hot-topics and member-insights operators on labelled synthetic streams.

Real community data is private, so the streams are built here, directly as typed
:class:`~schemas.events.Post` / ``Reaction`` / ``Rsvp`` objects, with known ground truth:

* **topics** (:func:`topic_stream`): per community a language (English, Chinese or mixed), ~30
  background topics with Zipf-like rates, a long tail of filler words, a daily rhythm (night
  at 0.3x, afternoon peak at 1.7x), and — unless ``surges=False`` — topics that suddenly take
  off (5-12x their rate, at least 10 mentions an hour; brand-new terms or quiet ones) for 2-8
  hours, then fade with a 1-2 h half-life;
* **members** (:func:`member_stream`): regulars, occasional members, one-time visitors,
  members whose activity decays before they leave (they also turn negative and skip meetups),
  and newcomers who grow into regulars; posts get replies and reactions from others.

:func:`evaluate_trends` and :func:`evaluate_members` run the operators over a stream in small
event-time batches, exactly as the engine calls them, replay their Redis commands into a tiny
in-memory Redis (:class:`~streams.sinks.memory.MemoryStore`) and score what was *published* against the truth.

``python -m studies.evaluate_trends [trends|members|all]`` prints the report.

>>> events, surges = topic_stream(days=4, communities=1, seed=3, surges_per_week=7)
>>> len(events) > 1000, len(surges) > 0, all(s.peak_rate >= 10 for s in surges)
(True, True, True)
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

from online_models import trends as trend_model
from streams.labelled.trends import (
    EN_TOPICS,
    ZH_TOPICS,
    _filler_words,
    _run_trends,
    _text,
    _timed,
    evaluate_members,
    member_stream,
    topic_stream,
)
from streams.operators.runner import iter_locally, time_batches
from streams.operators.trends import TrendingTopics


def evaluate_trends(
    days: int = 14, communities: int = 9, seed: int = 7, batch_ms: int = 60_000, top_k: int = 3
) -> dict[str, Any]:
    """Time to top-``top_k`` per planted surge, alerts (true / false per community-week), forecast
    MAE against the baselines, cost per event and snapshot size — with and without surges."""
    report: dict[str, Any] = {}
    t0 = time.perf_counter()
    events, surges = topic_stream(days, communities, seed)
    steady, _ = topic_stream(days, communities, seed + 1, surges=False)
    report["generate_s"] = round(time.perf_counter() - t0, 1)
    report["surging"] = _run_trends(events, surges, batch_ms, top_k)
    report["steady"] = _run_trends(steady, [], batch_ms, top_k)
    report["busy"] = busy_cost()
    report["terms"] = term_cost()
    return report


def busy_cost(
    days: int = 2, communities: int = 2, posts_per_hour: float = 500.0, batch: int = 500
) -> dict[str, Any]:
    """µs per event when communities are busy (fixed per-bucket costs amortised), in the
    engine's event-count batches, with the runner's snapshot (pickle) of every touched state."""
    trend_model._jieba_cut()
    events, _ = topic_stream(days, communities, seed=3, surges=False, posts_per_hour=posts_per_hour)
    op = TrendingTopics()
    states: dict[str, Any] = {}
    trend_model.cache_clear()
    spent = pickled = 0.0
    for at in range(0, len(events), batch):
        chunk = events[at : at + batch]
        for ev in chunk:
            if ev.community not in states:
                states[ev.community] = op.new_state(ev.community)
        t = time.perf_counter()
        op.apply_batch(states, chunk)
        spent += time.perf_counter() - t
        t = time.perf_counter()
        for community in {ev.community for ev in chunk}:
            pickle.dumps(states[community], protocol=5)
        pickled += time.perf_counter() - t
    return {
        "events": len(events),
        "posts_per_hour_per_community": posts_per_hour,
        "us_per_event": round(spent / len(events) * 1e6, 1),
        "snapshot_us_per_event": round(pickled / len(events) * 1e6, 1),
        "snapshot_bytes_max": max(len(pickle.dumps(st, protocol=5)) for st in states.values()),
    }


def term_cost(n: int = 3000, seed: int = 5) -> dict[str, float]:
    """µs per post of :func:`~online_models.trends.topics_of`, uncached and cached, per language."""
    rng = random.Random(seed)
    trend_model._jieba_cut()
    en = _filler_words("en", 500, seed)
    zh = _filler_words("zh", 500, seed)
    texts = {
        "en": [_text("en", rng, [rng.choice(EN_TOPICS)], en) + f" {i}" for i in range(n)],
        "zh": [_text("zh", rng, [rng.choice(ZH_TOPICS)], zh) + f"{i}" for i in range(n)],
        "mixed": [_text("mixed", rng, [rng.choice(ZH_TOPICS)], zh) + f"{i}" for i in range(n)],
    }
    cost: dict[str, float] = {}
    for lang, batch in texts.items():
        trend_model.cache_clear()
        t = time.perf_counter()
        for text in batch:
            trend_model.topics_of(text, ("tag",))
        cost[f"{lang}_uncached_us"] = round((time.perf_counter() - t) / n * 1e6, 1)
        t = time.perf_counter()
        for text in batch:
            trend_model.topics_of(text, ("tag",))
        cost[f"{lang}_cached_us"] = round((time.perf_counter() - t) / n * 1e6, 1)
    return cost


# --- command line ---------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="?", default="all", choices=("trends", "members", "all"))
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.what in ("trends", "all"):
        _print("trends", evaluate_trends(days=args.days, seed=args.seed))
    if args.what in ("members", "all"):
        for seed in (args.seed + 4, args.seed + 5, args.seed + 6):
            _print(f"members (seed {seed})", evaluate_members(seed=seed))
        _print("kpis", kpi_cost(seed=args.seed))


def kpi_cost(seed: int = 7) -> dict[str, Any]:
    """µs per event of the KPI operator on the member stream (its hashes are checked for
    equality with an independent recompute in ``tests/unit/test_kpis.py``)."""
    from streams.operators.kpis import OperationsKpis

    events = member_stream(days=60, communities=3, members=400, seed=seed)
    spent = 0.0
    commands = 0
    states: dict[str, Any] = {}
    for _, (out, dt) in _timed(iter_locally(OperationsKpis(), time_batches(events, 60_000), states)):
        spent += dt
        commands += len(out.commands)
    return {
        "events": len(events),
        "us_per_event": round(spent / len(events) * 1e6, 1),
        "commands": commands,
        "snapshot_bytes_max": max(len(pickle.dumps(st, protocol=5)) for st in states.values()),
    }


def _print(title: str, report: dict[str, Any], indent: int = 0) -> None:
    pad = "  " * indent
    print(f"{pad}{title}:")
    for key, value in report.items():
        if isinstance(value, dict):
            _print(key, value, indent + 1)
        else:
            print(f"{pad}  {key}: {value}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
