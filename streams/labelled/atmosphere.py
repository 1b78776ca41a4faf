"""Labelled atmosphere streams: communities whose mood drops (or not) at a known moment.

Shared by ``pulse evaluate atmosphere``, the detector study (``studies/evaluate_detectors.py``) and
the tests.  Poisson arrivals with a daily rhythm, the simulator's post texts with a known tone
and reactions from the simulator's per-tone mix; :func:`score_alerts` scores alerts against them.

>>> events = generate(DropScenario("drop", "zh", 20.0, days=0.5, seed=1, change_h=6.0))
>>> sum(e.__class__ is Post for e in events) > 100, sorted({e.community for e in events})
(True, ['drop-moderate-zh-20-1'])
"""

from __future__ import annotations

import functools
import math
import random
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from schemas.events import Event, Post, Reaction, Rsvp
from streams.operators.atmosphere import AtmosphereIndex
from streams.operators.base import Output

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


MINUTE_MS = 60_000


HOUR_MS = 3_600_000


DAY_MS = 24 * HOUR_MS


WEEK_MS = 7 * DAY_MS


COOLDOWN_MS = 6 * HOUR_MS


DROP_MS = 3 * HOUR_MS


TONES = {
    "moderate": (0.10, 0.40, 0.50),
    "severe": (0.05, 0.25, 0.70),
    "neutral": (0.0, 1.0, 0.0),
}


LANG_TABLES = {"en": (0.94, 0.02, 0.04), "zh": (0.03, 0.77, 0.20)}  # shares of en / zh / mixed posts


KIND_WEIGHTS = (0.55, 0.09, 0.07, 0.03, 0.26)  # post, need, offer, resolved, reply (as the simulator)


MIX = (0.35, 0.50, 0.15)  # posts, reactions, RSVPs


@dataclass(frozen=True)
class DropScenario:
    """One labelled synthetic community stream."""

    kind: str  # steady | spike | low | drop | collapse
    lang: str  # en | zh
    posts_per_hour: float  # daily average
    days: float = 7.0
    seed: int = 0
    severity: str = "moderate"  # drop tone
    change_h: float | None = None  # hours after the start when the labelled change begins

    @property
    def community(self) -> str:
        """Unique per scenario: :func:`scenarios` runs them side by side through one pipeline."""
        severity = f"-{self.severity}" if self.kind == "drop" else ""
        return f"{self.kind}{severity}-{self.lang}-{self.posts_per_hour:g}-{self.seed}"

    @property
    def change_ms(self) -> int | None:
        return None if self.change_h is None else START_MS + int(self.change_h * HOUR_MS)


@functools.cache
def _phrasebank() -> Any:
    from streams.simulator import Phrasebank

    return Phrasebank(0)


@functools.cache
def _reaction_tables() -> tuple[tuple[list[str], list[int]], ...]:
    from streams.simulator import REACTION_MIX

    return tuple((list(mix), list(mix.values())) for mix in REACTION_MIX)


def generate(sc: DropScenario) -> list[Event]:
    """The scenario's events in event-time order (deterministic for a given scenario)."""
    base = f"{sc.kind}-{sc.lang}-{sc.posts_per_hour:g}-{sc.seed}"  # the seed the tables were measured with
    rng = random.Random(f"{base}:{sc.severity}:{sc.change_h}")
    pb = _phrasebank()
    reactions = _reaction_tables()
    positive, negative = rng.uniform(0.3, 0.55), rng.uniform(0.05, 0.2)
    base_tone = (positive, 1.0 - positive - negative, negative)
    phases: list[tuple[int, int, tuple[float, float, float] | None, float]] = []  # start, end, tone, rate
    if sc.kind == "drop" and sc.change_ms is not None:
        phases.append((sc.change_ms, sc.change_ms + DROP_MS, TONES[sc.severity], 1.0))
    elif sc.kind == "collapse" and sc.change_ms is not None:
        phases.append((sc.change_ms, sc.change_ms + DROP_MS, None, 0.05))
    elif sc.kind == "spike":
        for day in (1.6, 3.4, 5.5):
            at = START_MS + int(day * DAY_MS)
            phases.append((at, at + DROP_MS, TONES["neutral"], 5.0))
    end = START_MS + int(sc.days * DAY_MS)
    community, c = sc.community, 0
    members = [f"u{i:03d}" for i in range(300)]
    member_weights = [1.0 / (i + 1) ** 0.8 for i in range(300)]
    recent: list[tuple[str, int]] = []
    events: list[Event] = []
    mean_rate = sc.posts_per_hour / MIX[0] / HOUR_MS  # events per ms
    t = float(START_MS)
    while True:
        hour = (t - START_MS) / HOUR_MS % 24
        rhythm = 1.0 + 0.6 * math.sin(2 * math.pi * (hour - 9) / 24)
        tone, factor = base_tone, 1.0
        for start, stop, phase_tone, phase_rate in phases:
            if start <= t < stop:
                tone, factor = phase_tone or base_tone, phase_rate
        rate = mean_rate * rhythm * factor
        t += rng.expovariate(rate) if rate > 0 else HOUR_MS
        # thinning: the rate may only rise within one gap by the rhythm's slope; small error, ignored
        ts = int(t)
        if ts >= end:
            return events
        c += 1
        eid = f"{community}:e{c}"
        member = rng.choices(members, member_weights)[0]
        r = rng.random()
        if r < MIX[0] or not recent:
            tone_i = rng.choices((0, 1, 2), tone)[0]
            lang = rng.choices((0, 1, 2), LANG_TABLES[sc.lang])[0]
            kind = rng.choices(range(5), KIND_WEIGHTS)[0]
            pool = pb.pool(lang, kind, rng.randrange(8), tone_i)
            text = pool[rng.randrange(len(pool))][0]
            pid = f"{community}:p{c}"
            recent.append((pid, tone_i))
            if len(recent) > 400:
                del recent[:200]
            events.append(Post(eid, community, member, ts, pid, text, "post", (), None))
        elif r < MIX[0] + MIX[1]:
            pid, tone_i = recent[-1 - int(rng.random() * rng.random() * len(recent))]
            names, weights = reactions[tone_i]
            events.append(Reaction(eid, community, member, ts, pid, rng.choices(names, weights)[0]))
        else:
            events.append(Rsvp(eid, community, member, ts, f"{community}:m", "going", (), None, None))


