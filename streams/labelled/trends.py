"""Labelled hot-topic and member streams: topics that surge at known moments, members who leave.

Shared by ``pulse evaluate trends|members``, the trends study (``studies/evaluate_trends.py``) and
the tests; :func:`score_trends` and :func:`evaluate_members` score the operators.
"""

from __future__ import annotations

import math
import pickle
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from online_models import trends as trend_model
from schemas.events import Event, Post, Reaction, Rsvp
from streams import keys
from streams.labelled.sampling import poisson
from streams.operators.base import Output
from streams.operators.runner import iter_locally, time_batches
from streams.operators.trends import TrendingTopics
from streams.sinks.memory import MemoryStore

HOUR_MS = 3_600_000


DAY_MS = 24 * HOUR_MS


WEEK_MS = 7 * DAY_MS


START_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z, a Monday


# --- a tiny Redis for replaying commands ----------------------------------------------------------
# --- topics ---------------------------------------------------------------------------------------
EN_TOPICS = (
    "hiring", "fundraising", "react", "k8s", "rust", "pricing", "seo", "design", "llm", "sqlite",
    "b2b", "marketing", "cofounder", "equity", "pitch", "angel", "saas", "growth", "churn", "onboarding",
    "analytics", "ux", "mobile", "payment", "compliance", "gdpr", "remote", "visa", "contractor", "legal",
)  # fmt: skip


ZH_TOPICS = (
    "招聘", "融资", "投资人", "创业", "产品", "运营", "市场", "技术", "用户", "数据", "电商", "营销",
    "合伙人", "股权", "路演", "天使轮", "种子轮", "小程序", "开源", "设计", "品牌", "渠道", "供应链",
    "出海", "直播", "短视频", "私域", "客户", "财务", "法律",
)  # fmt: skip


EN_SURGE = ("deepseek", "mcp", "vibecoding", "tariff", "agent", "sora", "devin", "grok", "cursor", "o3")


ZH_SURGE = (
    "智能体",
    "具身智能",
    "多模态",
    "算力",
    "大模型",
    "低代码",
    "独立站",
    "降本增效",
    "机器人",
    "副业",
)


_SYLLABLES = ("ba", "ko", "ri", "ne", "tu", "ma", "lo", "vi", "sa", "de", "pe", "zo", "ki", "ra", "mu", "fe")


