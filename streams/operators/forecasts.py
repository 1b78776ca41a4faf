"""Demand/supply forecasts per community and resource tag, validated progressively.

Demand is the number of ``need`` posts in a window, supply the number of ``offer`` posts, per
community and per tag, in epoch-aligned tumbling event-time windows of ``window_seconds``.
When a community's event time passes a window's end + ``close_after_ms`` (the pipeline's
grace: no event of that window can be accepted after that), the window closes and, in order:

1. the forecast made for it at the previous close — and the naive baselines' (last value;
   seasonal naive = same hour yesterday) — are scored against what it held: progressive
   validation, every score is of a prediction made before its target existed;
2. the model learns the window (:class:`~online_models.forecast.CommunityForecaster`);
3. it forecasts the next window, which is published and becomes the one scored at step 1 next.

Empty windows between two events close as zeros (quiet hours are data).  A silence longer
than ``max_gap_windows`` windows is skipped without learning (bounded work per event).

Redis (one hash per community, overwritten at every close)::

    HSET pulse:forecast:{community} window <start s of the forecast window>
         demand <int> supply <int> gap <demand - supply>          point forecasts (Poisson medians)
         demand_rate <float> supply_rate <float>                   expected counts
         mae  mae_rolling  mae_last_value  mae_last_value_rolling  mae_seasonal  mae_seasonal_rolling
         scored <n>   tags <JSON {tag: {demand, supply, gap}} of the top tags, by expected counts>

MAEs pool demand and supply errors (a window scores twice), skip a community's first
``warmup_windows`` windows (cold start), and are ``""`` until something was scored; rolling =
over the last ``rolling_windows`` windows scored.

A ``supply_gap`` alert (topic ``alerts``, key = community) is raised when a top tag's expected
demand exceeds its expected supply by ``gap_margin`` posts or more *and* by a factor of
``gap_ratio`` (so a busy tag at 10 vs 9 is not a gap) — once when the tag enters that state,
not again until its gap has fallen below half the margin (no flapping at the threshold), and
not during a community's first ``alert_after_windows`` windows (a cold model's gaps are noise).
Its ``id`` is stable across replays.

Bounded memory per community: ``max_tags`` tags tracked (top ``top_tags`` published), at most
``max_window_members`` distinct members and ``max_window_tags`` tags counted per open window
(beyond them C and new tags saturate), at most two open windows in normal operation.

>>> from schemas.events import Post
>>> op = DemandSupplyForecaster(window_seconds=3600, close_after_ms=0)
>>> states = {"c1": op.new_state("c1")}
>>> hour = 1_767_571_200_000
>>> out = op.apply_batch(states, [
...     Post("e1", "c1", "ann", hour + 60_000, "p1", "help!", "need", ("ai",), None),
...     Post("e2", "c1", "bob", hour + 3_660_000, "p2", "hi", "post", (), None)])
>>> cmd = out.commands[0]; cmd[:4], dict(zip(cmd[4::2], cmd[5::2]))["tags"]
(['HSET', 'pulse:forecast:c1', 'window', 1767574800], '{"ai":{"demand":1.1,"supply":0.0,"gap":1.1}}')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from online_models.forecast import (
    CommunityForecaster,
    ErrorTracker,
    LastValue,
    Observation,
    SeasonalNaive,
    TagMix,
    poisson_median,
    slot_of,
)
from schemas.events import Event, Post
from streams import keys
from streams.operators.base import Observation as Gauge
from streams.operators.base import Output, RedisCommand

if TYPE_CHECKING:
    from streams.config import Settings


@dataclass(slots=True)
class WindowCounts:
    """What an open window has accumulated so far."""

    demand: int = 0
    supply: int = 0
    interactions: int = 0
    members: set[str] = field(default_factory=set)
    tags: dict[str, list[int]] = field(default_factory=dict)  # tag → [need posts, offer posts]


@dataclass(slots=True)
class PendingForecast:
    """The published forecast for ``window``, kept to be scored when that window closes."""

    window: int
    demand: int
    supply: int
    last_value: tuple[int, int]  # the baselines' forecasts, made at the same moment
    seasonal: tuple[int, int]
    # tag → (demand rate, supply rate, the last window's demand, its supply)
    tags: dict[str, tuple[float, float, int, int]]


@dataclass(slots=True)
class ForecastState:
    """One community's forecasting state (pickled into its snapshot; a few KB)."""

    community: str
    model: CommunityForecaster
    tag_mix: TagMix
    last_value: tuple[LastValue, LastValue]
    seasonal: tuple[SeasonalNaive, SeasonalNaive]
    errors: dict[str, ErrorTracker]  # model | last_value | seasonal | tags | tags_last_value
    open_start: int | None = None  # oldest window (epoch s) not closed yet
    close_at: int = 0  # event time (ms) after which ``open_start`` closes
    clock: int = 0  # highest event time (ms) seen for the community
    windows: dict[int, WindowCounts] = field(default_factory=dict)
    last_tags: dict[str, tuple[int, int]] = field(default_factory=dict)  # tracked tags' counts last window
    pending: PendingForecast | None = None
    alerting: set[str] = field(default_factory=set)  # tags in supply-gap state
    closed: int = 0  # windows closed so far
    ignored: int = 0  # events of already closed windows (cross-topic skew beyond the grace)


