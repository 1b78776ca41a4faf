"""Measure the forecasting and turnout operators on a synthetic stream with known structure.

Real community data is private, so :func:`synthetic_events` builds one whose structure is
known (typed :class:`~schemas.events.Post` / ``Reaction`` / ``Rsvp`` objects, no JSON):

* per community: a level (Zipf-like spread), its own time zone, a daily cycle (working-hours
  peak, evening bump; offers peak later than needs), weekends quieter, a trend of −1.2 % to
  +3 % a day, and hours-long activity bursts (an AR(1) multiplier on every kind of event);
* tags with community-specific demand and supply mixes;
* meetups announced every 18-48 h for 2-12 days ahead; members RSVP (going / maybe / declined,
  later cancellations, maybe → going) and attend with a member-specific propensity lowered by
  long RSVP lead times and wavering, plus a meetup-wide shock (weather, speakers).

:func:`evaluate` runs the operators over any time-ordered event list in batches, exactly as
the engine would, and scores what they *published* against truth recomputed from the events
(not against the operators' own counters, which are cross-checked).  Nothing is scored in the
first ``warmup_days``.  Run ``python -m studies.evaluate_models`` for the report.

>>> events = synthetic_events(days=3, communities=2, seed=1)
>>> report = evaluate(events, warmup_days=1)
>>> sorted(report), report["forecast"]["windows"] > 50, report["forecast"]["matches_operator"]
(['forecast', 'speed', 'state', 'turnout'], True, True)
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from river import compose, linear_model, optim, preprocessing, time_series

from online_models.forecast import (
    CommunityForecaster,
    Observation,
    SeasonalLevel,
    poisson_median,
    slot_of,
)
from schemas.events import Event, Post, Reaction, Rsvp
from streams.labelled.models import (
    DAY_MS,
    HOUR_MS,
    START_MS,
    Truth,
    evaluate,
    noise_floor,
    synthetic_events,
)
from streams.operators.forecasts import DemandSupplyForecaster
from streams.operators.turnout import TurnoutPredictor


# --- the candidate forecasters, side by side (why the operator uses CommunityForecaster) ----------
def compare_forecasters(
    events: Sequence[Event], warmup_days: float = 2.0, window_seconds: int = 3600
) -> dict[str, float]:
    """MAE (demand and supply pooled) of each candidate, fed the same window series, after the
    warm-up, and the naive baselines'.  Rates are scored as Poisson medians (``*_median``) too."""
    size = window_seconds
    per: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0]))
    members: dict[tuple[str, int], set[str]] = defaultdict(set)
    for ev in events:
        w = ev.ts // 1000 // size * size
        row = per[ev.community][w]
        if isinstance(ev, Post):
            if ev.kind in ("need", "offer"):
                row[ev.kind == "offer"] += 1
        else:
            row[2] += 1
        members[(ev.community, w)].add(ev.member)
    first = min(ev.ts for ev in events) // 1000 // size * size
    last = max(ev.ts for ev in events) // 1000 // size * size
    scored_from = first + int(warmup_days * 86400)
    totals: dict[str, float] = defaultdict(float)
    n = 0
    for community, rows in per.items():
        lr = {
            t: compose.Pipeline(
                preprocessing.StandardScaler(), linear_model.LinearRegression(optim.SGD(0.01))
            )
            for t in (0, 1)
        }
        seasonal = {t: SeasonalLevel() for t in (0, 1)}
        holt_winters = {t: _river_holt_winters() for t in (0, 1)}
        snarimax = {t: _river_snarimax() for t in (0, 1)}
        model = CommunityForecaster()
        history: list[list[int]] = []
        for w in range(first, last, size):
            row = rows.get(w, [0, 0, 0, 0])
            obs = Observation(row[0], row[1], row[2], len(members.get((community, w), ())))
            history.append(list(obs))
            nxt = w + size
            actual = rows.get(nxt, [0, 0, 0, 0])
            slot = slot_of(nxt)
            x = {f"hour_{slot.hour}": 1.0, f"dow_{slot.dow}": 1.0}
            x["interactions"], x["members"] = math.log1p(obs.interactions), math.log1p(obs.members)
            model.learn_one(slot_of(w), obs)
            for t in (0, 1):
                seasonal[t].learn_one(slot_of(w), obs[t])
            rates = model.predict_one(slot)
            preds: dict[str, list[float]] = {"model": list(rates), "seasonal_level": [], "onehot_lr": []}
            preds["river_holt_winters"], preds["river_snarimax"] = [], []
            for t in (0, 1):
                for name, ts_model in (
                    ("river_holt_winters", holt_winters[t]),
                    ("river_snarimax", snarimax[t]),
                ):
                    ts_model.learn_one(obs[t])
                    try:
                        preds[name].append(max(0.0, ts_model.forecast(horizon=1)[0]))
                    except (ValueError, IndexError, ZeroDivisionError):  # not initialised yet
                        preds[name].append(obs[t])
                xt = dict(
                    x, lag1=history[-1][t], lag24=(history[-24] if len(history) >= 24 else history[-1])[t]
                )
                preds["onehot_lr"].append(max(0.0, lr[t].predict_one(xt)))
                preds["seasonal_level"].append(seasonal[t].predict_one(slot))
                lr[t].learn_one(xt, actual[t])
            preds["last_value"] = [history[-1][0], history[-1][1]]
            day_ago = history[-24] if len(history) >= 24 else history[-1]
            preds["seasonal_naive"] = [day_ago[0], day_ago[1]]
            if nxt >= scored_from:
                n += 2
                for name, (pd, ps) in preds.items():
                    totals[name] += abs(pd - actual[0]) + abs(ps - actual[1])
                    if name not in ("last_value", "seasonal_naive"):
                        totals[name + "_median"] += abs(poisson_median(pd) - actual[0]) + abs(
                            poisson_median(ps) - actual[1]
                        )
    return {name: total / max(1, n) for name, total in sorted(totals.items(), key=lambda kv: kv[1])}


