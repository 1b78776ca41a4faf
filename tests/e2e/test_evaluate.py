"""``pulse evaluate``'s harness: labelled streams through the real broker, worker and Redis.

The strongest check of the path is parity: the alerts a worker publishes for a labelled stream
must be exactly the ones the operator produces when it is handed the same events in time order
without Kafka — which holds only if the worker feeds event-time operators a community's posts,
reactions and RSVPs in event-time order (:mod:`streams.alignment`), however the consumer fetched
the three topics.
"""

from __future__ import annotations

import math

import pytest

from streams.evaluation.harness import pipeline_run
from streams.evaluation.matching import evaluate_matching
from streams.labelled.atmosphere import DropScenario, generate, operator_alerts

pytestmark = pytest.mark.slow


def test_pipeline_alerts_equal_the_operator_run_without_kafka() -> None:
    scenarios = [
        DropScenario("drop", "zh", 60.0, days=3.5, seed=1, severity="severe", change_h=62.0),
        DropScenario("collapse", "en", 60.0, days=3.5, seed=2, change_h=63.0),
        DropScenario("steady", "en", 20.0, days=3.5, seed=3),
    ]
    events = [ev for sc in scenarios for ev in generate(sc)]
    with pipeline_run(events, "atmosphere") as run:  # published all at once: a backlog to catch up on
        published = run.topic_messages("alerts")
    expected = [alert for sc in scenarios for alert in operator_alerts(sc)]
    key = lambda a: (a["community"], a["ts"], a["id"])  # noqa: E731
    assert sorted(published, key=key) == sorted(expected, key=key)
    kinds = {(a["community"], a["kind"]) for a in expected}
    assert ("drop-severe-zh-60-1", "atmosphere_drop") in kinds
    assert ("collapse-en-60-2", "activity_drop") in kinds


def test_matching_evaluation_reads_what_redis_shows() -> None:
    figures = evaluate_matching(seed=2, days=6)
    assert figures["evaluations"] > 100 and figures["announced"] > 100
    assert 0.5 < figures["p@3"] <= 1 and 0.5 < figures["r@10"] <= 1 and not math.isnan(figures["mean_true"])
    assert figures["self_pairs"] == 0 and figures["self_announced"] == 0
