"""Member insights: who is likely to drift away, and who is growing into a regular.

Every action (post, reaction, RSVP) updates the member's numbers in the community's
:class:`~online_models.churn.MemberTable` (O(1): decayed counts, last seen, sentiment of posts,
replies and positive reactions received, meetups).  Once per ``checkpoint_seconds`` of the
community's event time (epoch-aligned days by default), when the first event past a boundary
``T`` arrives and *before* it is applied — so nothing later than ``T`` is seen — the operator:

1. **learns what became known**: a member's pending checkpoint ``P`` is labelled once
   ``P + horizon + label_delay`` has passed (``label_delay``: the pipeline's grace, so a late
   event inside the horizon still counts): active = any action in ``(P, P + horizon]``.  The
   prediction made at ``P`` is scored first (ROC AUC of the model and of the recency-only
   baseline, side by side), then both learn ``(features at P, label)``;
2. **predicts** for every member active in the last ``population_days``: P(active in the next
   ``horizon``); a member without a pending checkpoint gets one (features and predictions kept
   for step 1).  One labelled example per member and horizon keeps the state small; every
   member still gets a fresh prediction every checkpoint;
3. **publishes** the lists (absolute writes, replaced each checkpoint)::

       DEL + ZADD pulse:members:at-risk:{community}  <1 − P(active)> <member>   top ``top_n``
           members of the population with at least ``min_actions`` (decayed) actions a month
       DEL + ZADD pulse:members:rising:{community}   <P(active) · trend> <member>  top ``top_n``
           members on at least two active days whose last week beats their monthly average

   and, once the first labels are known, the progressive validation so far (cumulative;
   ``pulse evaluate members`` reads it)::

       HSET pulse:members:model:{community} checkpoint <ms> labels <n> positives <n>
            auc <model> auc_recency <recency-only baseline>      (ROC AUC, binned)
            bins <JSON {"model": [pos, neg], "recency": [pos, neg]}: labels per probability
                  bin (100 bins), so AUCs can be pooled or differenced between checkpoints>

4. **evicts** members with no action for ``evict_days`` and no pending label.

Bounded memory per community: at most ``max_members`` members (beyond, the least recently
active are evicted, pending labels or not), ``max_posts`` recent posts remembered to credit
replies and reactions to their authors (a post leaves once credited).  Pickled: ~130 bytes a
tracked member (float32 columns), ~15 bytes a remembered post, ~3 KB of river pipelines and
AUC histograms — ~65 KB for a community of 350 active members.

>>> from schemas.events import Post, Reaction
>>> op = MemberInsights()
>>> states = {"c1": op.new_state("c1")}
>>> day = 86_400_000; t0 = 20_000 * day
>>> out = op.apply_batch(states, [
...     Post("e1", "c1", "ann", t0 + 1000, "p1", "Great meetup, thanks all!", "post", (), None),
...     Reaction("e2", "c1", "bob", t0 + 2000, "p1", "love"),
...     Post("e3", "c1", "cy", t0 + day + 5, "p2", "hello", "post", (), None)])
>>> [c[:2] for c in out.commands]
[['DEL', 'pulse:members:at-risk:c1'], ['DEL', 'pulse:members:rising:c1']]
>>> t = states["c1"].table
>>> t.cols["engaged"][t.index["ann"]], int(t.cols["pending"][t.index["bob"]]) == t0 + day
(1.0, True)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from online_models.churn import (
    FEATURES,
    TAU_LONG_MS,
    TAU_SHORT_MS,
    ActivityModel,
    BinnedAUC,
    MemberTable,
    RecencyBaseline,
    member_features,
)
from online_models.text_stage import analysis_of
from schemas.events import Event, Post, Reaction, Rsvp
from streams import keys
from streams.operators.base import Observation, Output, RedisCommand

if TYPE_CHECKING:
    from streams.config import Settings

DAY_MS = 86_400_000
POSITIVE_REACTIONS = frozenset(("like", "love", "insightful", "thanks", "laugh"))
_X_COLUMNS = tuple(f"x{k}" for k in range(len(FEATURES)))


@dataclass(slots=True)
class MemberState:
    """One community's member insights (pickled into its snapshot, see :mod:`streams.operators.runner`)."""

    community: str
    table: MemberTable
    model: ActivityModel
    baseline: RecencyBaseline
    auc: BinnedAUC = field(default_factory=BinnedAUC)
    auc_baseline: BinnedAUC = field(default_factory=BinnedAUC)
    posts: dict[str, str] = field(default_factory=dict)  # recent post → author, until credited
    period: int = -1  # current checkpoint period (ts // checkpoint_ms)
    clock: int = 0
    labels: int = 0
    positives: int = 0
    evicted: int = 0