def _filler_words(lang: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    if lang == "zh":
        trend_model._jieba_cut()
        import jieba

        pool = sorted(w for w, f in jieba.dt.FREQ.items() if f > 2000 and 2 <= len(w) <= 3)
        return rng.sample(pool, n)
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


@dataclass
class Surge:
    """A topic that takes off at ``start`` (ms) to ``peak_rate`` mentions/h for ``hours``, then fades."""

    community: str
    topic: str
    start: int
    hours: float
    peak_rate: float
    base_rate: float  # its rate before (0: a brand-new term)
    half_life_h: float
    lang: str

    def rate(self, ts: int) -> float:
        if ts < self.start:
            return 0.0
        h = (ts - self.start) / HOUR_MS
        if h <= self.hours:
            return self.peak_rate - self.base_rate
        return (self.peak_rate - self.base_rate) * 0.5 ** ((h - self.hours) / self.half_life_h)

    @property
    def end(self) -> int:
        """When the extra rate has faded below 10 %."""
        return self.start + int((self.hours + 3.4 * self.half_life_h) * HOUR_MS)


def _daily(ts: int, tz: int) -> float:
    """Daily rhythm: 0.3x at night, 1.7x mid-afternoon (local time), mean ~1."""
    h = (ts / HOUR_MS + tz) % 24
    return 1.0 + 0.7 * math.cos((h - 15) / 24 * 2 * math.pi)


def _text(lang: str, rng: random.Random, topics: list[str], fillers: list[str]) -> str:
    words = [rng.choice(fillers) for _ in range(rng.randint(2, 4))]
    if lang == "en":
        parts = words[:1] + topics[:1] + words[1:2] + topics[1:] + words[2:]
        text = " ".join(parts)
        if rng.random() < 0.1:
            text += " https://example.com/" + rng.choice(fillers)
        if rng.random() < 0.1:
            text += " 🚀"
        return text
    glue = "，" if rng.random() < 0.5 else ""
    text = words[0] + topics[0] + glue + "".join(words[1:]) + "".join(topics[1:]) + "。"
    if lang == "mixed":
        text += " " + rng.choice(EN_TOPICS)
    return text


def topic_stream(
    days: int = 14,
    communities: int = 8,
    seed: int = 7,
    surges: bool = True,
    surges_per_week: float = 3.0,
    posts_per_hour: float = 40.0,
    prefix: str = "",
) -> tuple[list[Event], list[Surge]]:
    """Posts (and a few reactions) of ``communities`` communities, with the surges planted.
    Communities are named ``{prefix}{lang}{i}`` (``en0``, ``zh1``, ``mixed2``...)."""
    rng = random.Random(seed)
    events: list[Event] = []
    planted: list[Surge] = []
    end_ms = START_MS + days * DAY_MS
    for ci in range(communities):
        lang = ("en", "zh", "mixed")[ci % 3]
        c = f"{prefix}{lang}{ci}"
        tz = rng.choice((-5, 0, 1, 8))
        rate = posts_per_hour * rng.uniform(0.5, 1.5)
        base = list(EN_TOPICS if lang == "en" else ZH_TOPICS)
        rng.shuffle(base)
        weights = [1.0 / (i + 1) ** 0.9 for i in range(len(base))]
        fillers = _filler_words("zh" if lang != "en" else "en", 1500, seed * 100 + ci)
        members = [f"{c}-m{i}" for i in range(300)]
        pool = list(EN_SURGE if lang == "en" else ZH_SURGE)
        rng.shuffle(pool)
        community_surges: list[Surge] = []
        if surges:
            n = max(1, round(surges_per_week * days / 7))
            starts = sorted(rng.uniform(START_MS + 2.5 * DAY_MS, end_ms - 12 * HOUR_MS) for _ in range(n))
            last_end = 0
            for start in starts:
                if start < last_end or not pool:
                    continue
                quiet = rng.random() < 0.4 and len(base) > 20
                topic = base.pop() if quiet else pool.pop()  # a quiet background topic or a new term
                base_rate = 0.0
                if quiet:
                    weights.pop()
                    base_rate = rng.uniform(0.3, 1.5)
                peak = max(5 * max(base_rate, 0.01), 10.0) * rng.uniform(1.0, 2.0)
                s = Surge(c, topic, int(start), rng.uniform(2, 8), peak, base_rate, rng.uniform(1, 2), lang)
                community_surges.append(s)
                last_end = s.end + 6 * HOUR_MS
        planted += community_surges
        total_w = sum(weights)
        cum = []
        acc = 0.0
        for w in weights:
            acc += w / total_w
            cum.append(acc)
        minute = 60_000
        n_posts = 0
        for t in range(START_MS, end_ms, minute):
            lam = rate * _daily(t, tz) / 60
            for _ in range(poisson(rng, lam, draw_at_zero=False)):
                ts = t + rng.randrange(minute)
                k = 1 if rng.random() < 0.6 else 2
                topics = [base[min(_pick(cum, rng.random()), len(base) - 1)] for _ in range(k)]
                events.append(_post(c, ts, n_posts, lang, rng, topics, fillers, members))
                n_posts += 1
            for s in community_surges:  # the surging topic's own mentions (and its old base rate)
                extra = (s.rate(t) + s.base_rate) / 60 if s.base_rate else s.rate(t) / 60
                for _ in range(poisson(rng, extra, draw_at_zero=False)):
                    ts = t + rng.randrange(minute)
                    topics = [s.topic]
                    if rng.random() < 0.5:
                        topics.append(base[_pick(cum, rng.random()) % len(base)])
                    events.append(_post(c, ts, n_posts, lang, rng, topics, fillers, members[:60]))
                    n_posts += 1
    events.sort(key=lambda e: (e.ts, e.id))
    return events, planted


def _pick(cum: list[float], u: float) -> int:
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] < u:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _post(
    c: str,
    ts: int,
    n: int,
    lang: str,
    rng: random.Random,
    topics: list[str],
    fillers: list[str],
    members: list[str],
) -> Post:
    tags = (topics[0],) if rng.random() < 0.3 and lang == "en" else ()
    return Post(
        f"{c}-e{n}",
        c,
        rng.choice(members),
        ts,
        f"{c}-p{n}",
        _text(lang, rng, topics, fillers),
        "post",
        tags,
        None,
    )


