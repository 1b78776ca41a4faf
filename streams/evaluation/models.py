"""``pulse evaluate models``: demand/supply forecasts and meetup turnout (issue #6) through the pipeline.

The stream is :func:`studies.evaluate_models.synthetic_events`: communities with their own
levels, time zones, daily and weekly cycles, trends and bursts, and meetups whose members attend
with member-specific propensities.  It runs through Kafka, a worker running ``forecasts,turnout``
and Redis, one hour of event time at a time; after every hour the harness reads the forecast
each community published (``pulse:forecast:{community}``), so every forecast is scored against
the window that then happened, next to the naive baselines on the same windows.  Turnout is
scored from the meetups' final hashes (the prediction frozen at the start vs the members who
checked in) and from the progressive log loss in ``pulse:turnout:{community}``.
"""

from __future__ import annotations

from typing import Any, cast

import redis

from streams import keys
from streams.evaluation.harness import mark, pipeline_run
from streams.labelled.models import (
    DAY_MS,
    Truth,
    _score_forecasts,
    _score_turnout,
    noise_floor,
    synthetic_events,
)
from streams.operators.forecasts import DemandSupplyForecaster

HOUR_MS = 3_600_000


def _text(raw: dict[bytes | str, bytes | str]) -> dict[str, str]:
    # the harness's client does not decode responses: keys and values are bytes
    return {k.decode(): v.decode() for k, v in cast("dict[bytes, bytes]", raw).items()}


def evaluate_models(
    days: int = 14, communities: int = 12, seed: int = 7, warmup_days: float = 2.0
) -> dict[str, Any]:
    """Run, print model vs baselines and the targets; returns the figures."""
    truth = Truth()
    events = synthetic_events(days, communities, seed, truth)
    published: dict[tuple[str, int], tuple[int, int]] = {}

    def read_forecasts(client: redis.Redis, _until: int) -> None:
        for key in client.scan_iter(keys.pattern("forecast"), count=1000):
            window, demand, supply = client.hmget(key, "window", "demand", "supply")
            if window is not None and demand is not None and supply is not None:
                community = keys.ids_of(key, "forecast")[0]
                published[(community, int(window))] = (int(demand), int(supply))

    with pipeline_run(
        events, "forecasts,turnout", checkpoint_ms=HOUR_MS, on_checkpoint=read_forecasts, window_seconds=3600
    ) as run:
        client = run.client
        meetups = {
            keys.ids_of(key, "meetup")[1]: _text(client.hgetall(key))
            for key in client.scan_iter(keys.pattern("meetup"), count=1000)
        }
        losses = []
        for key in client.scan_iter(keys.pattern("turnout"), count=1000):
            h = _text(client.hgetall(key))
            losses.append((float(h["log_loss"]), float(h["log_loss_base_rate"]), int(h["labels"])))
    scored_from = min(ev.ts for ev in events) + int(warmup_days * DAY_MS)
    forecast = _score_forecasts(events, published, DemandSupplyForecaster(), None, scored_from)
    turnout = _score_turnout(events, meetups, losses, scored_from)
    floor = noise_floor(events, truth, warmup_days)
    print(
        f"{run.events:,} events ({days} days, {communities} communities) through the pipeline"
        f" in {run.seconds:.0f} s"
    )
    print(f"\nForecasts: {forecast['windows']:,} community windows after a {warmup_days:g}-day warm-up")
    print("  MAE of the forecasts read from pulse:forecast:{community} (demand and supply pooled):")
    for name, value in forecast["mae"].items():
        print(f"    {name:12s} {value:.3f}")
    for bucket, v in forecast["by_size"].items():
        print(f"    {bucket:26s} ratio {v['ratio']:.3f}  MAE {v['mae']:.3f}  ({v['scores']:,} scores)")
    print(
        f"\nTurnout: {turnout['meetups']} meetups starting after the warm-up;"
        f" {turnout['labels']:,} going members scored"
    )
    print(f"  log loss {turnout['log_loss']:.4f} vs base rate {turnout['log_loss_base_rate']:.4f}")
    print(f"  sum |predicted - actual| / sum actual          {turnout['weighted_relative_error']:.3f}")
    print(
        f"  noise floor: predicting with every member's true probability gives"
        f" {floor['turnout_mean_relative_error']:.1%} per meetup (binomial noise + meetup-wide shocks);"
        f" forecasts from the true rates score {floor['forecast_mae']:.3f}"
    )
    ratio = forecast["ratio_to_best_naive"]
    rel = turnout["mean_relative_error"]
    print("\nTargets (issue #6)")
    print(f"  {mark(ratio <= 0.8)} forecast MAE <= 0.8 x the best naive baseline: {ratio:.3f}")
    better = turnout["log_loss"] < turnout["log_loss_base_rate"]
    print(f"  {mark(better)} turnout log loss below the base rate's")
    print(f"  {mark(rel <= 0.15)} predicted turnout within 15% of actual on average per meetup: {rel:.1%}")
    return {"events": run.events, "forecast": forecast, "turnout": turnout}
