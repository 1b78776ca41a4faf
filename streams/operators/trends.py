"""Hot topics per community: mention counts, an online forecast of the next window, surges.

A post's topics are its tags plus the topics the text stage found (:mod:`online_models.text_stage`,
English and Chinese).  Each topic counts its mentions in ``buckets_per_window`` sub-window
buckets (10 min at the default hour) over the last two windows, so "the last hour" slides
every bucket instead of jumping at the hour, and a topic that takes off shows within minutes.

At every bucket boundary of a community's event time, each topic's level (mentions per window,
an exponentially weighted mean over ``level_windows`` windows, bias-corrected for a young
community) absorbs the bucket that ended.  At every window boundary the community's
:class:`~online_models.trends.TopicForecaster` is scored on the forecasts it made one window
ago (progressive validation: MAE against the last-value and level baselines), learns them,
and forecasts the next window for every topic.  Between boundaries a topic's forecast and
trend score are recomputed whenever it is mentioned, and for all topics at each bucket boundary.

Trend score (:func:`~online_models.trends.trend_score`): log of the forecast plus how many
Poisson standard deviations the topic's rate over the last third of a window stands above its
level — where a topic is going, and how unusual that is for it.

``topic_surge`` alert (topic ``alerts``, once per topic and ``cooldown_windows``): the mentions
of the last window (sliding, current bucket included) are at least ``surge_min_count``, at least
``surge_ratio`` × the expected count, and have a Poisson tail probability under the expected
count below ``surge_alpha``.  The expected count is the topic's level (at least
``min_baseline``) scaled up when the rest of the community is busier than usual (daily
rhythms: a topic that follows the community's peak hour is not surging).  Warm-up is measured in
evidence, not a fixed day: no alert in a community's first ``warmup_windows`` window(s), then,
while fewer than ``level_windows`` windows were seen, the level in the test is raised to an upper
bound (``warmup_sigmas`` Poisson standard deviations of the level's estimate from the windows
seen), so a young community's surge alerts once it clearly stands out of what was seen so far.

Ranking: the trend score discounts the community's own background (``background_weight`` ×
log of a topic's usual level), so steady words rank by their surprise only, not their volume.

Redis::

    ZADD pulse:trends:{community} <score> <topic> ...   ZREMRANGEBYRANK ... 0 -(top_n+1)
        touched topics after every batch; after a bucket boundary: DEL + ZADD of the top_n
    HSET pulse:trends:{community}:{topic} count <mentions in the current tumbling window>
         forecast <next window> level <mentions/window> momentum <rate over the last
         third of a window, per window> growth <(momentum+1)/(level+1)> score <trend score>
         first_seen <ms>
         + EXPIRE retention_seconds
        for exactly the topics in the sorted set (issue 14): written when a topic enters it, when
        it is mentioned while in it, and for the whole top at a window start (counts restart);
        DEL when it leaves it.  The state mirrors the sorted set (``TrendState.ranked``) to know
        this; a snapshot from before it (``ranked`` None) writes every mentioned topic's hash,
        as the code did then, until its next bucket boundary rebuilds the mirror.
    SET pulse:themes:{community} <JSON [{topic, score, forecast, growth, members}]> EX retention
        meetup theme suggestions: the best-ranked rising topics (growth ≥ theme_min_growth)
        with the members most engaged in them (authors, repliers, reactors; recent engagement
        weighs more), at every bucket boundary

Bounded state per community: topics nobody mentioned for two windows whose level is below
``keep_level`` are forgotten at window boundaries, and at most ``max_topics`` are kept (the
heaviest by level and recent count; at once when a flood of new terms passes 2 ×);
``members_per_topic`` engaged members per topic (Space-Saving, decayed each window);
``max_recent_posts`` post → topics entries to credit reactions and replies.

Cost (issue 14): a topic's buckets shift lazily (:meth:`TrendingTopics._sync`, the same float
operations as one bucket step at a time, all topics at each window boundary), a bucket boundary
ranks only the topics that may be supported (``TrendState.candidates``) and computes the views it
publishes in the same pass, a window boundary visits each topic once and learns its forecasts with
river's SGD inlined (:meth:`~online_models.trends.TopicForecaster.learn_many`, bit-identical
weights).  Shortcuts that rest on exact bounds, so nothing written changes: the surge test is not
run for a mention below its topic's gate for the bucket (:meth:`TrendingTopics._gate`); an
engagement skips, and a ranking passes over, a topic that cannot keep members or be ranked, without
bringing it up to date.  A topic pickles
to ~100 bytes; measured snapshots: ~30 KB for a community of 40 posts an hour, ≤ ~50 KB at 500.

>>> from schemas.events import Post
>>> op = TrendingTopics()
>>> states = {"c1": op.new_state("c1")}
>>> t0 = 1_767_571_200_000
>>> out = op.apply_batch(states, [
...     Post("e1", "c1", "ann", t0, "p1", "Fine-tuning Qwen on our GPUs", "post", ("AI",), None),
...     Post("e2", "c1", "bob", t0 + 60_000, "p2", "周六的大模型聚会有人去吗？", "post", ("ai",), None)])
>>> out.commands[0]  # said twice: ranked; the words said once (gpu, 大模型...) wait for a second mention
['ZADD', 'pulse:trends:c1', '1.0296', 'ai']
>>> h = out.commands[2]; h[:2], dict(zip(h[2::2], h[3::2]))["count"]
(['HSET', 'pulse:trends:c1:ai'], 2)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from online_models.text_stage import MAX_TOPIC_CHARS, TextAnalysis, analysis_of, tag_topic
from online_models.trends import TopicForecaster, poisson_sf, trend_score
from schemas.events import Event, Post, Reaction
from streams import keys
from streams.operators.base import Observation, Output, RedisCommand

if TYPE_CHECKING:
    from streams.config import Settings

Coefficients = tuple[float, tuple[float, ...]]
KEY_MEMO = 4096
"""Topic hash keys remembered per community, and communities remembered (forgotten when full)."""
TAG_MEMO = 65_536
"""Tag → topic results remembered (cleared when full)."""


_TAG_TOPICS: dict[tuple[str, ...], tuple[str, ...]] = {}


class Topic:
    """One topic of one community.  ``counts[i]``: mentions in the bucket ``i`` buckets before
    bucket ``at`` (0 = bucket ``at``); ``level`` has absorbed the buckets before ``at``.  A topic
    is brought up to its community's current bucket lazily (:meth:`TrendingTopics._sync`: when it
    is read, and all topics at each window boundary), so an untouched topic costs nothing at a
    bucket step.  ``pending``: what the forecast made at the last window boundary needs besides
    the counts (``prev`` and ``level`` then; the other inputs are still in ``counts`` one window
    later), so it is scored and learned at the next boundary.  ``members``: engagement points
    (post 2, reply 2, reaction 1), decayed each window.  Pickled as a tuple (a 6-tuple without
    ``at``, from before lazy shifting, is at its community's bucket: see :class:`TrendState`)."""

    __slots__ = ("at", "counts", "first_seen", "gate", "level", "members", "pending", "quiet_until")

    def __init__(self, ring: int, first_seen: int, at: int) -> None:
        self.counts = [0] * ring
        self.level = 0.0  # EWMA of mentions per window, not bias-corrected (TrendingTopics.level_factor)
        self.first_seen = first_seen
        self.quiet_until = 0  # bucket number before which no new surge alert
        self.pending: tuple[int, float] | None = None  # prev, level at the last window boundary
        self.members: dict[str, int] = {}  # most engaged members (Space-Saving)
        self.at = at  # bucket number that counts[0] is
        self.gate: tuple[int, float, float] | None = None  # not pickled: TrendingTopics._gate

    def __getstate__(self) -> tuple[Any, ...]:
        return self.counts, self.level, self.first_seen, self.quiet_until, self.pending, self.members, self.at

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        if len(state) == 6:  # before lazy shifting: aligned with the community's bucket
            state = (*state, None)
        self.counts, self.level, self.first_seen, self.quiet_until, self.pending, self.members, self.at = (
            state
        )
        self.gate = None


@dataclass(slots=True)
class TrendState:
    """One community's hot-topic state (pickled into its snapshot, see :mod:`streams.operators.runner`)."""

    community: str
    model: TopicForecaster
    topics: dict[str, Topic] = field(default_factory=dict)
    activity: list[int] = field(default_factory=list)  # the community's mentions per bucket, like counts
    activity_level: float = 0.0
    pending_activity: float = 0.0  # the activity input of the forecasts made at the last window boundary
    bucket: int = -1  # current bucket number (ts // bucket_ms); -1 before the first event
    seen: int = 0  # bucket boundaries passed (bias correction of levels, warm-up)
    clock: int = 0  # highest event time (ms)
    recent_posts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    scored: int = 0  # forecasts scored (active topics: a count, or a level of at least 0.5)
    abs_err: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # model, last value, level
    alerts: int = 0
    ignored: int = 0  # posts older than the two windows kept (beyond any grace)
    # The zset pulse:trends:{community} as written (topic → score); None: unknown (a snapshot from
    # before it was kept), rebuilt at the next bucket boundary.
    ranked: dict[str, float] | None = field(default_factory=dict)
    # Not pickled: topics that may be ranked (supported); the others cannot be until mentioned.
    candidates: dict[str, None] = field(default_factory=dict)

    def __getstate__(self) -> list[Any]:
        return [getattr(self, name) for name in _PICKLED]

    def __setstate__(self, state: list[Any]) -> None:
        if len(state) == len(_PICKLED) - 1:  # before the zset was mirrored
            state = [*state, None]
        for name, value in zip(_PICKLED, state, strict=True):
            object.__setattr__(self, name, value)
        for tp in self.topics.values():
            if tp.at is None:  # pickled before lazy shifting
                tp.at = self.bucket
        self.candidates = dict.fromkeys(self.topics)


_PICKLED = (
    "community", "model", "topics", "activity", "activity_level", "pending_activity", "bucket", "seen",
    "clock", "recent_posts", "scored", "abs_err", "alerts", "ignored", "ranked",
)  # fmt: skip
"""TrendState's pickled fields, in order (snapshots written before ``ranked`` end at ``ignored``)."""


@dataclass(slots=True)
class _View:
    """What a topic looks like right now (computed, never stored)."""

    count: int
    forecast: float
    momentum: float
    level: float
    score: float

    @property
    def growth(self) -> float:
        """Current rate against the usual one (1: as usual)."""
        return (self.momentum + 1.0) / (self.level + 1.0)


@dataclass(frozen=True, slots=True)
class TrendsConfig:
    """Every knob of the trends operator (frozen: one object describes a running operator)."""

    window_seconds: int = 3600
    buckets_per_window: int = 6
    top_n: int = 50
    max_topics: int = 300
    keep_level: float = 0.1
    max_topics_per_post: int = 16
    level_windows: float = 24.0
    warmup_windows: int = 1
    warmup_sigmas: float = 3.0
    background_weight: float = 0.5
    min_support: int = 2
    surge_ratio: float = 5.0
    surge_min_count: int = 10
    surge_alpha: float = 1e-6
    surge_short_buckets: int = 3
    surge_short_alpha: float = 1e-5
    surge_short_ratio: float = 7.0
    min_baseline: float = 1.0
    min_recent: int = 3
    cooldown_windows: int = 12
    members_per_topic: int = 5
    theme_topics: int = 5
    theme_members: int = 3
    theme_min_growth: float = 1.5
    max_recent_posts: int = 128
    retention_seconds: int = 7 * 86_400
    learning_rate: float = 0.01


class TrendingTopics:
    """The ``trends`` operator (see the module docstring for what it writes and why)."""

    name = "trends"

    def __init__(self, config: TrendsConfig | None = None, **overrides: Any) -> None:
        """``config`` (defaults: :class:`TrendsConfig`), any field overridden by keyword."""
        c = self.config = replace(config or TrendsConfig(), **overrides)
        if c.window_seconds % c.buckets_per_window or c.buckets_per_window < 3:
            raise ValueError("buckets_per_window must be at least 3 and divide window_seconds")
        self.window_seconds = c.window_seconds
        self.buckets = c.buckets_per_window
        self.bucket_ms = c.window_seconds * 1000 // c.buckets_per_window
        self.ring = 2 * c.buckets_per_window + 1  # current bucket + two full windows
        self.top_n = c.top_n
        self.max_topics = c.max_topics
        self.keep_level = c.keep_level
        self.max_topics_per_post = c.max_topics_per_post
        self.alpha = 1.0 / (c.level_windows * c.buckets_per_window)  # per bucket
        self.warmup_buckets = c.warmup_windows * c.buckets_per_window
        self.warmup_sigmas = c.warmup_sigmas
        self.level_windows = c.level_windows
        self.background_weight = c.background_weight
        self.min_support = c.min_support
        self.surge_ratio = c.surge_ratio
        self.surge_min_count = c.surge_min_count
        self.surge_alpha = c.surge_alpha
        self.surge_short_buckets = c.surge_short_buckets
        self.surge_short_alpha = c.surge_short_alpha
        self.surge_short_ratio = c.surge_short_ratio
        self.min_baseline = c.min_baseline
        self.min_recent = c.min_recent
        self.cooldown_buckets = c.cooldown_windows * c.buckets_per_window
        self.members_per_topic = c.members_per_topic
        self.theme_topics = c.theme_topics
        self.theme_members = c.theme_members
        self.theme_min_growth = c.theme_min_growth
        self.max_recent_posts = c.max_recent_posts
        self.retention_seconds = c.retention_seconds
        self.learning_rate = c.learning_rate
        self._keys: dict[str, dict[str, str]] = {}  # community → topic → its hash key (a memo)
        self._corr: dict[int, float] = {}  # level_factor by boundaries seen (a memo)
        self._corr_one = 1 << 62  # boundaries seen from which level_factor is exactly 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> TrendingTopics:
        """Windows and key retention as the pipeline's (``PULSE_WINDOW_SECONDS``, ``_RETENTION_SECONDS``)."""
        return cls(window_seconds=settings.window_seconds, retention_seconds=settings.retention_seconds)

    def new_state(self, community: str) -> TrendState:
        return TrendState(
            community=community, model=TopicForecaster(self.learning_rate), activity=[0] * self.ring
        )

    # --- the batch -------------------------------------------------------------------------------
    def apply_batch(self, states: dict[str, TrendState], events: Sequence[Event]) -> Output:
        out = Output()
        touched: dict[str, dict[str, None]] = {}  # community → topics mentioned, in first-touch order
        refreshed: dict[str, None] = {}  # communities that passed a bucket boundary
        bucket_ms, ring = self.bucket_ms, self.ring
        for ev in events:
            st = states[ev.community]
            ts = ev.ts
            b = ts // bucket_ms
            if b > st.bucket:
                if st.bucket >= 0:
                    self._advance(st, b)
                    refreshed[ev.community] = None
                st.bucket = b
            if ts > st.clock:
                st.clock = ts
            cls = ev.__class__
            if cls is Post:
                age = st.bucket - b
                if age >= ring:
                    st.ignored += 1
                    continue
                self._post(st, ev, age, touched.setdefault(ev.community, {}), out)  # type: ignore[arg-type]
            elif cls is Reaction and ev.reaction != "report":  # type: ignore[union-attr]
                topics = st.recent_posts.get(ev.post)  # type: ignore[union-attr]
                if topics:
                    self._engage(st, topics, ev.member, 1)
        for community in dict.fromkeys([*touched, *refreshed]):
            self._publish(states[community], touched.get(community, {}), community in refreshed, out)
        return out

    def _post(self, st: TrendState, ev: Post, age: int, touched: dict[str, None], out: Output) -> None:
        if ev.reply_to is not None:  # a reply engages its author in the thread's topics
            parent = st.recent_posts.get(ev.reply_to)
            if parent:
                self._engage(st, parent, ev.member, 2)
        topics = self._topics(analysis_of(ev), ev.tags)
        if not topics:
            return
        st.activity[age] += len(topics)
        member = sys.intern(ev.member)
        ts, b, ring, per_window = ev.ts, st.bucket, self.ring, self.buckets
        all_topics, candidates = st.topics, st.candidates
        # The surge test runs for mentions in the current bucket past warm-up, and only once the
        # last window holds half of ``surge_min_count`` (the first test of _check_surge, hoisted).
        surge = age == 0 and st.seen >= self.warmup_buckets
        min_count, size, short = self.surge_min_count, self.members_per_topic, self.surge_short_buckets
        for name in topics:
            tp = all_topics.get(name)
            candidates[name] = None
            touched[name] = None
            if tp is None:
                # A first mention: no member is credited (_credit: one mention, no level) and the
                # surge test needs 2 × 1 ≥ surge_min_count.
                tp = all_topics[name] = Topic(ring, ts, b)
                tp.counts[age] = 1
                if surge and min_count <= 2:
                    self._check_surge(st, name, tp, 1, ts, out)
                continue
            if tp.at != b:
                self._sync(tp, b)
            c = tp.counts
            c[age] += 1
            members = tp.members
            if member in members:  # _credit, inline but for a topic without members
                members[member] += 2
            elif not members:
                self._credit(tp, member, 2)
            elif len(members) < size:
                members[member] = 2
            else:
                low = min(zip(members.values(), members))[1]  # noqa: B905  (see _credit)
                members[member] = members.pop(low) + 2
            if surge and b >= tp.quiet_until:
                n = sum(c[: per_window + 1])
                if 2 * n >= min_count:
                    gate = tp.gate
                    if gate is None or gate[0] != b:
                        gate = tp.gate = self._gate(st, tp)
                    if n >= gate[1] or sum(c[:short]) >= gate[2]:
                        self._check_surge(st, name, tp, n, ts, out)
        recent = st.recent_posts
        recent[ev.post] = topics
        if len(recent) > self.max_recent_posts:
            del recent[next(iter(recent))]
        if len(all_topics) > 2 * self.max_topics:
            self._prune(st)

    def _topics(self, analysis: TextAnalysis, tags: tuple[str, ...]) -> tuple[str, ...]:
        """:func:`~online_models.text_stage.topics_with_tags`, with each tag's topic remembered
        (``tag_topic`` runs a regex per tag; tags repeat)."""
        mine: tuple[str, ...] = ()
        if tags:
            memo = _TAG_TOPICS
            mine = memo.get(tags)  # type: ignore[assignment]
            if mine is None:
                if len(memo) >= TAG_MEMO:
                    memo.clear()
                mine = memo[tags] = tuple(
                    dict.fromkeys(t for t in map(tag_topic, tags) if t and len(t) <= MAX_TOPIC_CHARS)
                )
        found = analysis.topics
        if not mine:
            topics = found if len(set(found)) == len(found) else tuple(dict.fromkeys(found))
        else:
            topics = tuple(dict.fromkeys(mine + found))  # tags first; a text topic once
        return topics[: self.max_topics_per_post]

    def _engage(self, st: TrendState, topics: tuple[str, ...], member: str, points: int) -> None:
        """:meth:`_credit` ``member`` in each of ``topics`` still kept, inline (a reaction or reply
        engages every topic of its post: the most frequent step of this operator)."""
        member = sys.intern(member)
        get = st.topics.get
        size, alpha, per_window = self.members_per_topic, self.alpha, self.buckets
        span = per_window + 1
        for name in topics:
            tp = get(name)
            if tp is None:
                continue
            members = tp.members
            if member in members:
                members[member] += points
            elif members:  # the counts are not read: no need to bring the topic up to date
                if len(members) < size:
                    members[member] = points
                else:
                    low = min(zip(members.values(), members))[1]  # noqa: B905  (see _credit)
                    members[member] = members.pop(low) + points
            else:
                # _credit keeps no members for a topic of one mention at most and a level under
                # 0.5: true before bringing it up to date if both hold before (shifting drops
                # counts; its level absorbs the current bucket, then only decays, as in _rank).
                c, raw = tp.counts, tp.level
                if raw < 0.5 and raw + alpha * (c[0] * per_window - raw) < 0.5 and sum(c[:span]) < 2:
                    continue
                if tp.at != st.bucket:
                    self._sync(tp, st.bucket)
                self._credit(tp, member, points)

    def _credit(self, tp: Topic, member: str, points: int) -> None:
        """Space-Saving: a member not yet counted replaces the least engaged one and inherits
        its points (the classic over-estimate that keeps true heavy hitters in).  Topics of a
        single mention and no level (most of a long-tailed vocabulary) keep no members.
        ``tp`` is at its community's bucket (the counts are read)."""
        members = tp.members
        if member in members:
            members[member] += points
            return
        if not members and tp.level < 0.5 and sum(tp.counts[: self.buckets + 1]) < 2:
            return
        if len(members) < self.members_per_topic:
            members[member] = points
            return
        # The least engaged, then the first name.  A dict's values and keys: one length; zip with
        # no keyword is ~25 % faster (this runs ~120,000 times per 60,000 events of the bench).
        low = min(zip(members.values(), members))[1]  # noqa: B905
        members[member] = members.pop(low) + points

    # --- time ------------------------------------------------------------------------------------
    def _advance(self, st: TrendState, b: int) -> None:
        """Close buckets up to ``b`` (exclusive): levels absorb them, window boundaries learn."""
        ring, alpha, per_window = self.ring, self.alpha, self.buckets
        gap = b - st.bucket
        steps = min(gap, ring)
        act = st.activity
        for _ in range(steps):  # topics follow lazily (_sync), all of them at a window boundary
            st.activity_level += alpha * (act[0] * per_window - st.activity_level)
            act.pop()
            act.insert(0, 0)
            st.seen += 1
            st.bucket += 1
            if st.bucket % per_window == 0:
                self._window_boundary(st)  # brings every topic up to the bucket
        if gap > steps:  # a long silence: only zeros, so decay in one step and forget forecasts
            self._sync_all(st)
            keep = (1.0 - alpha) ** (gap - steps)
            for tp in st.topics.values():
                tp.level *= keep
                tp.pending = None
                tp.at = b  # its counts are all 0
            st.activity_level *= keep
            st.seen += gap - steps
            st.bucket = b

    def _sync(self, tp: Topic, b: int) -> None:
        """Bring ``tp`` from bucket ``tp.at`` to ``b``: its level absorbs the buckets that ended
        (the same float operations, in the same order, as one bucket step at a time), its counts
        shift.  ``b - tp.at`` is at most ``buckets_per_window``: window boundaries sync all."""
        k = b - tp.at
        if k <= 0:
            return
        alpha = self.alpha
        c = tp.counts
        level = tp.level
        level += alpha * (c[0] * self.buckets - level)
        for _ in range(k - 1):
            level += alpha * (0 - level)
        tp.level = level
        ring = self.ring
        tp.counts = [0] * k + c[: ring - k] if k < ring else [0] * ring
        tp.at = b

    def _sync_all(self, st: TrendState) -> None:
        b = st.bucket
        sync = self._sync
        for tp in st.topics.values():
            if tp.at != b:
                sync(tp, b)

    def level_factor(self, st: TrendState) -> float:
        """Bias correction of the levels: they start at 0 with the community (as Adam's moments do).
        Remembered per number of boundaries seen (read per surge test) until it is exactly 1.0 (it
        decreases to 1.0 and stays there: ~5,400 boundaries at the default rate)."""
        seen = min(st.seen, 100_000)
        if seen >= self._corr_one:
            return 1.0
        corr = self._corr.get(seen)
        if corr is None:
            corr = self._corr[seen] = 0.0 if seen == 0 else 1.0 / (1.0 - (1.0 - self.alpha) ** seen)
            if corr == 1.0:
                self._corr_one = min(self._corr_one, seen)
        return corr

    def _window_boundary(self, st: TrendState) -> None:
        """The window that just ended: score and learn last window's forecasts, forecast the next.

        One pass over the topics (a community's every topic, at every window boundary): each is
        brought up to the bucket, its last forecast scored, and what the next one needs kept."""
        per_window, alpha, ring = self.buckets, self.alpha, self.ring
        corr = self.level_factor(st)
        model = st.model
        err = st.abs_err
        # Score, then learn (progressive validation).  The model has not changed since these
        # forecasts were made, so they are recomputed first, for all topics, then learned.
        b0, (w0, w1, w2, w3, w4) = model.coefficients()
        act = st.pending_activity
        done = []
        scored = 0
        e_model, e_last, e_level = err  # added to one at a time, as before (the same sums)
        keep_level = self.keep_level
        quiet: list[str] = []
        b = st.bucket
        for name, tp in st.topics.items():
            k = b - tp.at
            if k > 0:  # _sync, inline
                level = tp.level
                level += alpha * (tp.counts[0] * per_window - level)
                for _ in range(k - 1):
                    level += alpha * (0 - level)
                tp.level = level
                tp.counts = [0] * k + tp.counts[: ring - k] if k < ring else [0] * ring
                tp.at = b
            c = tp.counts
            y = sum(c[1 : per_window + 1])
            hour = sum(c) - y - c[0]  # the window before the one that just ended
            pending = tp.pending
            if pending is not None:
                prev, level = pending
                recent = c[per_window + 1] + c[per_window + 2]
                s = level + 1.0  # TopicForecaster.forecast, inline
                z = b0 + (w0 * hour + w1 * recent * per_window / 2.0 + w2 * prev + w3 * level) / s + w4 * act
                predicted = z * s if z > 0.0 else 0.0
                if y or hour or level >= 0.5:
                    e_model += abs(y - predicted)
                    e_last += abs(y - hour)
                    e_level += abs(y - level)
                    scored += 1
                done.append((hour, recent, prev, level, act, per_window, y))
            # Keep what the next window's forecasts will need; forget quiet long-tail terms.
            level = tp.level * corr
            if not hour and level < keep_level and not y:
                quiet.append(name)  # nobody used it for two windows
                continue
            tp.pending = (hour, level)
            if tp.members:
                tp.members = {m: w * 4 // 5 for m, w in tp.members.items() if w > 1}
        err[:] = e_model, e_last, e_level
        st.scored += scored
        model.learn_many(done)
        st.pending_activity = self._activity(st, corr)
        candidates = st.candidates
        for name in quiet:
            del st.topics[name]
            candidates.pop(name, None)
        if len(st.topics) > self.max_topics:
            self._prune(st)

    def _activity(self, st: TrendState, corr: float) -> float:
        """log(community mentions of the last window / the community's level), clamped to ±2."""
        hour = sum(st.activity[: self.buckets + 1])
        return max(-2.0, min(2.0, math.log((hour + 1.0) / (st.activity_level * corr + 1.0))))

    def _prune(self, st: TrendState) -> None:
        """Keep the ``max_topics`` heaviest topics (level + last window's mentions; name breaks ties)."""
        self._sync_all(st)
        corr, span = self.level_factor(st), self.buckets + 1

        def weight(item: tuple[str, Topic]) -> tuple[float, str]:
            return (-(item[1].level * corr + sum(item[1].counts[:span])), item[0])

        keep = sorted(st.topics.items(), key=weight)[: self.max_topics]
        st.topics = dict(sorted(keep, key=lambda kv: (kv[1].first_seen, kv[0])))
        st.candidates = {name: None for name in st.candidates if name in st.topics}

    # --- reading a topic -------------------------------------------------------------------------
    def _view(self, st: TrendState, tp: Topic, corr: float, act: float, coef: Coefficients) -> _View:
        per_window = self.buckets
        if tp.at != st.bucket:
            self._sync(tp, st.bucket)
        c = tp.counts
        hour = sum(c[: per_window + 1])
        recent = c[0] + c[1] + c[2]
        level = tp.level * corr
        forecast = TopicForecaster.forecast(
            coef, hour, recent, sum(c[per_window + 1 :]), level, act, per_window
        )
        span = (2.0 + (st.clock % self.bucket_ms) / self.bucket_ms) / per_window  # windows covered by recent
        expected = max(level, self.min_baseline) * span
        score = trend_score(forecast, recent, expected, self.min_recent, level, self.background_weight)
        count = sum(c[: st.bucket % per_window + 1])  # in the current tumbling window
        return _View(count, forecast, recent / span, level, score)

    def _views(
        self, st: TrendState, names: Iterable[str], corr: float, act: float, coef: Coefficients
    ) -> dict[str, _View]:
        """:meth:`_view` of each of ``names`` (the same arithmetic, in the same order, with
        :meth:`TopicForecaster.forecast` and :func:`trend_score` inlined and constants read once)."""
        per_window = self.buckets
        b, (w0, w1, w2, w3, w4) = coef
        span = (2.0 + (st.clock % self.bucket_ms) / self.bucket_ms) / per_window
        floor, min_recent, bw = self.min_baseline, self.min_recent, self.background_weight
        bucket, sync, topics = st.bucket, self._sync, st.topics
        tumbling = bucket % per_window + 1
        log1p, log10 = math.log1p, math.log10
        views = {}
        for name in names:
            tp = topics[name]
            if tp.at != bucket:
                sync(tp, bucket)
            c = tp.counts
            hour = sum(c[: per_window + 1])
            recent = c[0] + c[1] + c[2]
            level = tp.level * corr
            s = level + 1.0
            z = (
                b
                + (w0 * hour + w1 * recent * per_window / 2.0 + w2 * sum(c[per_window + 1 :]) + w3 * level)
                / s
                + w4 * act
            )
            forecast = z * s if z > 0.0 else 0.0
            expected = max(level, floor) * span
            score = log1p(forecast)
            if bw:
                score -= bw * log1p(level)
            if recent >= min_recent and recent > expected:
                score -= log10(max(poisson_sf(recent, expected), 1e-300))
            views[name] = _View(sum(c[:tumbling]), forecast, recent / span, level, score)
        return views

    def _check_surge(self, st: TrendState, name: str, tp: Topic, n: int, ts: int, out: Output) -> None:
        """The surge test of a topic just mentioned in the current bucket, past warm-up and its
        cooldown, whose ``n`` mentions in the last window are at least half of ``surge_min_count``
        (below, neither test can pass: ``n_short`` ≤ ``n`` and ``short_min`` ≥ the half)."""
        per_window = self.buckets
        c = tp.counts
        k = self.surge_short_buckets
        n_short = sum(c[:k])
        frac = (ts % self.bucket_ms) / self.bucket_ms
        short_span = (k - 1 + frac) / per_window  # windows covered by the last k buckets
        short_min = max(self.surge_min_count / 2.0, self.surge_min_count * short_span)
        if n < self.surge_min_count and n_short < short_min:
            return
        corr, usual, rate = self._surge_rate(st, tp)
        horizon = (per_window + frac) / per_window  # windows
        if n < self.surge_ratio * (rate * horizon) and n_short < self.surge_short_ratio * (rate * short_span):
            return  # the ratios fail already: the community's pace (≥ 1 below) only raises expected
        others = sum(st.activity[: per_window + 1]) - n
        others_expected = max(0.0, st.activity_level * corr - usual) * horizon
        busy = max(1.0, (others + 10.0) / (others_expected + 10.0))
        # Two scales: the last window (the classic test), and the last ``surge_short_buckets``
        # buckets, where a surge shows within half an hour: a rate of at least ``surge_min_count``
        # per window, with its own tail probability and a higher ratio (a short span is noisier:
        # conversations bunch a word; measured on the unit tests' steady streams, seed 22).
        expected = rate * horizon * busy
        span = horizon
        if not (
            n >= self.surge_min_count
            and n >= self.surge_ratio * expected
            and poisson_sf(n, expected) <= self.surge_alpha
        ):
            others = sum(st.activity[:k]) - n_short  # the community's pace over the same span
            others_expected = max(0.0, st.activity_level * corr - usual) * short_span
            expected = rate * short_span * max(1.0, (others + 3.0) / (others_expected + 3.0))
            if not (
                n_short >= short_min
                and n_short >= self.surge_short_ratio * expected
                and poisson_sf(n_short, expected) <= self.surge_short_alpha
            ):
                return
            n, span = n_short, short_span
        tp.quiet_until = st.bucket + self.cooldown_buckets
        st.alerts += 1
        start_s = st.bucket * self.bucket_ms // 1000
        value = {
            "id": f"topic_surge:{st.community}:{name}:{start_s}",  # stable: a replay sends the same id
            "kind": "topic_surge",
            "community": st.community,
            "ts": ts,
            "topic": name,
            "count": n,
            "baseline": round(expected, 2),
            "growth": round(n / expected, 2),
            "minutes": round(span * self.window_seconds / 60),  # what count and baseline cover
            "members": self._top_members(tp, self.theme_members),
        }
        out.raise_alert(value)

    def _surge_rate(self, st: TrendState, tp: Topic) -> tuple[float, float, float]:
        """(bias correction, level, expected mentions per window before the community's pace)
        of the surge test: the same all through a bucket."""
        corr = self.level_factor(st)
        usual = level = tp.level * corr
        # Warm-up by evidence, not by the clock: a young community's levels rest on few windows,
        # so the test uses an upper bound of the level, wider the fewer windows were seen; it
        # narrows to the level itself once the EWMA's span (``level_windows``) is covered.
        evidence = min(st.seen / self.buckets, self.level_windows)
        if evidence < self.level_windows:
            spread = math.sqrt(level + self.min_baseline)
            level += self.warmup_sigmas * spread * (evidence**-0.5 - self.level_windows**-0.5)
        return corr, usual, max(level, self.min_baseline)

    def _gate(self, st: TrendState, tp: Topic) -> tuple[int, float, float]:
        """(bucket, n, n_short): below both mention counts in this bucket, neither ratio of
        :meth:`_check_surge` can pass, so it is not called (kept in ``tp.gate`` for the bucket).
        Exact bounds: its spans are at least these (a window, ``surge_short_buckets`` − 1
        buckets) and its pace factors at least 1, and float products are monotonic."""
        rate = self._surge_rate(st, tp)[2]
        short_span = (self.surge_short_buckets - 1) / self.buckets
        return st.bucket, self.surge_ratio * rate, self.surge_short_ratio * (rate * short_span)

    @staticmethod
    def _top_members(tp: Topic, k: int) -> list[str]:
        return [m for m, _ in sorted(tp.members.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]

    # --- output ----------------------------------------------------------------------------------
    def _publish(self, st: TrendState, touched: dict[str, None], refresh: bool, out: Output) -> None:
        corr = self.level_factor(st)
        act = self._activity(st, corr)
        coef = st.model.coefficients()
        zkey = keys.trends(st.community)
        zadd: RedisCommand = ["ZADD", zkey]
        gone: list[str] = []  # topics that left the zset: their hashes are deleted
        if refresh:
            views: dict[str, _View] = {}
            ranked = self._rank(st, corr, act, coef, views)
            top = [name for _, name in ranked[: self.top_n]]
            for name in top:
                zadd += [_num(views[name].score), name]
            out.commands.append(["DEL", zkey])
            if top:
                out.commands.append(zadd)
            out.commands.append(self._themes(st, views, top))
            self._observe(st, out)
            window_start = st.bucket % self.buckets == 0
            before = st.ranked
            st.ranked = {name: float(score) for name, score in zip(zadd[3::2], zadd[2::2], strict=True)}
            if before is None:  # a snapshot from before the zset was mirrored: every hash, as then
                hashes = list(
                    dict.fromkeys([*(top if window_start else ()), *(n for n in touched if n in st.topics)])
                )
                views.update(self._views(st, [n for n in hashes if n not in views], corr, act, coef))
            else:
                # Hashes: the whole top at a window start (counts restart), else the topics that
                # entered it or were mentioned; the topics that left it lose theirs.
                hashes = top if window_start else [n for n in top if n in touched or n not in before]
                gone = [n for n in before if n not in st.ranked]
        else:
            mentioned = [n for n in touched if n in st.topics]
            if not mentioned:
                return
            supported = [n for n in mentioned if self._supported(st, st.topics[n], corr)]
            mirror = st.ranked
            hashes = mentioned if mirror is None else [n for n in mentioned if n in mirror]
            views = self._views(st, dict.fromkeys([*supported, *hashes]), corr, act, coef)
            for name in supported:
                zadd += [_num(views[name].score), name]
            if supported:
                out.commands += [zadd, ["ZREMRANGEBYRANK", zkey, 0, -(self.top_n + 1)]]
                if mirror is not None:
                    # What the two commands leave in the zset: lowest (score, member) trimmed first.
                    added = {n for n in supported if n not in mirror}
                    for name, score in zip(zadd[3::2], zadd[2::2], strict=True):
                        mirror[name] = float(score)
                    if len(mirror) > self.top_n:
                        by_rank = sorted(mirror.items(), key=lambda kv: (kv[1], kv[0]))
                        for name, _ in by_rank[: len(mirror) - self.top_n]:
                            del mirror[name]
                            if name not in added:  # it had a hash
                                gone.append(name)
                    hashes = [n for n in dict.fromkeys([*supported, *hashes]) if n in mirror]
        topic_keys = self._keys.get(st.community)
        if topic_keys is None or len(topic_keys) >= KEY_MEMO:
            if len(self._keys) >= KEY_MEMO:
                self._keys.clear()
            topic_keys = self._keys[st.community] = {}
        community, topics, retention, num = st.community, st.topics, self.retention_seconds, _num
        commands = out.commands
        for name in hashes:
            v = views[name]
            key = topic_keys.get(name)
            if key is None:
                key = topic_keys[name] = keys.trend_topic(community, name)
            level, momentum = v.level, v.momentum
            commands.append(
                [
                    "HSET", key, "count", v.count, "forecast", num(v.forecast),
                    "growth", num((momentum + 1.0) / (level + 1.0)), "level", num(level),
                    "momentum", num(momentum), "score", num(v.score), "first_seen", topics[name].first_seen,
                ]
            )  # fmt: skip
            commands.append(["EXPIRE", key, retention])
        for name in gone:
            key = topic_keys.get(name)
            if key is None:
                key = topic_keys[name] = keys.trend_topic(community, name)
            commands.append(["DEL", key])

    def _supported(self, st: TrendState, tp: Topic, corr: float) -> bool:
        """Ranked at all: ``min_support`` mentions in the last window, or a usual topic (level ≥ 1).
        A word said once is what someone said, not yet a topic of the community."""
        if tp.at != st.bucket:
            self._sync(tp, st.bucket)
        return tp.level * corr >= 1.0 or sum(tp.counts[: self.buckets + 1]) >= self.min_support

    def top(self, st: TrendState, n: int) -> list[str]:
        """The ``n`` best-ranked topics of ``st`` as of its last event (what a refresh would publish)."""
        corr = self.level_factor(st)
        ranked = self._rank(st, corr, self._activity(st, corr), st.model.coefficients())
        return [name for _, name in ranked[:n]]

    def _rank(
        self,
        st: TrendState,
        corr: float,
        act: float,
        coef: Coefficients,
        views: dict[str, _View] | None = None,
    ) -> list[tuple[float, str]]:
        """(−score, topic) of every topic, best first: :meth:`_view`'s score with the forecast
        inlined (this runs over all topics at every bucket boundary).  With ``views``, also
        :meth:`_views` of each ranked topic into it, from the same sums and Poisson tail (a
        refresh publishes the views of the top; the two forecasts sum in different orders, so
        each keeps its own arithmetic and the scores stay bit-identical to before)."""
        per_window = self.buckets
        b, w = coef
        w_hour, w_recent, w_prev, w_level, w_act = w
        w0, w1, w2, w3, w4 = w
        w_recent *= per_window / 2.0
        base = b + w_act * act
        span = (2.0 + (st.clock % self.bucket_ms) / self.bucket_ms) / per_window
        floor, min_recent = self.min_baseline, self.min_recent
        bw = self.background_weight
        log1p, log10, sf = math.log1p, math.log10, poisson_sf
        ranked = []
        support = self.min_support
        topics, candidates = st.topics, st.candidates
        bucket, sync, alpha = st.bucket, self._sync, self.alpha
        tumbling = bucket % per_window + 1
        dropped = []
        for name in candidates:
            tp = topics.get(name)
            if tp is None:
                dropped.append(name)
                continue
            c = tp.counts
            if tp.at != bucket:
                # Unsupported already before it is brought up to date (shifting drops counts; its
                # level absorbs c[0], then only decays): the same then, and nothing to publish.
                raw = tp.level
                most = max(raw, raw + alpha * (c[0] * per_window - raw)) * corr
                if most < 1.0 and sum(c[: per_window + 1]) < support:
                    if most < 0.99:  # ≥ its level then, whose c[0] is 0: as below
                        dropped.append(name)
                    continue
                sync(tp, bucket)
                c = tp.counts
            level = tp.level * corr
            hour = sum(c[: per_window + 1])
            if level < 1.0 and hour < support:
                # Not ranked; nor later until mentioned again if even after absorbing the current
                # bucket its level stays under 1 (levels only decay, as the bias correction does).
                raw = tp.level
                if max(raw, raw + alpha * (c[0] * per_window - raw)) * corr < 0.99:
                    dropped.append(name)
                continue
            recent = c[0] + c[1] + c[2]
            prev = sum(c) - hour
            s = level + 1.0
            z = base + (w_hour * hour + w_recent * recent + w_prev * prev + w_level * level) / s
            forecast = z * s if z > 0.0 else 0.0
            expected = (level if level > floor else floor) * span
            # trend_score, inline
            score = log1p(forecast)
            if bw:
                score -= bw * log1p(level)
            surprise = 0.0
            if recent >= min_recent and recent > expected:
                surprise = log10(max(sf(recent, expected), 1e-300))
                score -= surprise
            ranked.append((-score, name))
            if views is not None:
                z = b + (w0 * hour + w1 * recent * per_window / 2.0 + w2 * prev + w3 * level) / s + w4 * act
                seen = z * s if z > 0.0 else 0.0  # _views' forecast
                if seen != forecast:
                    forecast, score = seen, log1p(seen)
                    if bw:
                        score -= bw * log1p(level)
                    if surprise:
                        score -= surprise
                views[name] = _View(sum(c[:tumbling]), forecast, recent / span, level, score)
        for name in dropped:
            del candidates[name]
        ranked.sort()
        return ranked

    def _themes(self, st: TrendState, views: dict[str, _View], ranked: list[str]) -> RedisCommand:
        """Meetup theme suggestions: the best-ranked topics that are rising, with who drives them."""
        themes = []
        floor = self.theme_min_growth
        for name in ranked:
            v = views[name]
            if v.growth < floor:
                continue
            themes.append(
                {
                    "topic": name,
                    "score": round(v.score, 3),
                    "forecast": round(v.forecast, 2),
                    "growth": round(v.growth, 2),
                    "members": self._top_members(st.topics[name], self.theme_members),
                }
            )
            if len(themes) >= self.theme_topics:
                break
        doc = orjson.dumps(themes).decode()
        return ["SET", keys.themes(st.community), doc, "EX", self.retention_seconds]

    def _observe(self, st: TrendState, out: Output) -> None:
        """Per-community gauges (bounded: a handful per community, none per topic)."""
        out.observations += [
            Observation("trends_topics", st.community, float(len(st.topics))),
            Observation("trends_alerts_total", st.community, float(st.alerts)),
        ]
        if st.scored:
            mae, mae_last, mae_level = (e / st.scored for e in st.abs_err)
            out.observations += [
                Observation("trends_forecast_mae", st.community, mae),
                Observation("trends_forecast_mae_last_value", st.community, mae_last),
                Observation("trends_forecast_mae_level", st.community, mae_level),
            ]


def _num(value: float) -> str:
    """A float as Redis should store it: 4 decimals, the same string in every process —
    ``repr(round(value, 4))``, from one correctly rounded ``.4f`` where that is the same string
    (under 1e9, at most 13 significant digits: the shortest repr of the rounded float)."""
    if -1e9 < value < 1e9:
        text = f"{value:.4f}".rstrip("0")
        return text + "0" if text[-1] == "." else text
    return repr(round(value, 4))