ERROR_NAMES = ("model", "last_value", "seasonal", "tags", "tags_last_value")
_MAE_FIELDS = (("mae", "model"), ("mae_last_value", "last_value"), ("mae_seasonal", "seasonal"))


@dataclass(frozen=True, slots=True)
class ForecastConfig:
    """Every knob of the demand/supply forecaster."""

    window_seconds: int = 3600
    close_after_ms: int = 300_000
    top_tags: int = 5
    max_tags: int = 32
    gap_margin: float = 1.0
    gap_ratio: float = 1.5
    alert_after_windows: int = 24
    warmup_windows: int = 48
    rolling_windows: int = 24
    max_gap_windows: int = 168
    max_window_members: int = 10_000
    max_window_tags: int = 256
    learning_rate: float = 0.01
    tag_share_rate: float = 0.05


class DemandSupplyForecaster:
    """The ``forecasts`` operator (see the module docstring for what it writes and why)."""

    name = "forecasts"
    reads_text = False  # counts only: the runner may skip the text stage

    def __init__(self, config: ForecastConfig | None = None, **overrides: Any) -> None:
        """``config`` (defaults: :class:`ForecastConfig`), any field overridden by keyword."""
        c = self.config = replace(config or ForecastConfig(), **overrides)
        self.size = c.window_seconds
        self.size_ms = c.window_seconds * 1000
        self.close_after_ms = c.close_after_ms
        self.top_tags = c.top_tags
        self.max_tags = c.max_tags
        self.gap_margin = c.gap_margin
        self.gap_ratio = c.gap_ratio
        self.alert_after_windows = c.alert_after_windows
        self.warmup_windows = c.warmup_windows
        self.rolling_windows = c.rolling_windows
        self.max_gap_windows = c.max_gap_windows
        self.max_window_members = c.max_window_members
        self.max_window_tags = c.max_window_tags
        self.learning_rate = c.learning_rate
        self.tag_share_rate = c.tag_share_rate
        self.period = max(1, 86_400 // c.window_seconds)  # seasonal naive: same time yesterday

    @classmethod
    def from_settings(cls, settings: Settings) -> DemandSupplyForecaster:
        """Windows and closing delay as the pipeline's (``PULSE_WINDOW_SECONDS``, ``PULSE_GRACE_SECONDS``)."""
        return cls(window_seconds=settings.window_seconds, close_after_ms=settings.grace_seconds * 1000)

    def new_state(self, community: str) -> ForecastState:
        return ForecastState(
            community=community,
            model=CommunityForecaster(self.learning_rate),
            tag_mix=TagMix(self.max_tags, self.tag_share_rate),
            last_value=(LastValue(), LastValue()),
            seasonal=(SeasonalNaive(self.period), SeasonalNaive(self.period)),
            errors={name: ErrorTracker(self.rolling_windows) for name in ERROR_NAMES},
        )

    def apply_batch(self, states: dict[str, ForecastState], events: Sequence[Event]) -> Output:
        out = Output()
        closed_before: dict[str, int] = {}  # communities of the batch → windows closed before it
        size = self.size
        max_members = self.max_window_members
        for ev in events:
            community = ev.community
            st = states[community]
            if community not in closed_before:
                closed_before[community] = st.closed
            ts = ev.ts
            start = ts // 1000 // size * size
            if st.open_start is None:
                st.open_start = start
                st.close_at = start * 1000 + self.size_ms + self.close_after_ms
            if ts > st.clock:
                st.clock = ts
                if ts > st.close_at:
                    self._close_due(st, out)
            if start < st.open_start:
                st.ignored += 1
                continue
            w = st.windows.get(start)
            if w is None:
                w = st.windows[start] = WindowCounts()
            members = w.members
            if len(members) < max_members:
                members.add(ev.member)
            if ev.__class__ is Post:
                kind = ev.kind  # type: ignore[union-attr]
                if kind == "need":
                    w.demand += 1
                    col = 0
                elif kind == "offer":
                    w.supply += 1
                    col = 1
                else:
                    continue
                tags = w.tags
                for tag in ev.tags:  # type: ignore[union-attr]
                    counts = tags.get(tag)
                    if counts is None:
                        if len(tags) >= self.max_window_tags:
                            continue
                        counts = tags[tag] = [0, 0]
                    counts[col] += 1
            else:
                w.interactions += 1
        for community, before in closed_before.items():
            st = states[community]
            if st.closed != before:
                self._observe(community, st, out)
        return out

    # --- window close ----------------------------------------------------------------------------
    def _close_due(self, st: ForecastState, out: Output) -> None:
        """Close every window whose end + ``close_after_ms`` is behind the community's clock."""
        assert st.open_start is not None
        due = (st.clock - st.close_at - 1) // self.size_ms + 1
        if due > self.max_gap_windows + 1:
            self._close(st, st.open_start, out)  # the window with data, then skip the silence
            skipped = due - 1
            st.open_start += skipped * self.size
            st.close_at += skipped * self.size_ms
            st.model.pending = None
            st.pending = None
            for naive in (*st.last_value, *st.seasonal):
                for _ in range(min(skipped, self.period)):
                    naive.learn_one(0)
            for start in [s for s in st.windows if s < st.open_start]:
                del st.windows[start]  # cannot happen with a sane clock; keeps the state bounded
            return
        for _ in range(due):
            self._close(st, st.open_start, out)

    def _close(self, st: ForecastState, start: int, out: Output) -> None:
        counts = st.windows.pop(start, None) or WindowCounts()
        tag_counts = {tag: (nd, ns) for tag, (nd, ns) in counts.tags.items()}
        obs = Observation(counts.demand, counts.supply, counts.interactions, len(counts.members))
        # 1. Score the forecast made before this window existed (progressive validation).
        pending = st.pending
        if pending is not None and pending.window == start and st.closed >= self.warmup_windows:
            err = st.errors
            for tracker, (pd, ps) in (
                (err["model"], (pending.demand, pending.supply)),
                (err["last_value"], pending.last_value),
                (err["seasonal"], pending.seasonal),
            ):
                tracker.update_many([abs(obs.demand - pd), abs(obs.supply - ps)])
            if pending.tags:
                model_errors: list[float] = []
                naive_errors: list[float] = []
                for tag, (rd, rs, ld, ls) in pending.tags.items():
                    nd, ns = tag_counts.get(tag, (0, 0))
                    model_errors += (abs(nd - rd), abs(ns - rs))
                    naive_errors += (abs(nd - ld), abs(ns - ls))
                err["tags"].update_many(model_errors)
                err["tags_last_value"].update_many(naive_errors)
        # 2. Learn it.
        st.model.learn_one(slot_of(start), obs)
        for naive in st.last_value[0], st.seasonal[0]:
            naive.learn_one(obs.demand)
        for naive in st.last_value[1], st.seasonal[1]:
            naive.learn_one(obs.supply)
        st.tag_mix.learn_one(tag_counts, obs.demand, obs.supply)
        st.last_tags = {tag: tag_counts.get(tag, (0, 0)) for tag in st.tag_mix.tags}
        st.closed += 1
        st.open_start = start + self.size
        st.close_at += self.size_ms
        # 3. Forecast the next window.
        self._forecast(st, start + self.size, out)

    def _forecast(self, st: ForecastState, window: int, out: Output) -> None:
        rates = st.model.predict_one(slot_of(window))
        demand, supply = poisson_median(rates.demand), poisson_median(rates.supply)
        tags: dict[str, tuple[float, float, int, int]] = {}
        doc: dict[str, dict[str, float]] = {}
        alert_after = self.alert_after_windows
        for tag in st.tag_mix.top(self.top_tags):
            share_d, share_s = st.tag_mix.share(tag)
            rd, rs = rates.demand * share_d, rates.supply * share_s
            ld, ls = st.last_tags.get(tag, (0, 0))
            tags[tag] = (rd, rs, ld, ls)
            doc[tag] = {"demand": round(rd, 2), "supply": round(rs, 2), "gap": round(rd - rs, 2)}
            if tag in st.alerting:
                if rd - rs < 0.5 * self.gap_margin:
                    st.alerting.discard(tag)  # re-armed only well below the margin: no flapping
            elif rd - rs >= self.gap_margin and rd >= self.gap_ratio * rs and st.closed >= alert_after:
                st.alerting.add(tag)
                out.raise_alert(self._alert(st, window, tag, rd, rs))
        st.alerting.intersection_update(st.tag_mix.tags)
        st.pending = PendingForecast(
            window,
            demand,
            supply,
            (st.last_value[0].predict_one(), st.last_value[1].predict_one()),
            (st.seasonal[0].predict_one(), st.seasonal[1].predict_one()),
            tags,
        )
        command: RedisCommand = [
            "HSET", keys.forecast(st.community), "window", window,
            "demand", demand, "supply", supply, "gap", demand - supply,
            "demand_rate", _num(rates.demand), "supply_rate", _num(rates.supply),
        ]  # fmt: skip
        for name, tracker in _MAE_FIELDS:
            err = st.errors[tracker]
            command += [name, _num(err.mae), f"{name}_rolling", _num(err.rolling)]
        command += ["scored", st.errors["model"].n, "tags", orjson.dumps(doc).decode()]
        out.commands.append(command)

    def _alert(
        self, st: ForecastState, window: int, tag: str, demand: float, supply: float
    ) -> dict[str, Any]:
        value: dict[str, Any] = {
            "id": f"supply_gap:{st.community}:{tag}:{window}",  # stable: a replay sends the same id
            "kind": "supply_gap",
            "community": st.community,
            "ts": st.clock,
            "window": window,
            "tag": tag,
            "demand": round(demand, 2),
            "supply": round(supply, 2),
            "gap": round(demand - supply, 2),
        }
        return value

    def _observe(self, community: str, st: ForecastState, out: Output) -> None:
        """Gauges of the community's latest numbers (once per batch that closed a window):
        rolling MAEs of the model and the baselines, and the published point forecasts."""
        for metric, tracker in (
            ("forecast_mae", "model"),
            ("forecast_mae_last_value", "last_value"),
            ("forecast_mae_seasonal", "seasonal"),
        ):
            value = st.errors[tracker].rolling
            if value is not None:
                out.observations.append(Gauge(metric, community, value))
        if st.pending is not None:
            out.observations.append(Gauge("forecast_demand", community, float(st.pending.demand)))
            out.observations.append(Gauge("forecast_supply", community, float(st.pending.supply)))


def _num(value: float | None) -> str:
    """A float as Redis should show it: 4 decimals, or ``""`` for not measured yet."""
    return "" if value is None else repr(round(value, 4))
