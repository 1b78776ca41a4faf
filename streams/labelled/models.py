"""Labelled demand/supply and meetup streams: communities with known seasonal rates and turnout.

Shared by ``pulse evaluate models``, the forecasting study (``studies/evaluate_models.py``) and the
tests; :func:`evaluate` runs the forecasts and turnout operators offline and scores them.
"""

from __future__ import annotations

import bisect
import math
import pickle
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from online_models.forecast import (
    poisson_median,
)
from schemas.events import Event, Post, Reaction, Rsvp
from streams import keys
from streams.labelled.sampling import poisson
from streams.operators.forecasts import DemandSupplyForecaster
from streams.operators.turnout import TurnoutPredictor

HOUR_MS = 3_600_000


DAY_MS = 24 * HOUR_MS


START_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z, a Monday


TAGS = (
    "fundraising",
    "hiring",
    "design",
    "legal",
    "devtools",
    "ai",
    "marketing",
    "sales",
    "cofounder",
    "pilots",
)


# --- the synthetic stream ------------------------------------------------------------------------
@dataclass
class _Community:
    id: str
    level: float  # need posts per hour at the daily peak, before trend and bursts
    supply_ratio: float
    tz: int  # hours ahead of UTC
    peak: float  # local hour of the working-hours peak
    evening: float  # weight of the 20:30 bump
    weekend: float  # Saturday/Sunday factor
    trend: float  # log growth per day
    members: list[str]
    cumulative: list[float]  # cumulative member activity weights (sampling)
    rsvp_rate: dict[str, float]
    propensity: dict[str, float]
    need_tags: list[float]
    offer_tags: list[float]


def _daily(hour: float, peak: float, evening: float) -> float:
    return 0.08 + math.exp(-(((hour - peak) / 3.2) ** 2)) + evening * math.exp(-(((hour - 20.5) / 2.0) ** 2))


def _community(rnd: random.Random, k: int) -> _Community:
    n = rnd.randint(150, 600)
    members = [f"c{k}-m{i}" for i in range(n)]
    weights = [1 / (i + 1) ** 0.7 for i in range(n)]
    cumulative, total = [], 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    shift = rnd.uniform(-0.1, 0.1)
    propensity = {}
    for m in members:
        kind = rnd.random()
        # reliable, average and flaky members
        low, high = (0.8, 0.97) if kind < 0.3 else (0.4, 0.75) if kind < 0.8 else (0.05, 0.3)
        propensity[m] = min(0.98, max(0.02, rnd.uniform(low, high) + shift))
    return _Community(
        id=f"c{k}",
        level=math.exp(rnd.uniform(math.log(1.5), math.log(12))),
        supply_ratio=rnd.uniform(0.6, 1.2),
        tz=rnd.randint(-8, 9),
        peak=rnd.uniform(12.5, 16),
        evening=rnd.uniform(0.1, 0.6),
        weekend=rnd.uniform(0.3, 0.8),
        trend=rnd.uniform(-0.012, 0.03),
        members=members,
        cumulative=cumulative,
        rsvp_rate={m: 0.06 + 0.4 * (w / weights[0]) ** 0.5 for m, w in zip(members, weights, strict=True)},
        propensity=propensity,
        need_tags=[rnd.expovariate(1) for _ in TAGS],
        offer_tags=[rnd.expovariate(1) for _ in TAGS],
    )


@dataclass
class Truth:
    """What the generator knows and no model can: the noise floor of each metric."""

    rates: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)  # (c, hour s) → λ
    attendance: dict[str, list[float]] = field(default_factory=dict)  # meetup → P(attend) of going
    starts: dict[str, int] = field(default_factory=dict)  # meetup → starts_at


def synthetic_events(
    days: int = 21, communities: int = 12, seed: int = 7, truth: Truth | None = None
) -> list[Event]:
    """A deterministic, time-ordered stream (see the module docstring for its structure).
    ``truth``, when given, receives the true rates and attendance probabilities."""
    rnd = random.Random(seed)
    profiles = [_community(rnd, k) for k in range(communities)]
    truth = truth if truth is not None else Truth()
    events: list[Event] = []
    for c in profiles:
        events += _activity(rnd, c, days, truth)
        events += _meetups(rnd, c, days, truth)
    events.sort(key=lambda e: (e.ts, e.id))
    return events