def per_event_cost(n: int = 100_000) -> dict[str, float]:
    """µs per event of each operator's per-event path alone: one community, one window, no
    window closes and no meetup ends (those are paid once per window / meetup, see the report)."""
    rnd = random.Random(0)
    events: list[Event] = []
    for i in range(n):
        ts = START_MS + i * (HOUR_MS // (2 * n))
        member = f"m{rnd.randrange(500)}"
        kind = i % 10
        if kind < 2:
            events.append(
                Post(f"e{i}", "c", member, ts, f"p{i}", "…", ("need", "offer", "post")[i % 3], ("ai",), None)
            )
        elif kind < 9:
            events.append(Reaction(f"e{i}", "c", member, ts, "p0", "like"))
        else:
            status = ("going", "maybe", "cancelled")[i % 3]
            events.append(
                Rsvp(f"e{i}", "c", member, ts, f"meetup{i % 7}", status, (), START_MS + 30 * DAY_MS, 50)
            )
    out = {}
    for op in (DemandSupplyForecaster(), TurnoutPredictor()):
        runs = []
        for _ in range(3):
            states: dict[str, Any] = {"c": op.new_state("c")}  # type: ignore[attr-defined]
            t0 = time.process_time()
            for at in range(0, n, 2_000):
                op.apply_batch(states, events[at : at + 2_000])  # type: ignore[attr-defined]
            runs.append(time.process_time() - t0)
        out[op.name] = 1e6 * min(runs) / n  # type: ignore[attr-defined]
    return out


def _river_holt_winters() -> Any:
    # additive: the multiplicative form divides by a seasonal component that counts of 0 zero out
    return time_series.HoltWinters(alpha=0.1, beta=0.01, gamma=0.1, seasonality=24, multiplicative=False)


def _river_snarimax() -> Any:
    regressor = preprocessing.StandardScaler() | linear_model.LinearRegression(
        optimizer=optim.SGD(0.005), intercept_lr=0.1
    )
    return time_series.SNARIMAX(p=1, d=0, q=0, m=24, sp=1, sd=0, sq=0, regressor=regressor)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--communities", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warmup-days", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=2_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    truth = Truth()
    events = synthetic_events(args.days, args.communities, args.seed, truth)
    floor = noise_floor(events, truth, args.warmup_days)
    took = time.perf_counter() - t0
    print(
        f"{len(events):,} synthetic events ({args.days} days, {args.communities} communities) in {took:.1f} s"
    )
    report = evaluate(events, args.warmup_days, args.batch_size)
    f, t, s, st = report["forecast"], report["turnout"], report["speed"], report["state"]
    print(f"\nForecasts: {f['windows']:,} community windows after a {args.warmup_days:g}-day warm-up")
    print("  MAE of published point forecasts (demand and supply pooled):")
    for name, value in f["mae"].items():
        print(f"    {name:12s} {value:.3f}")
    print(f"  model / best naive baseline = {f['ratio_to_best_naive']:.3f}   (target <= 0.8)")
    best = min(f["mae"]["last_value"], f["mae"]["seasonal"])
    floor_f = floor["forecast_mae"]
    print(f"  noise floor: the true rates score {floor_f:.3f} = {floor_f / best:.3f} x best naive")
    for bucket, v in f["by_size"].items():
        print(f"    {bucket:26s} ratio {v['ratio']:.3f}  MAE {v['mae']:.3f}  ({v['scores']:,} scores)")
    check = "matches" if f["matches_operator"] else "DOES NOT MATCH"
    print(
        f"  operator's own MAE counter (after its {DemandSupplyForecaster().warmup_windows}-window warm-up):"
    )
    print(f"    {f['operator_mae']:.3f}; recomputing it from the published forecasts {check}")
    print(f"  top tags (expected counts): MAE {f['tag_mae']:.3f} vs last value {f['tag_mae_last_value']:.3f}")
    print(
        f"\nTurnout: {t['meetups']} meetups starting after the warm-up; {t['labels']:,} going members scored"
    )
    print(f"  log loss {t['log_loss']:.4f} vs base rate {t['log_loss_base_rate']:.4f}")
    print(f"  mean |predicted - actual| / actual per meetup {t['mean_relative_error']:.3f}  (target <= 0.15)")
    print(f"  sum |predicted - actual| / sum actual          {t['weighted_relative_error']:.3f}")
    floor_t = floor["turnout_mean_relative_error"]
    print(f"  noise floor: every member's true probability gives {floor_t:.3f} (binomial + meetup shock)")
    print(f"\nCost per event (apply_batch, batches of {args.batch_size:,}), this stream:")
    print(f"  forecasts {s['us_per_event_forecasts']:.2f} us, turnout {s['us_per_event_turnout']:.2f} us")
    closes = s["window_closes"]
    path = per_event_cost()
    per_close = (s["us_per_event_forecasts"] - path["forecasts"]) * s["events"] / max(1, closes)
    print(f"  per-event path alone: forecasts {path['forecasts']:.2f} us, turnout {path['turnout']:.2f} us;")
    density = s["events"] / max(1, closes)
    print(f"  a window close costs ~{per_close:.0f} us ({closes:,} closes, {density:.0f} events per window)")
    print("State per community (pickled into every batch's snapshot that touches it):")
    for name in ("forecasts", "turnout"):
        print(f"  {name:9s} {st[name + '_bytes'] / 1024:.1f} KB, {st[name + '_pickle_us']:.0f} us to pickle")
    print("\nCandidate forecasters on the same window series (MAE after the warm-up):")
    for name, value in compare_forecasters(events, args.warmup_days).items():
        print(f"  {name:26s} {value:.3f}")


if __name__ == "__main__":
    main()