def _run_trends(events: list[Event], surges: list[Surge], batch_ms: int, top_k: int) -> dict[str, Any]:
    """Run the operator directly, record what it published after every batch (the top topics
    of each community it wrote to, its alerts) and score that with :func:`score_trends`."""
    op = TrendingTopics()
    redis = MemoryStore()
    states: dict[str, Any] = {}
    views: list[View] = []
    alerts: list[dict[str, Any]] = []
    sampled_hour: dict[str, int] = {}
    spent = 0.0
    warm = START_MS + op.warmup_buckets * op.bucket_ms
    trend_model.cache_clear()
    for batch, out in _timed(iter_locally(op, time_batches(events, batch_ms), states)):
        spent += out[1]
        batch_out = out[0]
        redis.apply(batch_out.commands)
        ts = batch[-1].ts
        alerts += [msg.value for msg in batch_out.messages]
        hour = ts // HOUR_MS
        for community in sorted({ev.community for ev in batch}):
            usual = None
            if ts >= warm and sampled_hour.get(community, 0) < hour:  # ranking noise, hourly
                sampled_hour[community] = hour
                st = states[community]
                usual = sorted(st.topics, key=lambda n: -st.topics[n].level)[:10]
            views.append(View(ts, community, redis.top(keys.trends(community), top_k), usual))
    n_events = len(events)
    weeks = len(states) * (events[-1].ts - warm) / WEEK_MS
    scored = score_trends(surges, views, alerts, warm, weeks, top_k)
    err = [sum(st.abs_err[k] for st in states.values()) for k in range(3)]
    n_scored = sum(st.scored for st in states.values())
    sizes = [len(pickle.dumps(st, protocol=5)) for st in states.values()]
    return {
        "events": n_events,
        "communities": len(states),
        "us_per_event": round(spent / n_events * 1e6, 1),
        **scored,
        "forecast_mae": round(err[0] / n_scored, 3),
        "mae_last_value": round(err[1] / n_scored, 3),
        "mae_level": round(err[2] / n_scored, 3),
        "forecasts_scored": n_scored,
        "snapshot_bytes_max": max(sizes),
        "snapshot_bytes_mean": round(statistics.mean(sizes)),
    }


@dataclass
class View:
    """One reading of what a community's trends publish: at ``ts`` (ms), the best topics of
    ``pulse:trends:{community}``, best first, and — when the ranking noise is sampled — the
    community's ``usual`` topics (its ten heaviest by level), else None."""

    ts: int
    community: str
    top: Sequence[str]
    usual: Sequence[str] | None = None


