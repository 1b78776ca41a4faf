"""Issue 14: what the trends operator writes to Redis, against an independent recompute, and the
equivalences its fast paths rely on (old snapshots, tag topics, inlined SGD, number strings)."""

from __future__ import annotations

import math
import pickle
import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.text_stage import analysis_of, topics_with_tags
from online_models.trends import TopicForecaster, topic_features
from schemas.events import Event, Post
from streams import keys
from streams.labelled.trends import topic_stream
from streams.operators import trends as trends_mod
from streams.operators.runner import iter_locally, time_batches
from streams.operators.trends import _PICKLED, Topic, TrendingTopics, TrendState, _num
from streams.sinks.memory import MemoryStore


@pytest.fixture(scope="module")
def stream() -> list[Event]:
    return topic_stream(days=3, communities=3, seed=31, surges_per_week=7)[0]


def test_ranked_topics_have_fresh_hashes_and_unranked_ones_none(stream):
    """After every batch: the topic hashes of a community are exactly its zset's members; each was
    written no earlier than the member's last mention or entry into the zset; its ``count`` equals
    the mentions of the topic in the community's current tumbling window, counted here from the
    posts; a score written in the same batch to the zset and the hash is the same string."""
    op = TrendingTopics(max_topics=100_000)  # no pruning: counts follow the posts exactly
    redis = MemoryStore()
    mentions: dict[str, dict[str, dict[int, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    bucket: dict[str, int] = {}
    written: dict[str, int] = {}  # hash key → batch of its last HSET
    due: dict[str, int] = {}  # hash key → last batch it was mentioned while ranked, or entered the zset
    checked = 0
    for i, (batch, out) in enumerate(iter_locally(op, time_batches(stream, 60_000))):
        before = {c: set(redis.zsets.get(keys.trends(c), {})) for c in mentions | dict.fromkeys(bucket)}
        redis.apply(out.commands)
        said: dict[str, set[str]] = defaultdict(set)
        for ev in batch:
            b = ev.ts // op.bucket_ms
            bucket[ev.community] = max(bucket.get(ev.community, b), b)
            if isinstance(ev, Post):
                for t in topics_with_tags(analysis_of(ev), ev.tags, op.max_topics_per_post):
                    mentions[ev.community][t][b] += 1
                    said[ev.community].add(t)
        zadded: dict[str, str] = {}
        for cmd in out.commands:
            if cmd[0] == "ZADD":
                for score, m in zip(cmd[2::2], cmd[3::2], strict=True):
                    zadded[keys.trend_topic(cmd[1].split(":", 2)[2], m)] = score
            elif cmd[0] == "HSET":
                written[cmd[1]] = i
                fields = dict(zip(cmd[2::2], cmd[3::2], strict=True))
                if cmd[1] in zadded:
                    assert zadded[cmd[1]] == fields["score"]
        for community, cur in bucket.items():
            ranked = set(redis.zsets.get(keys.trends(community), {}))
            hashes = {k for k in redis.hashes if k.startswith(keys.trends(community) + ":")}
            assert hashes == {keys.trend_topic(community, t) for t in ranked}, (i, community)
            start = cur - cur % op.buckets
            for t in ranked:
                key = keys.trend_topic(community, t)
                if t in said[community] or t not in before.get(community, set()):
                    due[key] = i
                assert written[key] >= due.get(key, -1), (i, community, t)  # not stale
                if written[key] == i:
                    count = sum(n for b, n in mentions[community][t].items() if start <= b <= cur)
                    assert redis.hashes[key]["count"] == count, (i, community, t)
                    checked += 1
    assert checked > 1000


def _old_format(op: TrendingTopics, states: dict[str, TrendState]) -> bytes:
    """The states pickled as the code before issue 14 did: topics as 6-tuples aligned with their
    community's bucket, TrendState without ``ranked``."""
    for s in states.values():
        op._sync_all(s)
    topic_get, state_get = Topic.__getstate__, TrendState.__getstate__
    try:
        Topic.__getstate__ = lambda tp: topic_get(tp)[:6]  # type: ignore[method-assign,assignment]
        TrendState.__getstate__ = lambda s: state_get(s)[: len(_PICKLED) - 1]  # type: ignore[method-assign,assignment]
        return pickle.dumps(states, protocol=5)
    finally:
        Topic.__getstate__, TrendState.__getstate__ = topic_get, state_get  # type: ignore[method-assign]


def _not_hashes(commands: list[list[Any]]) -> list[list[Any]]:
    return [
        c for c in commands if not (c[0] in ("HSET", "EXPIRE") or (c[0] == "DEL" and c[1].count(":") > 2))
    ]


def test_a_snapshot_from_before_issue_14_loads_and_continues_the_same(stream):
    cut = len(stream) // 2
    op = TrendingTopics()
    states: dict[str, TrendState] = {}
    for _ in iter_locally(op, time_batches(stream[:cut], 60_000), states):
        pass
    old = pickle.loads(_old_format(op, states))
    assert all(s.ranked is None for s in old.values())
    rest = list(time_batches(stream[cut:], 60_000))
    a = [out for _, out in iter_locally(op, rest, states)]
    b = [out for _, out in iter_locally(TrendingTopics(), rest, old)]
    assert [(_not_hashes(x.commands), x.messages, x.observations) for x in a] == [
        (_not_hashes(y.commands), y.messages, y.observations) for y in b
    ]
    assert all(s.ranked is not None for s in old.values())  # rebuilt at the first bucket boundary


class _Plain(TrendingTopics):
    """The surge test for every mention past half of ``surge_min_count`` (no gate), each
    engagement brought up to date and credited through :meth:`_credit` (no skip), and every
    topic brought up to date before a ranking (no candidate passed over as unsupported before)."""

    def _rank(
        self, st: TrendState, corr: float, act: float, coef: Any, views: dict[str, Any] | None = None
    ) -> list[tuple[float, str]]:
        self._sync_all(st)
        return super()._rank(st, corr, act, coef, views)

    def _gate(self, st: TrendState, tp: Topic) -> tuple[int, float, float]:
        return st.bucket, 0.0, 0.0

    def _engage(self, st: TrendState, topics: tuple[str, ...], member: str, points: int) -> None:
        for name in topics:
            tp = st.topics.get(name)
            if tp is not None:
                self._sync(tp, st.bucket)
                self._credit(tp, member, points)


def test_the_shortcuts_on_bounds_change_nothing():
    """The surge gate, the engagement skip and the ranking's early skip rest on bounds (see
    ``_gate``, ``_engage``, ``_rank``); with surge thresholds low enough for ~130 alerts many tests
    land near them (a gate 30 % too high changes the alerts)."""
    events, _ = topic_stream(days=3, communities=3, seed=23, surges_per_week=10)
    low = {
        "surge_ratio": 2.0, "surge_short_ratio": 2.5, "surge_min_count": 4, "cooldown_windows": 1,
        "surge_alpha": 0.01, "surge_short_alpha": 0.01,
    }  # fmt: skip

    def run(op: TrendingTopics) -> list[tuple[Any, ...]]:
        outs = iter_locally(op, time_batches(events, 60_000))
        return [(out.commands, out.messages, out.observations) for _, out in outs]

    plain = run(_Plain(**low))
    assert sum(len(messages) for _, messages, _ in plain) > 100
    assert run(TrendingTopics(**low)) == plain
    assert run(TrendingTopics()) == run(_Plain())


def test_a_refresh_ranks_with_the_views_it_publishes(stream):
    """``_rank`` computes the views of what it ranks alongside (two forecasts, each in its own
    order of operations): they are :meth:`_views`' to the bit."""
    op = TrendingTopics()
    states: dict[str, TrendState] = {}
    checked = 0
    for _ in iter_locally(op, time_batches(stream[:20_000], 60_000), states):
        for st_ in states.values():
            corr = op.level_factor(st_)
            act, coef = op._activity(st_, corr), st_.model.coefficients()
            views: dict[str, Any] = {}
            ranked = op._rank(st_, corr, act, coef, views)
            assert {name for _, name in ranked} == set(views)
            assert op._views(st_, list(views), corr, act, coef) == views
            checked += len(views)
    assert checked > 10_000


def test_post_topics_are_the_text_stages(stream):
    op = TrendingTopics()
    posts = [ev for ev in stream if isinstance(ev, Post)][:3000]
    rng = random.Random(2)
    tags = ("AI", "#ai", "Open_Source", "agents", "", "  ", "大模型", "x" * 50, "GPT-4o", "ai")
    for ev in posts:
        for extra in ((), tuple(rng.sample(tags, rng.randrange(1, 5)))):
            want = topics_with_tags(analysis_of(ev), (*ev.tags, *extra), op.max_topics_per_post)
            assert op._topics(analysis_of(ev), (*ev.tags, *extra)) == want
    trends_mod._TAG_TOPICS.clear()


def test_learn_many_is_river_to_the_bit():
    rng = random.Random(5)
    for _ in range(50):
        a, b = TopicForecaster(), TopicForecaster()
        rows = []
        for _ in range(rng.randrange(1, 80)):
            hour, recent, prev = rng.randrange(40), rng.randrange(15), rng.randrange(40)
            level, act, y = (
                rng.choice((0.0, rng.random(), 30 * rng.random())),
                rng.uniform(-2, 2),
                rng.randrange(50),
            )
            rows.append((hour, recent, prev, level, act, 6, y))
            a.learn_one(topic_features(hour, recent, prev, level, act, 6), y, level)
        b.learn_many(rows)
        assert a.coefficients() == b.coefficients()
        assert a.regressor.optimizer.n_iterations == b.regressor.optimizer.n_iterations


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=True),
        st.floats(-100, 100),
        st.integers(-(10**6), 10**6).map(lambda n: n / 20_000),
    )
)
def test_num_is_repr_of_round(value):
    assert _num(value) == repr(round(value, 4))


def test_num_halves():
    for v in (0.00005, 0.00015, 1.23445, -0.00005, 2.5e-5, 123456.78905, 999_999_999.99995):
        assert _num(v) == repr(round(v, 4)), v
    assert not math.isnan(float(_num(1e300)))