def _activity(rnd: random.Random, c: _Community, days: int, truth: Truth) -> list[Event]:
    events: list[Event] = []
    total = c.cumulative[-1]

    def member() -> str:
        return c.members[bisect.bisect(c.cumulative, rnd.random() * total)]

    burst = 0.0
    posts: list[str] = []
    for hour in range(days * 24):
        t0 = START_MS + hour * HOUR_MS
        local = (hour + c.tz) % 24
        week = c.weekend if ((hour + c.tz) // 24) % 7 >= 5 else 1.0
        burst = 0.9 * burst + rnd.gauss(0, 0.12)
        mult = week * math.exp(c.trend * hour / 24 + burst)
        lam_need = c.level * _daily(local, c.peak, c.evening) * mult
        lam_offer = c.level * c.supply_ratio * _daily(local, c.peak + 3, c.evening * 1.5) * mult
        truth.rates[(c.id, t0 // 1000)] = (lam_need, lam_offer)
        for kind, lam, weights in (("need", lam_need, c.need_tags), ("offer", lam_offer, c.offer_tags),
                                   ("post", 2 * lam_need, None)):  # fmt: skip
            for _ in range(poisson(rnd, lam, normal_above=30)):
                n = len(events)
                tags = (
                    tuple(sorted(set(rnd.choices(TAGS, weights, k=rnd.choice((1, 1, 2)))))) if weights else ()
                )
                pid = f"{c.id}-p{n}"
                posts.append(pid)
                ts = t0 + rnd.randrange(HOUR_MS)
                events.append(Post(f"{c.id}-e{n}", c.id, member(), ts, pid, "…", kind, tags, None))
        for _ in range(poisson(rnd, 5 * (3 * lam_need + lam_offer), normal_above=30)):
            if posts:
                target = posts[-1 - rnd.randrange(min(50, len(posts)))]
                ts = t0 + rnd.randrange(HOUR_MS)
                events.append(Reaction(f"{c.id}-e{len(events)}", c.id, member(), ts, target, "like"))
        del posts[:-200]
    return events


def _meetups(rnd: random.Random, c: _Community, days: int, truth: Truth) -> list[Event]:
    events: list[Event] = []
    end = START_MS + days * DAY_MS
    announce = START_MS + rnd.randrange(DAY_MS)
    k = 0
    while announce < end:
        k += 1
        meetup = f"{c.id}-meetup{k}"
        day = (announce + rnd.randint(2, 12) * DAY_MS) // DAY_MS * DAY_MS
        starts_at = day + ((18 - c.tz) % 24) * HOUR_MS + rnd.choice((0, 1_800_000))
        announce_at, announce = announce, announce + int(rnd.uniform(18, 48) * HOUR_MS)
        if starts_at + 3 * HOUR_MS > end:  # the stream ends before its check-ins would
            continue
        capacity = rnd.choice((None, 30, 50, 80, 120))
        tags = ("meetup", rnd.choice(TAGS))
        shock = rnd.gauss(0, 0.25)
        intents = []  # (ts, member, status)
        for m in c.members:
            if rnd.random() >= c.rsvp_rate[m]:
                continue
            first = announce_at + int((starts_at - 1_800_000 - announce_at) * (1 - rnd.random() ** 2))
            r = rnd.random()
            status = "going" if r < 0.65 else "maybe" if r < 0.9 else "declined"
            intents.append((first, m, status))
            later = first + int((starts_at - 1_800_000 - first) * rnd.random())
            if status == "going" and rnd.random() < 0.08:
                intents.append((later, m, "cancelled"))
            elif status == "maybe" and rnd.random() < 0.35:
                intents.append((later, m, "going"))
        intents.sort()
        latest: dict[str, tuple[str, int, bool]] = {}  # member → (status, ts of going, wavered)
        going = 0
        for ts, m, status in intents:
            before = latest.get(m)
            if status == "going" and capacity is not None and going >= capacity:
                status = "maybe"  # full: wait-listed
            if before is not None and before[0] == "going":
                going -= 1
            if status == "going":
                going += 1
            wavered = before is not None and before[0] == "maybe"
            latest[m] = (status, ts, wavered or (before is not None and before[2]))
            rid = f"{meetup}-r{len(events)}"
            events.append(Rsvp(rid, c.id, m, ts, meetup, status, tags, starts_at, capacity))
        for m, (status, ts, wavered) in latest.items():
            if status == "going":
                lead_days = (starts_at - ts) / DAY_MS
                z = _logit(c.propensity[m]) - 0.35 * math.log1p(lead_days) - 0.6 * wavered + shock
                attends = rnd.random() < 1 / (1 + math.exp(-z))
                truth.attendance.setdefault(meetup, []).append(1 / (1 + math.exp(shock - z)))  # no shock
                truth.starts[meetup] = starts_at
            else:
                attends = status == "maybe" and rnd.random() < 0.1  # a walk-in
            if attends:
                ts, rid = starts_at + rnd.randint(5, 120) * 60_000, f"{meetup}-r{len(events)}"
                events.append(Rsvp(rid, c.id, m, ts, meetup, "attended", tags, starts_at, capacity))
    return events


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# --- running the operators -------------------------------------------------------------------------
def evaluate(
    events: Sequence[Event],
    warmup_days: float = 2.0,
    batch_size: int = 2_000,
    forecaster: DemandSupplyForecaster | None = None,
    turnout: TurnoutPredictor | None = None,
) -> dict[str, Any]:
    """Run both operators over ``events`` (time-ordered) in batches; score what they published.

    Forecasts: MAE of the published point forecasts vs the naive baselines on the same
    windows: every complete window starting ``warmup_days`` or more after the first event.
    Turnout: per meetup starting after the warm-up, |published frozen turnout − actual| /
    actual, with "actual" recomputed from the events (going before the start, then checked
    in); log loss of the model and of the base rate from the operator's progressive counters,
    which cover every outcome (meetups end days after they are announced, so few fall in the
    warm-up).  Also: µs per event of ``apply_batch`` and the size of the pickled states.
    """
    fc = forecaster or DemandSupplyForecaster()
    tp = turnout or TurnoutPredictor()
    f_states: dict[str, Any] = {}
    t_states: dict[str, Any] = {}
    published: dict[tuple[str, int], tuple[int, int]] = {}  # (community, window) → (demand, supply)
    meetups: dict[str, dict[str, Any]] = {}  # meetup → the last published fields
    spent = {"forecasts": 0.0, "turnout": 0.0}
    for at in range(0, len(events), batch_size):
        batch = events[at : at + batch_size]
        for ev in batch:
            if ev.community not in f_states:
                f_states[ev.community] = fc.new_state(ev.community)
                t_states[ev.community] = tp.new_state(ev.community)
        t0 = time.process_time()  # CPU time: honest on a busy machine too
        f_out = fc.apply_batch(f_states, batch)
        t1 = time.process_time()
        t_out = tp.apply_batch(t_states, batch)
        spent["forecasts"] += t1 - t0
        spent["turnout"] += time.process_time() - t1
        for cmd in f_out.commands:
            if cmd[0] != "HSET" or not cmd[1].startswith(keys.pattern("forecast")[:-1]):
                continue  # an alert's LPUSH / LTRIM
            fields = dict(zip(cmd[2::2], cmd[3::2], strict=True))
            community = keys.ids_of(cmd[1], "forecast")[0]
            published[(community, fields["window"])] = (fields["demand"], fields["supply"])
        for cmd in t_out.commands:
            if cmd[0] == "HSET" and cmd[1].startswith(keys.pattern("meetup")[:-1]):
                meetups[keys.ids_of(cmd[1], "meetup")[1]] = dict(zip(cmd[2::2], cmd[3::2], strict=True))
    first = min(ev.ts for ev in events)
    scored_from = first + int(warmup_days * DAY_MS)
    losses = [(st.log_loss.get(), st.log_loss_base.get(), st.labels) for st in t_states.values()]
    return {
        "forecast": _score_forecasts(events, published, fc, f_states, scored_from),
        "turnout": _score_turnout(events, meetups, losses, scored_from),
        "speed": {
            "events": len(events),
            "us_per_event_forecasts": 1e6 * spent["forecasts"] / len(events),
            "us_per_event_turnout": 1e6 * spent["turnout"] / len(events),
            "window_closes": sum(st.closed for st in f_states.values()),
        },
        "state": _state_cost(f_states, t_states),
    }


def _truth(events: Sequence[Event], size: int) -> dict[str, dict[int, list[int]]]:
    """community → window start → [need posts, offer posts], from the events alone."""
    truth: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for ev in events:
        if isinstance(ev, Post) and ev.kind in ("need", "offer"):
            truth[ev.community][ev.ts // 1000 // size * size][ev.kind == "offer"] += 1
    return truth


def _score_forecasts(
    events: Sequence[Event],
    published: dict[tuple[str, int], tuple[int, int]],
    op: DemandSupplyForecaster,
    states: dict[str, Any] | None,
    scored_from: int,
) -> dict[str, Any]:
    """Published point forecasts vs the naive baselines on the same windows; with the operator's
    ``states`` (an offline run) also its own counters, cross-checked against the published ones."""
    size = op.size
    truth = _truth(events, size)
    last_ts = max(ev.ts for ev in events)
    errors = {"model": 0.0, "last_value": 0.0, "seasonal": 0.0}
    by_size: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])  # model, last, seasonal, n
    n = 0
    for (community, window), forecast in published.items():
        if window * 1000 < scored_from or window * 1000 + op.size_ms > last_ts:
            continue  # warm-up, or the window the stream ends in (incomplete)
        series = truth[community]
        actual = series.get(window, [0, 0])
        last = series.get(window - size, [0, 0])
        seasonal = series.get(window - op.period * size, [0, 0])
        level = sum(sum(v) for v in series.values()) / max(1, len(series))
        bucket = "quiet (<2 posts/window)" if level < 2 else "medium (2-4)" if level < 4 else "busy (>4)"
        for i in (0, 1):
            e = (abs(forecast[i] - actual[i]), abs(last[i] - actual[i]), abs(seasonal[i] - actual[i]))
            errors["model"] += e[0]
            errors["last_value"] += e[1]
            errors["seasonal"] += e[2]
            b = by_size[bucket]
            b[0] += e[0]
            b[1] += e[1]
            b[2] += e[2]
            b[3] += 1
            n += 1
    mae = {k: v / max(1, n) for k, v in errors.items()}
    best = min(mae["last_value"], mae["seasonal"])
    report: dict[str, Any] = {
        "windows": n // 2,
        "mae": mae,
        "ratio_to_best_naive": mae["model"] / best if best else float("nan"),
        "by_size": {
            k: {"ratio": v[0] / min(v[1], v[2]), "mae": v[0] / v[3], "scores": int(v[3])}
            for k, v in sorted(by_size.items())
        },
    }
    if states is None:
        return report
    # Cross-check: the operators' own progressive counters (after their per-community warm-up).
    own = [0.0, 0.0]
    own_tags = [0.0, 0.0, 0]
    for st in states.values():
        err = st.errors
        own[0] += err["model"].total
        own[1] += err["model"].n
        own_tags[0] += err["tags"].total
        own_tags[1] += err["tags_last_value"].total
        own_tags[2] += err["tags"].n
    return {
        **report,
        "operator_mae": own[0] / own[1] if own[1] else None,
        "tag_mae": own_tags[0] / own_tags[2] if own_tags[2] else None,
        "tag_mae_last_value": own_tags[1] / own_tags[2] if own_tags[2] else None,
        "matches_operator": _matches(op, published, truth, scored_from, states),
    }


def _matches(
    op: DemandSupplyForecaster,
    published: dict[tuple[str, int], tuple[int, int]],
    truth: dict[str, dict[int, list[int]]],
    scored_from: int,
    states: dict[str, Any],
) -> bool:
    """Does recomputing the operator's own MAE counter from its published forecasts agree?"""
    total, n = 0.0, 0
    for community, st in states.items():
        windows = sorted(w for c, w in published if c == community)
        for k, window in enumerate(windows):  # the k-th forecast is scored at close number k + 1
            if k + 1 < op.warmup_windows or window >= (st.open_start or 0):
                continue
            forecast = published[(community, window)]
            actual = truth[community].get(window, [0, 0])
            total += abs(forecast[0] - actual[0]) + abs(forecast[1] - actual[1])
            n += 2
    own_total = sum(st.errors["model"].total for st in states.values())
    own_n = sum(st.errors["model"].n for st in states.values())
    return n == own_n and math.isclose(total, own_total, abs_tol=1e-6)


def _score_turnout(
    events: Sequence[Event],
    meetups: dict[str, dict[str, Any]],
    losses: Sequence[tuple[float, float, int]],
    scored_from: int,
) -> dict[str, Any]:
    """Frozen predictions of ended meetups vs turnout recomputed from the events; log losses of the
    model and the base rate, pooled from each community's (log loss, base-rate log loss, labels)."""
    latest: dict[str, dict[str, str]] = defaultdict(dict)  # meetup → member → status before the start
    came: dict[str, set[str]] = defaultdict(set)
    starts: dict[str, int] = {}
    for ev in events:
        if isinstance(ev, Rsvp) and ev.starts_at is not None:
            starts[ev.meetup] = ev.starts_at
            if ev.status == "attended":
                came[ev.meetup].add(ev.member)
            elif ev.ts < ev.starts_at:
                latest[ev.meetup][ev.member] = ev.status
    rel, abs_err, actual_total, n = 0.0, 0.0, 0, 0
    for meetup, fields in meetups.items():
        if fields["state"] != "ended" or starts[meetup] < scored_from:
            continue
        going = {m for m, s in latest[meetup].items() if s == "going"}
        actual = len(going & came[meetup])
        predicted = float(fields["predicted_turnout"])
        if actual:
            rel += abs(predicted - actual) / actual
            n += 1
        abs_err += abs(predicted - actual)
        actual_total += actual
    loss = [0.0, 0.0, 0]
    for model_loss, base_loss, k in losses:
        loss[0] += model_loss * k
        loss[1] += base_loss * k
        loss[2] += k
    return {
        "meetups": n,
        "mean_relative_error": rel / n if n else None,
        "weighted_relative_error": abs_err / actual_total if actual_total else None,
        "log_loss": loss[0] / loss[2] if loss[2] else None,
        "log_loss_base_rate": loss[1] / loss[2] if loss[2] else None,
        "labels": loss[2],
    }


def _state_cost(f_states: dict[str, Any], t_states: dict[str, Any]) -> dict[str, float]:
    """Mean pickled size (bytes) and pickling time (µs) of one community's state: the engine
    snapshots every community a batch touches, so this is paid per community per batch."""
    out: dict[str, float] = {}
    for name, states in (("forecasts", f_states), ("turnout", t_states)):
        sizes = [len(pickle.dumps(st, protocol=5)) for st in states.values()]
        out[f"{name}_bytes"] = sum(sizes) / len(sizes)
        runs = []
        for _ in range(5):
            t0 = time.process_time()
            for st in states.values():
                pickle.dumps(st, protocol=5)
            runs.append(time.process_time() - t0)
        out[f"{name}_pickle_us"] = 1e6 * min(runs) / len(sizes)
    return out


def noise_floor(events: Sequence[Event], truth: Truth, warmup_days: float = 2.0) -> dict[str, float]:
    """The best any model could do: forecasts from the true rates (Poisson medians), turnout
    from every member's true probability (but not the meetup-wide shock), same scoring."""
    scored_from = min(ev.ts for ev in events) + int(warmup_days * DAY_MS)
    last_window = max(ev.ts for ev in events) // HOUR_MS * 3600 - 3600
    counts = _truth(events, 3600)
    err, n = 0.0, 0
    for (community, window), rates in truth.rates.items():
        if scored_from <= window * 1000 and window <= last_window:
            actual = counts[community].get(window, [0, 0])
            err += abs(poisson_median(rates[0]) - actual[0]) + abs(poisson_median(rates[1]) - actual[1])
            n += 2
    came: dict[str, int] = defaultdict(int)
    going: dict[str, dict[str, str]] = defaultdict(dict)
    for ev in events:
        if isinstance(ev, Rsvp) and ev.starts_at is not None:
            if ev.status == "attended":
                came[ev.meetup] += going[ev.meetup].get(ev.member) == "going"
            elif ev.ts < ev.starts_at:
                going[ev.meetup][ev.member] = ev.status
    rel = [
        abs(sum(ps) - came[m]) / came[m]
        for m, ps in truth.attendance.items()
        if truth.starts[m] >= scored_from and came[m]
    ]
    return {"forecast_mae": err / max(1, n), "turnout_mean_relative_error": sum(rel) / max(1, len(rel))}