def score_trends(
    surges: Sequence[Surge],
    views: Iterable[View],
    alerts: Iterable[dict[str, Any]],
    warm: int,
    community_weeks: float,
    top_k: int = 3,
) -> dict[str, Any]:
    """Score what was published against the planted surges.

    * a surge is *in the top k* at the first reading (``views``, in time order) between its
      start and its end whose top ``top_k`` hold its topic; latency = reading time − start;
    * a ``topic_surge`` alert is true when it names a planted surge's community and topic
      between the surge's start and end, else false (after the warm-up ``warm``), counted per
      community-week;
    * ranking noise: the share of top-k slots held by a topic neither usual nor surging, over
      the readings with ``usual`` topics.

    >>> s = Surge("c", "llm", START_MS + DAY_MS, 3.0, 20.0, 0.0, 1.0, "en")
    >>> views = [View(s.start + 10 * 60_000, "c", ["rust", "go"]), View(s.start + 20 * 60_000, "c", ["llm"])]
    >>> alerts = [{"kind": "topic_surge", "community": "c", "topic": "llm", "ts": s.start + 900_000}]
    >>> r = score_trends([s], views, alerts, START_MS, 1.0)
    >>> r["top3_within_30min"], r["top3_latency_min_median"], r["alert_latency_min_median"], r["false_alerts"]
    (1.0, 20.0, 15.0, 0)
    """
    by_community: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(surges):
        by_community[s.community].append(i)
    hit_at: dict[int, int] = {}
    slots = spurious = 0
    for v in views:
        ts, top = v.ts, list(v.top[:top_k])
        if v.usual is not None:
            surging = {
                surges[i].topic
                for i in by_community.get(v.community, ())
                if surges[i].start <= ts <= surges[i].end
            }
            usual = set(v.usual)
            for topic in top:
                slots += 1
                spurious += topic not in usual and topic not in surging
        for i in by_community.get(v.community, ()):
            s = surges[i]
            if i not in hit_at and s.start <= ts <= s.end and s.topic in top:
                hit_at[i] = ts
    alerted_at: dict[int, int] = {}
    false_alerts: list[dict[str, Any]] = []
    for a in alerts:
        if a.get("kind", "topic_surge") != "topic_surge":
            continue
        match = [
            i for i in by_community.get(a["community"], ())
            if surges[i].topic == a["topic"] and surges[i].start <= a["ts"] <= surges[i].end
        ]  # fmt: skip
        if match:
            alerted_at.setdefault(match[0], a["ts"])
        elif a["ts"] >= warm:
            false_alerts.append(a)
    latencies = [(hit_at[i] - s.start) / 60_000 if i in hit_at else math.inf for i, s in enumerate(surges)]
    alert_lat = [
        (alerted_at[i] - s.start) / 60_000 if i in alerted_at else math.inf for i, s in enumerate(surges)
    ]
    result: dict[str, Any] = {
        "false_alerts": len(false_alerts),
        "community_weeks": round(community_weeks, 1),
        "false_alerts_per_community_week": round(len(false_alerts) / community_weeks, 3),
        "top3_spurious_share": round(spurious / max(slots, 1), 3),
    }
    if surges:
        by_lang: dict[str, list[float]] = defaultdict(list)
        for s, lat in zip(surges, latencies, strict=True):
            by_lang[s.lang].append(lat)
        result["surges"] = len(surges)
        result["top3_within_30min"] = round(sum(lat <= 30 for lat in latencies) / len(surges), 3)
        result["top3_within_30min_by_lang"] = {
            lang: f"{sum(lat <= 30 for lat in lats)}/{len(lats)}" for lang, lats in sorted(by_lang.items())
        }
        result["top3_latency_min_median"] = round(statistics.median(latencies), 1)
        result["top3_misses"] = [
            (s.community, s.topic, round(s.base_rate, 1), round(s.peak_rate, 1), lat)
            for s, lat in zip(surges, latencies, strict=True)
            if lat > 30
        ]
        result["alerted"] = round(sum(lat < math.inf for lat in alert_lat) / len(surges), 3)
        result["alert_latency_min_median"] = round(statistics.median(alert_lat), 1)
    if false_alerts:
        result["false_alert_examples"] = [
            (v["community"], v["topic"], v["count"], v["baseline"]) for v in false_alerts[:5]
        ]
    return result


Batch = Sequence[Event]


def _timed(it: Iterator[tuple[Batch, Output]]) -> Iterator[tuple[Batch, tuple[Output, float]]]:
    while True:
        t = time.perf_counter()
        try:
            batch, out = next(it)
        except StopIteration:
            return
        yield batch, (out, time.perf_counter() - t)


# --- members --------------------------------------------------------------------------------------
ARCHETYPES = (("regular", 0.25), ("occasional", 0.25), ("one_time", 0.15), ("leaver", 0.20), ("grower", 0.15))


TONES = {
    "en": (
        ("Thanks everyone, this community is amazing!", "Loved the talk yesterday, great ideas.",
         "Happy to help, ping me anytime."),
        ("Does anyone have a template for a seed deck?", "We are hiring a backend engineer in Berlin.",
         "What tools do you use for analytics?"),
        ("Honestly this group feels useless lately.", "Too much spam here, disappointed.",
         "Nobody answered my question, frustrating."),
    ),
    "zh": (
        ("谢谢大家，这个社群太棒了！", "昨天的分享很精彩，收获很大。", "有需要随时找我，乐意帮忙。"),
        ("有没有种子轮路演的模板？", "我们在杭州招后端工程师。", "大家用什么工具做数据分析？"),
        ("说实话最近这个群没什么意思。", "广告太多了，很失望。", "问题一直没人回，有点失望。"),
    ),
}  # fmt: skip


@dataclass
class _Member:
    id: str
    kind: str
    join: float  # day
    leave: float  # day (inf: stays)
    rate: float  # actions a day at full activity
    ramp: float  # days of decay before leaving, or of growth after joining
    appeal: float  # how likely others reply to / react to their posts
    show: float  # P(attend | going)
    mood: float  # P(negative post) at full activity


