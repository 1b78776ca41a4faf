"""``pulse evaluate atmosphere``: the labelled scenarios of issue #5 through the real pipeline.

Scenarios (:func:`studies.evaluate_detectors.scenarios`, one community each, English and
Chinese): steady communities at 20/60/200 posts/h, sudden drops (moderate and severe), neutral
volume spikes, a low-volume community and an activity collapse.  All of them run at once, merged
in event time, through Kafka, a worker running the ``atmosphere`` operator and Redis; the alerts
are read back from the ``alerts`` topic (and checked against ``pulse:alerts:{community}``) and
scored by :func:`studies.evaluate_detectors.score_alerts`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from streams import keys
from streams.evaluation.harness import mark, pipeline_run
from streams.labelled.atmosphere import generate, print_end_to_end, scenarios, score_alerts


def evaluate_atmosphere(seeds: int = 1) -> dict[str, Any]:
    """Run, print the per-scenario table and the targets; returns the figures."""
    scs = scenarios(seeds)
    events = [ev for sc in scs for ev in generate(sc)]
    with pipeline_run(events, "atmosphere") as run:
        alerts = run.topic_messages("alerts")
        stored = {
            sc.community: [orjson.loads(a) for a in run.client.lrange(keys.alerts(sc.community), 0, -1)]
            for sc in scs
        }
    by_community: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for alert in alerts:
        by_community[alert["community"]].append(alert)
    # A community's alerts share one partition, read in the order the worker emitted them.
    mismatched = [c for c, kept in stored.items() if kept != by_community.get(c, [])[::-1][: len(kept)]]
    tally, extra = score_alerts(scs, [by_community.get(sc.community, []) for sc in scs])
    print(f"{run.events:,} events, {len(scs)} communities, through the pipeline in {run.seconds:.0f} s")
    print_end_to_end(tally, extra, "Per scenario (alerts read back from the alerts topic)")
    busy = [d for (_, _, rate, _), ds in tally.delays.items() if rate >= 20 for d in ds]
    within = sum(d is not None and d <= 10 for d in busy) / len(busy)
    by_lang = {lang: tally.caught(60, lang) for lang in ("en", "zh")}
    worst_fa = max(tally.fa_rate(kind) for kind in ("steady", "spike", "low"))
    figures = {
        "events": run.events,
        "drops_caught_within_10_min": within,
        "drops_caught_within_60_min": by_lang,
        "median_delay_min": {rate: tally.median_delay(rate) for rate in (20.0, 60.0, 200.0)},
        "false_alarms_per_community_week": {k: tally.fa_rate(k) for k in ("steady", "spike", "low")},
        "alerts_topic_equals_redis_lists": not mismatched,
    }
    print("\nTargets (issue #5)")
    print(f"  {mark(within == 1)} drops at >= 20 posts/h alerted within 10 min: {within:.0%} of them")
    print(f"  {mark(worst_fa <= 1)} <= 1 false alarm per community-week (worst kind: {worst_fa:.2f})")
    print(
        f"  {mark(by_lang['zh'] >= by_lang['en'] - 0.1)} Chinese drops caught as reliably as English ones"
        " (within 60 min:"
        f" en {by_lang['en']:.0%}, zh {by_lang['zh']:.0%})"
    )
    print(f"  {mark(not mismatched)} every alert on the topic is in pulse:alerts:{{community}}")
    return figures