@dataclass(frozen=True, slots=True)
class MembersConfig:
    """Every knob of the member-insights operator."""

    checkpoint_seconds: int = 86_400
    horizon_days: float = 7.0
    population_days: float = 14.0
    evict_days: float = 35.0
    label_delay_seconds: int = 300
    max_members: int = 5_000
    max_posts: int = 2_000
    top_n: int = 100
    min_actions: float = 3.0
    learning_rate: float = 0.01
    l2: float = 1e-4


class MemberInsights:
    """The ``members`` operator (see the module docstring for what it writes and why)."""

    name = "members"

    def __init__(self, config: MembersConfig | None = None, **overrides: Any) -> None:
        """``config`` (defaults: :class:`MembersConfig`), any field overridden by keyword."""
        c = self.config = replace(config or MembersConfig(), **overrides)
        self.checkpoint_ms = c.checkpoint_seconds * 1000
        self.horizon_ms = int(c.horizon_days * DAY_MS)
        self.population_ms = int(c.population_days * DAY_MS)
        self.evict_ms = int(c.evict_days * DAY_MS)
        self.label_delay_ms = c.label_delay_seconds * 1000
        self.max_members = c.max_members
        self.max_posts = c.max_posts
        self.top_n = c.top_n
        self.min_actions = c.min_actions
        self.learning_rate = c.learning_rate
        self.l2 = c.l2

    @classmethod
    def from_settings(cls, settings: Settings) -> MemberInsights:
        """Labels wait for the pipeline's grace (``PULSE_GRACE_SECONDS``)."""
        return cls(label_delay_seconds=settings.grace_seconds)

    def new_state(self, community: str) -> MemberState:
        return MemberState(
            community=community,
            table=MemberTable(),
            model=ActivityModel(self.learning_rate, self.l2),
            baseline=RecencyBaseline(self.learning_rate, self.l2),
        )

    # --- the batch -------------------------------------------------------------------------------
    def apply_batch(self, states: dict[str, MemberState], events: Sequence[Event]) -> Output:
        out = Output()
        checkpoint_ms = self.checkpoint_ms
        for ev in events:
            st = states[ev.community]
            ts = ev.ts
            period = ts // checkpoint_ms
            if period > st.period:
                if st.period >= 0:
                    self._checkpoint(st, period * checkpoint_ms, out)  # before the event: no peeking
                st.period = period
            if ts > st.clock:
                st.clock = ts
            t = st.table
            member = ev.member
            i = t.index.get(member)
            if i is None:
                if len(t) >= self.max_members * 11 // 10:
                    self._evict_overflow(st)
                i = t.add(sys.intern(member), ts)
            t.touch(i, ts)
            cls = ev.__class__
            if cls is Post:
                analysis = ev.analysis  # type: ignore[union-attr]  # analysis_of(ev), inlined
                t.post(i, (analysis if analysis is not None else analysis_of(ev)).sentiment)
                if ev.reply_to is not None:  # type: ignore[union-attr]
                    self._credit(st, ev.reply_to, member)  # type: ignore[union-attr]
                posts = st.posts
                posts[ev.post] = t.ids[i]  # type: ignore[union-attr]
                if len(posts) > self.max_posts:
                    del posts[next(iter(posts))]
            elif cls is Reaction:
                if ev.reaction in POSITIVE_REACTIONS:  # type: ignore[union-attr]
                    self._credit(st, ev.post, member)  # type: ignore[union-attr]
            elif cls is Rsvp:
                status = ev.status  # type: ignore[union-attr]
                if status == "going":
                    t.cols["going"][i] += 1.0
                elif status == "attended":
                    t.cols["attended"][i] += 1.0
        return out

    @staticmethod
    def _credit(st: MemberState, post: str, by: str) -> None:
        """A reply or positive reaction from someone else: the post's author got engagement (once)."""
        author = st.posts.get(post)
        if author is None or author == by:
            return
        del st.posts[post]
        i = st.table.index.get(author)
        if i is not None:
            st.table.cols["engaged"][i] += 1.0

    # --- checkpoints -----------------------------------------------------------------------------
    def _checkpoint(self, st: MemberState, now: int, out: Output) -> None:
        t = st.table
        cols = t.cols
        pending, after = cols["pending"], cols["after"]
        due = now - self.horizon_ms - self.label_delay_ms
        x_cols = [cols[c] for c in _X_COLUMNS]
        labelled = False
        for i in range(len(t)):  # 1. learn the labels that became known
            p = pending[i]
            if not p or p > due:
                continue
            y = bool(after[i]) and after[i] <= p + self.horizon_ms
            x = {name: float(col[i]) for name, col in zip(FEATURES, x_cols, strict=True)}
            self._score(st, t.ids[i], int(p), y, float(cols["p_model"][i]), float(cols["p_base"][i]))
            st.model.learn_one(x, y)
            st.baseline.learn_one(x, y)
            st.labels += 1
            st.positives += y
            pending[i] = 0.0
            after[i] = 0.0
            labelled = True
        at_risk: list[tuple[float, str]] = []  # 2. predict for the population
        rising: list[tuple[float, str]] = []
        last, c28, days = cols["last"], cols["c28"], cols["days"]
        since = now - self.population_ms
        min_actions = self.min_actions
        for i in range(len(t)):
            if last[i] < since:
                continue
            x = member_features(t, i, now)
            st.model.observe(x)
            st.baseline.observe(x)
            p = st.model.predict_one(x)
            if not pending[i]:
                pending[i] = now
                after[i] = 0.0
                for col, name in zip(x_cols, FEATURES, strict=True):
                    col[i] = x[name]
                cols["p_model"][i] = p
                cols["p_base"][i] = st.baseline.predict_one(x)
            decay = math.exp(-(now - last[i]) / TAU_LONG_MS)
            member = t.ids[i]
            if c28[i] * decay >= min_actions:
                at_risk.append((-(1.0 - p), member))
            if days[i] * decay >= 2.0 and x["trend"] > 0.0:
                rising.append((-(p * x["trend"]), member))
        self._evict_idle(st, now)  # 3. forget the long gone
        out.commands += self._ranking(keys.members_at_risk(st.community), at_risk)
        out.commands += self._ranking(keys.members_rising(st.community), rising)
        if st.labels:
            out.commands.append(self._validation(st, now))
        self._observe(st, len(at_risk), labelled, out)

    def _score(
        self, st: MemberState, member: str, at: int, y: bool, p_model: float, p_baseline: float
    ) -> None:
        """Progressive validation: the predictions made for ``member`` at checkpoint ``at``,
        scored against the label before it is learned (evaluations and tests hook in here)."""
        st.auc.update(y, p_model)
        st.auc_baseline.update(y, p_baseline)

    @staticmethod
    def _validation(st: MemberState, now: int) -> RedisCommand:
        """The ``pulse:members:model:{community}`` hash: progressive validation of both models."""
        cmd: RedisCommand = [
            "HSET", keys.members_model(st.community),
            "checkpoint", now, "labels", st.labels, "positives", st.positives,
        ]  # fmt: skip
        for field_name, auc in (("auc", st.auc), ("auc_recency", st.auc_baseline)):
            value = auc.get()
            if value is not None:
                cmd += [field_name, repr(round(value, 4))]
        bins = {"model": [st.auc.pos, st.auc.neg], "recency": [st.auc_baseline.pos, st.auc_baseline.neg]}
        cmd += ["bins", orjson.dumps(bins).decode()]
        return cmd

    def _ranking(self, key: str, scored: list[tuple[float, str]]) -> list[RedisCommand]:
        scored.sort()
        commands: list[RedisCommand] = [["DEL", key]]
        if scored:
            zadd: RedisCommand = ["ZADD", key]
            for neg, member in scored[: self.top_n]:
                zadd += [repr(round(-neg, 4)), member]
            commands.append(zadd)
        return commands

    def _evict_idle(self, st: MemberState, now: int) -> None:
        t = st.table
        last, pending = t.cols["last"], t.cols["pending"]
        cutoff = now - self.evict_ms
        for i in range(len(t) - 1, -1, -1):  # backwards: remove() moves the last row into i
            if last[i] < cutoff and not pending[i]:
                t.remove(i)
                st.evicted += 1

    def _evict_overflow(self, st: MemberState) -> None:
        """Over ``max_members`` · 1.1: drop the least recently active down to ``max_members``."""
        t = st.table
        last = t.cols["last"]
        order = sorted(range(len(t)), key=lambda i: (last[i], t.ids[i]))
        drop = {t.ids[i] for i in order[: len(t) - self.max_members]}
        for i in range(len(t) - 1, -1, -1):
            if t.ids[i] in drop:
                t.remove(i)
                st.evicted += 1

    def _observe(self, st: MemberState, population: int, labelled: bool, out: Output) -> None:
        """Per-community gauges: members tracked, how many are ranked, and both models' AUC."""
        out.observations += [
            Observation("members_tracked", st.community, float(len(st.table))),
            Observation("members_ranked", st.community, float(population)),
        ]
        if labelled:
            for metric, auc in (("members_auc", st.auc), ("members_auc_recency", st.auc_baseline)):
                value = auc.get()
                if value is not None:
                    out.observations.append(Observation(metric, st.community, value))


__all__ = ["POSITIVE_REACTIONS", "TAU_SHORT_MS", "MemberInsights", "MemberState"]