def member_stream(days: int = 120, communities: int = 3, members: int = 400, seed: int = 11) -> list[Event]:
    """Actions of members with known archetypes (see the module docstring), time ordered."""
    rng = random.Random(seed)
    events: list[Event] = []
    for ci in range(communities):
        c = f"m{ci}"
        lang = "zh" if ci % 3 == 1 else "en"
        people: list[_Member] = []
        for k in range(members):
            kind = rng.choices([a for a, _ in ARCHETYPES], [w for _, w in ARCHETYPES])[0]
            join = (
                rng.uniform(0, days * 0.3)
                if kind in ("regular", "occasional")
                else rng.uniform(0, days * 0.85)
            )
            leave, ramp = math.inf, 0.0
            rate = rng.uniform(0.4, 2.5)
            if kind == "occasional":
                rate = rng.uniform(0.06, 0.3)
                if rng.random() < 0.3:
                    leave = join + rng.uniform(20, 120)
            elif kind == "regular" and rng.random() < 0.1:
                leave = join + rng.uniform(30, 150)
            elif kind == "one_time":
                leave = join + rng.uniform(0.05, 2)
                rate = rng.uniform(1, 4)
            elif kind == "leaver":
                ramp = rng.uniform(14, 35)
                leave = join + ramp + rng.uniform(5, 60)
            elif kind == "grower":
                ramp = rng.uniform(21, 42)
            appeal = rng.uniform(0.2, 0.9) * (0.5 if kind == "leaver" else 1.0)
            show = rng.uniform(0.5, 0.95) * (0.6 if kind == "leaver" else 1.0)
            people.append(
                _Member(f"{c}-u{k}", kind, join, leave, rate, ramp, appeal, show, rng.uniform(0.05, 0.2))
            )
        recent_posts: list[tuple[str, _Member]] = []
        n = 0
        meetup_days = set(range(3, days, 7))
        raw: list[tuple[int, _Member, str]] = []
        for m in people:
            t = m.join
            while True:
                t += rng.expovariate(max(m.rate, 1e-3))
                if t >= min(days, m.leave):
                    break
                if rng.random() > _intensity(m, t):
                    continue  # thinning: the member's activity curve
                raw.append(
                    (
                        START_MS + int(t * DAY_MS),
                        m,
                        rng.choices(("post", "reaction", "rsvp"), (0.3, 0.55, 0.15))[0],
                    )
                )
        raw.sort(key=lambda r: (r[0], r[1].id))
        for ts, m, action in raw:
            n += 1
            if action == "post" or (action == "reaction" and not recent_posts):
                level = _intensity(m, (ts - START_MS) / DAY_MS)
                negative = rng.random() < m.mood + (0.5 * (1 - level) if m.kind == "leaver" else 0.0)
                tone = 2 if negative else (0 if rng.random() < 0.4 else 1)
                text = rng.choice(TONES[lang][tone])
                reply_to = None
                if recent_posts and rng.random() < 0.4:
                    reply_to = _target(rng, recent_posts)
                post = f"{c}-p{n}"
                events.append(Post(f"{c}-e{n}", c, m.id, ts, post, text, "post", (), reply_to))
                recent_posts.append((post, m))
                if len(recent_posts) > 200:
                    recent_posts.pop(0)
            elif action == "reaction":
                target = _target(rng, recent_posts)
                kind = rng.choice(("like", "love", "insightful", "thanks", "laugh", "sad"))
                events.append(Reaction(f"{c}-e{n}", c, m.id, ts, target, kind))
            else:
                day = (ts - START_MS) // DAY_MS
                meetup_day = min((d for d in meetup_days if d >= day), default=None)
                if meetup_day is None:
                    continue
                starts = START_MS + meetup_day * DAY_MS + 18 * HOUR_MS
                meetup = f"{c}-meetup{meetup_day}"
                events.append(Rsvp(f"{c}-e{n}", c, m.id, ts, meetup, "going", (), starts, 40))
                came = starts + HOUR_MS
                if (
                    came < START_MS + days * DAY_MS
                    and (ts - START_MS) / DAY_MS < m.leave
                    and rng.random() < m.show
                ):
                    events.append(Rsvp(f"{c}-e{n}a", c, m.id, came, meetup, "attended", (), starts, 40))
    events.sort(key=lambda e: (e.ts, e.id))
    return events


def _intensity(m: _Member, day: float) -> float:
    """The member's activity relative to their full rate at ``day`` (0-1)."""
    if m.kind == "leaver" and day > m.leave - m.ramp:
        return max(0.05, (m.leave - day) / m.ramp)
    if m.kind == "grower":
        return min(1.0, 0.08 + (day - m.join) / m.ramp)
    return 1.0


def _target(rng: random.Random, recent: list[tuple[str, _Member]]) -> str:
    """A recent post, chosen in favour of appealing authors."""
    for _ in range(8):
        post, author = recent[-1 - min(len(recent) - 1, int(rng.expovariate(1 / 30)))]
        if rng.random() < author.appeal:
            return post
    return recent[-1][0]