def scenarios(seeds: int) -> list[DropScenario]:
    out: list[DropScenario] = []
    for lang in ("en", "zh"):
        for seed in range(seeds):
            for rate in (20.0, 60.0, 200.0):
                out.append(DropScenario("steady", lang, rate, seed=seed))
                for severity in ("moderate", "severe"):
                    hour = 72.0 + seed * 1.37 + (3.1 if severity == "severe" else 0.0)  # varied hour of day
                    out.append(
                        DropScenario(
                            "drop", lang, rate, days=4.5, seed=seed, severity=severity, change_h=hour
                        ),
                    )
            for rate in (20.0, 60.0):
                out.append(DropScenario("spike", lang, rate, seed=seed))
            out.append(DropScenario("low", lang, 2.0, seed=seed))
            out.append(DropScenario("collapse", lang, 60.0, days=4.5, seed=seed, change_h=74.0 + seed * 2.3))
    return out


def dedupe(alarms: Sequence[int], cooldown_ms: int = COOLDOWN_MS) -> list[int]:
    """Alarms as alerts: one per cooldown, as the operator sends them.

    >>> dedupe([0, 1, 6 * 3_600_000, 7 * 3_600_000])
    [0, 21600000]
    """
    out: list[int] = []
    for ts in alarms:
        if not out or ts - out[-1] >= cooldown_ms:
            out.append(ts)
    return out


@dataclass
class Tally:
    """False alarms per drop-free stream kind, and delays of labelled drops."""

    false_alarms: dict[str, int] = field(default_factory=dict)
    weeks: dict[str, float] = field(default_factory=dict)
    delays: dict[tuple[str, str, float, str], list[float | None]] = field(default_factory=dict)

    def add(self, sc: DropScenario, alerts: Sequence[int]) -> None:
        change = sc.change_ms
        if sc.kind == "drop" and change is not None:
            hits = [t for t in alerts if change <= t < change + DROP_MS]
            fas = [t for t in alerts if not change <= t < change + DROP_MS + HOUR_MS]
            key = (sc.lang, sc.severity, sc.posts_per_hour, "drop")
            self.delays.setdefault(key, []).append((hits[0] - change) / MINUTE_MS if hits else None)
            group = f"steady-{sc.posts_per_hour:g}"
        else:
            fas = list(alerts)
            group = "low" if sc.kind == "low" else f"{sc.kind}-{sc.posts_per_hour:g}"
        self.false_alarms[group] = self.false_alarms.get(group, 0) + len(fas)
        self.weeks[group] = self.weeks.get(group, 0.0) + sc.days / 7.0

    def fa_rate(self, prefix: str) -> float:
        groups = [g for g in self.weeks if g.startswith(prefix)]
        weeks = sum(self.weeks[g] for g in groups)
        return sum(self.false_alarms[g] for g in groups) / weeks if weeks else float("nan")

    def caught(self, within: float, lang: str | None = None, rate: float | None = None) -> float:
        ds = [
            d
            for (lg, _, r, _), v in self.delays.items()
            if (lang is None or lg == lang) and (rate is None or r == rate)
            for d in v
        ]
        return sum(d is not None and d <= within for d in ds) / len(ds) if ds else float("nan")

    def median_delay(self, rate: float | None = None, severity: str | None = None) -> float:
        ds = [
            d
            for (_, sev, r, _), v in self.delays.items()
            if (rate is None or r == rate) and (severity is None or sev == severity)
            for d in v
            if d is not None
        ]
        return statistics.median(ds) if ds else float("nan")

    def precision(self) -> float:
        tp = sum(d is not None for v in self.delays.values() for d in v)
        fp = sum(self.false_alarms.values())
        return tp / (tp + fp) if tp + fp else float("nan")


