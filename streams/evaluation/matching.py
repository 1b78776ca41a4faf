"""``pulse evaluate matching``: need/offer match candidates (issue #7) through the real pipeline.

The stream is :func:`studies.evaluate_matching.match_stream`: 24 services in 8 topics,
needs and offers phrased in English, Chinese and code-switched text with noise tags, replies,
resolutions, expiries, self-match traps, chatter and reactions, and the ground truth of which
offers serve which needs.  It runs through Kafka, a worker running ``matching`` and Redis, one
day of event time at a time; at every day boundary each need that is open then is judged by
what a member would see: ``pulse:matches:{community}:{need}``, best first, against the offers
that truly serve it and are open at that moment (:class:`~studies.evaluate_matching.MatchScore`).
The ``match-candidates`` topic is checked too: every candidate it announced names a need and
an offer of different members.
"""

from __future__ import annotations

from typing import Any, cast

import redis

from streams import keys
from streams.evaluation.harness import mark, pipeline_run
from streams.labelled.matching import DAY, MatchScore, match_stream


def evaluate_matching(seed: int = 0, days: int = 30) -> dict[str, Any]:
    """Run, print precision@3 / recall@10 and the targets; returns the figures."""
    world = match_stream(seed=seed, days=days)
    score = MatchScore(world)

    def judge(client: redis.Redis, until: int) -> None:
        now = until - 1  # everything before ``until`` is applied
        for need, kind in world.kind.items():
            start, end = world.interval[need]
            if kind != "need" or not start <= now < end:
                continue
            key = keys.matches(world.community[need], need)
            # the harness's client does not decode responses, and without scores members are bytes
            ranked = [m.decode() for m in cast("list[bytes]", client.zrevrange(key, 0, 9))]
            score.judge(world.community[need], now, need, world.member[need], ranked)

    with pipeline_run(world.events, "matching", checkpoint_ms=DAY, on_checkpoint=judge) as run:
        announced = run.topic_messages("match-candidates")
    m = score.metrics()
    self_announced = sum(a["need_member"] == a["offer_member"] for a in announced)
    print(f"{run.events:,} events ({days} days, seed {seed}) through the pipeline in {run.seconds:.0f} s")
    print(
        f"  {m['evaluations']} (open need, day) judgements over {m['needs']} needs;"
        f" mean {m['mean_true']:.1f} true offers open per judged need"
    )
    print(f"  precision@3 {m['p@3']:.3f}   (strict, needs with >= 3 true offers: {m['p@3_strict']:.3f})")
    print(f"  recall@10   {m['r@10']:.3f}")
    for group, recall in m["pair_recall@10"].items():
        print(f"    pair recall@10 {group:10s} {recall:.3f}")
    print(f"  {len(announced):,} candidates announced on match-candidates; self-matches shown or announced:"
          f" {m['self_pairs'] + self_announced}")  # fmt: skip
    print("\nTargets (issue #7)")
    print(f"  {mark(m['p@3'] >= 0.8)} precision@3 >= 0.8: {m['p@3']:.3f}")
    print(f"  {mark(m['r@10'] >= 0.9)} recall@10 >= 0.9: {m['r@10']:.3f}")
    print(f"  {mark(m['self_pairs'] + self_announced == 0)} no candidate pairs a member with themself")
    return {**m, "announced": len(announced), "self_announced": self_announced, "events": run.events}