def evaluate_members(
    days: int = 120,
    communities: int = 3,
    members: int = 400,
    seed: int = 11,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Progressive-validation ROC AUC of the member model against the recency-only baseline
    (exact, from every scored prediction), precision of the published at-risk lists, cost."""
    from streams.operators.members import MemberInsights

    events = member_stream(days, communities, members, seed)
    scored: dict[str, list[tuple[bool, float]]] = {"model": [], "baseline": []}

    class Recorded(MemberInsights):
        """Keeps every scored prediction, for an exact AUC (the operator's own is binned)."""

        def _score(self, st: Any, member: str, at: int, y: bool, p_model: float, p_baseline: float) -> None:
            scored["model"].append((y, p_model))
            scored["baseline"].append((y, p_baseline))
            super()._score(st, member, at, y, p_model, p_baseline)

    op = Recorded(**(params or {}))
    redis = MemoryStore()
    states: dict[str, Any] = {}
    lists: list[tuple[int, str, list[str]]] = []
    spent = 0.0
    for batch, (out, dt) in _timed(iter_locally(op, time_batches(events, 60_000), states)):
        spent += dt
        redis.apply(out.commands)
        for key in {cmd[1] for cmd in out.commands if cmd[0] == "DEL" and ":at-risk:" in cmd[1]}:
            lists.append((batch[0].ts // DAY_MS * DAY_MS, key.rsplit(":", 1)[1], redis.top(key, 20)))
    hits, total = score_at_risk(events, lists)
    model_y = [y for y, _ in scored["model"]]
    sizes = [len(pickle.dumps(st, protocol=5)) for st in states.values()]
    return {
        "events": len(events),
        "communities": len(states),
        "labels": len(model_y),
        "active_share": round(sum(model_y) / max(1, len(model_y)), 3),
        "auc_model": round(exact_auc(scored["model"]), 4),
        "auc_recency_baseline": round(exact_auc(scored["baseline"]), 4),
        "auc_model_binned": [round(st.auc.get() or 0, 4) for st in states.values()],
        "auc_model_last_half": round(exact_auc(scored["model"][len(model_y) // 2 :]), 4),
        "auc_baseline_last_half": round(exact_auc(scored["baseline"][len(model_y) // 2 :]), 4),
        "at_risk_top20_inactive_next_week": round(hits / max(1, total), 3),
        "us_per_event": round(spent / len(events) * 1e6, 1),
        "snapshot_bytes_max": max(sizes),
        "members_tracked": [len(st.table) for st in states.values()],
    }


def score_at_risk(
    events: Sequence[Event], lists: Iterable[tuple[int, str, Sequence[str]]], complete: bool = False
) -> tuple[int, int]:
    """(members listed, of them inactive for the week after the list) over published at-risk
    lists: (checkpoint time, community, members best first).  ``complete``: only lists whose
    next week lies inside the stream (a list of the last days would count everyone as gone).

    >>> evs = [Post("e1", "c", "ann", START_MS + DAY_MS, "p1", "hi", "post", (), None)]
    >>> score_at_risk(evs, [(START_MS, "c", ["ann", "bob"])])
    (1, 2)
    """
    active: dict[tuple[str, str], list[int]] = defaultdict(list)
    for ev in events:
        active[(ev.community, ev.member)].append(ev.ts)
    last = max((ev.ts for ev in events), default=0)
    hits = total = 0
    for ts, community, top in lists:
        if complete and ts + WEEK_MS > last:
            continue
        for member in top:
            times = active[(community, member)]
            total += 1
            hits += not any(ts < t <= ts + WEEK_MS for t in times)
    return hits, total


def exact_auc(pairs: Sequence[tuple[bool, float]]) -> float:
    """ROC AUC by ranks (Mann-Whitney U; ties get the average rank).

    >>> exact_auc([(True, 0.9), (False, 0.1), (True, 0.4), (False, 0.4)])
    0.875
    """
    ranked = sorted(pairs, key=lambda yp: yp[1])
    rank_sum = 0.0
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][1] == ranked[i][1]:
            j += 1
        avg = (i + j) / 2 + 1
        rank_sum += avg * sum(1 for y, _ in ranked[i : j + 1] if y)
        i = j + 1
    n_pos = sum(1 for y, _ in pairs if y)
    n_neg = len(pairs) - n_pos
    if not n_pos or not n_neg:
        return math.nan
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