def operator_alerts(sc: DropScenario) -> list[dict[str, Any]]:
    op = AtmosphereIndex()
    states = {sc.community: op.new_state(sc.community)}
    out = Output()
    events = generate(sc)
    for at in range(0, len(events), 500):
        out.extend(op.apply_batch(states, events[at : at + 500]))
    return [m.value for m in out.messages]


def end_to_end(scs: Sequence[DropScenario], jobs: int = 1) -> tuple[Tally, dict[str, Any]]:
    """Table 2: the shipped operator (default config), alerts as it emits them."""
    with ProcessPoolExecutor(jobs) as pool:
        results = list(pool.map(operator_alerts, scs, chunksize=1))
    return score_alerts(scs, results)


def score_alerts(
    scs: Sequence[DropScenario], alerts: Sequence[Sequence[dict[str, Any]]]
) -> tuple[Tally, dict[str, Any]]:
    """Score each scenario's alerts (JSON documents as the operator publishes them, oldest first):
    drop delays and false alarms (:class:`Tally`), recoveries, and the activity-collapse figures."""
    tally = Tally()
    extra: dict[str, Any] = {"recovered": 0, "caught": 0, "activity_fa": 0, "weeks": 0.0, "collapse": []}
    for sc, found in zip(scs, alerts, strict=True):
        drops = [a["ts"] for a in found if a["kind"] == "atmosphere_drop"]
        quiet = [a["ts"] for a in found if a["kind"] == "activity_drop"]
        if sc.kind == "collapse":
            change = sc.change_ms or 0
            hit = [t for t in quiet if change <= t < change + DROP_MS + HOUR_MS]
            extra["collapse"].append((hit[0] - change) / MINUTE_MS if hit else None)
            extra["activity_fa"] += len(quiet) - len(hit[:1])
            extra["weeks"] += sc.days / 7
            continue
        extra["activity_fa"] += len(quiet)
        extra["weeks"] += sc.days / 7
        tally.add(sc, drops)
        if sc.kind == "drop" and sc.change_ms is not None:
            caught = [a for a in found if a["kind"] == "atmosphere_drop" and a["ts"] >= sc.change_ms]
            if caught:
                extra["caught"] += 1
                first = caught[0]["id"]
                extra["recovered"] += any(a.get("recovers", {}).get("id") == first for a in found)
    return tally, extra


def print_end_to_end(tally: Tally, extra: dict[str, Any], title: str) -> None:
    """Table 2's lines: per drop kind and language the delays, then false alarms and collapses."""
    print(f"\n{title}")
    for rate in (20.0, 60.0, 200.0):
        for sev in ("moderate", "severe"):
            for lang in ("en", "zh"):
                ds = tally.delays.get((lang, sev, rate, "drop"), [])
                caught = [d for d in ds if d is not None]
                print(
                    f"  drop {sev:8s} {lang} {rate:5g} posts/h: caught {len(caught)}/{len(ds)}, "
                    f"<=10 min {sum(d <= 10 for d in caught)}/{len(ds)}, delays (min) "
                    f"{', '.join(f'{d:.0f}' for d in sorted(caught))}"
                )
    print(
        f"  false atmosphere alerts per community-week: steady {_fmt(tally.fa_rate('steady'))}, "
        f"neutral spike {_fmt(tally.fa_rate('spike'))}, low volume {_fmt(tally.fa_rate('low'))}"
    )
    print(f"  recoveries after caught drops: {extra['recovered']}/{extra['caught']}")
    collapse = extra["collapse"]
    print(
        f"  activity collapse caught {sum(d is not None for d in collapse)}/{len(collapse)}, delays (min) "
        f"{', '.join(f'{d:.0f}' for d in collapse if d is not None)}; false activity alerts per "
        f"community-week {extra['activity_fa'] / extra['weeks']:.2f}"
    )


def _fmt(x: float, pct: bool = False) -> str:
    if math.isnan(x):
        return "   -"
    return f"{100 * x:4.0f}%" if pct else f"{x:5.2f}"
