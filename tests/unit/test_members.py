"""Member insights: labels equal an independent recompute, predictions never see the future,
snapshots change nothing, memory stays bounded, and the model beats recency on known archetypes."""

from __future__ import annotations

import math
import pickle
import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.churn import FEATURES, BinnedAUC, MemberTable, member_features
from schemas.events import Event, Post, Reaction, Rsvp
from streams.labelled.trends import evaluate_members, exact_auc, member_stream
from streams.operators.base import Output
from streams.operators.members import MemberInsights, MemberState
from streams.operators.runner import run_locally

DAY = 86_400_000
T0 = 1_767_571_200_000


class Recording(MemberInsights):
    """Records every checkpoint's time and every label scored (with the checkpoint that learned it)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.labels: list[tuple[str, str, int, bool, int]] = []  # community, member, at, y, learned at
        self.now = 0

    def _checkpoint(self, st: MemberState, now: int, out: Output) -> None:
        self.now = now
        super()._checkpoint(st, now, out)

    def _score(
        self, st: MemberState, member: str, at: int, y: bool, p_model: float, p_baseline: float
    ) -> None:
        assert 0.0 <= p_model <= 1.0 and 0.0 <= p_baseline <= 1.0
        self.labels.append((st.community, member, at, y, self.now))
        super()._score(st, member, at, y, p_model, p_baseline)


def run(op: MemberInsights, events: list[Event], batch: int, snapshot: bool = False) -> list[Output]:
    outputs, states = run_locally(op, events, batch, snapshot)
    run.states = states  # type: ignore[attr-defined]
    return outputs


def commands(outputs: list[Output]) -> list[list[Any]]:
    return [c for o in outputs for c in o.commands]


@pytest.fixture(scope="module")
def stream() -> list[Event]:
    return member_stream(days=45, communities=2, members=80, seed=3)


def test_labels_equal_an_independent_recompute_and_are_learned_when_known(stream):
    op = Recording()
    run(op, stream, batch=500)
    assert len(op.labels) > 200
    times: dict[tuple[str, str], list[int]] = defaultdict(list)
    for ev in stream:
        times[(ev.community, ev.member)].append(ev.ts)
    for community, member, at, y, learned in op.labels:
        assert y == any(at < t <= at + op.horizon_ms for t in times[(community, member)])
        assert learned >= at + op.horizon_ms + op.label_delay_ms  # never learned before it is known
        assert learned - (at + op.horizon_ms + op.label_delay_ms) < op.checkpoint_ms  # nor later than needed
        assert at % op.checkpoint_ms == 0


def test_batching_changes_nothing_not_even_one_batch_with_the_future_in_it(stream):
    one = commands(run(MemberInsights(), stream, batch=len(stream)))
    small = commands(run(MemberInsights(), stream, batch=37))
    assert one == small


@pytest.mark.parametrize("cut_day", [12, 20, 30])
def test_altering_the_future_does_not_change_earlier_predictions(stream, cut_day):
    """Everything after a checkpoint T is rewritten for a third of the members (actions
    dropped, labels flipped); every output up to and including T's must stay identical —
    with the whole stream in one batch, so the future is in memory when T is computed."""
    cut = T0 + cut_day * DAY
    rng = random.Random(cut_day)
    members = sorted({e.member for e in stream})
    changed = set(rng.sample(members, len(members) // 3))
    altered = [e for e in stream if e.ts <= cut or e.member not in changed]
    altered += [
        Reaction(f"x{i}", "m0", m, cut + 3 * DAY + i, "none", "like") for i, m in enumerate(sorted(changed))
    ]
    altered.sort(key=lambda e: (e.ts, e.id))

    def upto_cut(events: list[Event]) -> tuple[list[list[Any]], list[list[Any]]]:
        op = MemberInsights()
        everything = run(op, events, batch=len(events))[0].commands
        return everything[: _checkpoint_commands_until(events, cut, op)], everything

    (before, all_before), (after, all_after) = upto_cut(stream), upto_cut(altered)
    assert before and before == after
    assert all_before != all_after  # the rewrite did change what came later


def _checkpoint_commands_until(events: list[Event], cut: int, op: MemberInsights) -> int:
    """Number of commands written by the checkpoints at or before ``cut`` (4 per community
    checkpoint: DEL + ZADD of each list, ZADD only when the list is not empty)."""
    ref = MemberInsights()
    prefix = [e for e in events if e.ts <= cut]
    prefix.append(Reaction("probe", "m0", "probe", cut + 1, "none", "like"))  # fires T's checkpoint
    prefix.append(Reaction("probe1", "m1", "probe", cut + 1, "none", "like"))
    prefix.sort(key=lambda e: (e.ts, e.id))
    return len(run(ref, prefix, batch=len(prefix))[0].commands)


def test_snapshot_round_trip_mid_stream_changes_nothing(stream):
    assert run(MemberInsights(), stream, 211, snapshot=True) == run(MemberInsights(), stream, 211)


def test_published_lists(stream):
    op = MemberInsights(top_n=10)
    outputs = run(op, stream, batch=1000)
    zadds = [c for c in commands(outputs) if c[0] == "ZADD"]
    assert any(":at-risk:" in c[1] for c in zadds) and any(":rising:" in c[1] for c in zadds)
    for c in zadds:
        scores = [float(s) for s in c[2::2]]
        assert len(scores) <= 10 and scores == sorted(scores, reverse=True)
        if ":at-risk:" in c[1]:
            assert all(0.0 <= s <= 1.0 for s in scores)
    obs = [g for out in outputs for g in out.observations]
    assert {o.metric for o in obs} >= {"members_tracked", "members_auc", "members_auc_recency"}


def test_memory_is_bounded():
    op = MemberInsights(max_members=100, max_posts=50, evict_days=10)
    events: list[Event] = [
        Post(f"e{i}", "c", f"visitor{i}", T0 + i * 60_000, f"p{i}", "hello", "post", (), None)
        for i in range(1000)
    ]
    events.append(Post("late", "c", "someone", T0 + 30 * DAY, "pz", "back", "post", (), None))
    outputs = run(op, events, batch=100)
    st_ = run.states["c"]  # type: ignore[attr-defined]
    assert len(st_.posts) <= 50
    assert len(st_.table) <= 2  # the idle were evicted (pending labels resolved first)
    assert max(len(o.commands) for o in outputs) < 10
    sizes = []
    op2 = MemberInsights(max_members=100)
    states = {"c": op2.new_state("c")}
    for at in range(0, 1000, 100):
        op2.apply_batch(states, events[at : at + 100])
        assert len(states["c"].table) <= 110
        sizes.append(len(pickle.dumps(states["c"], protocol=5)))
    assert max(sizes) < 40_000


def test_engagement_is_credited_once_and_only_by_others():
    op = MemberInsights()
    states = {"c": op.new_state("c")}
    op.apply_batch(states, [
        Post("e1", "c", "ann", T0, "p1", "Launching our beta today!", "post", (), None),
        Post("e2", "c", "ann", T0 + 1, "p2", "self reply", "post", (), "p1"),
        Reaction("e3", "c", "bob", T0 + 2, "p1", "sad"),
        Reaction("e4", "c", "bob", T0 + 3, "p1", "love"),
        Post("e5", "c", "cy", T0 + 4, "p3", "congrats", "post", (), "p1"),
        Reaction("e6", "c", "dee", T0 + 5, "p2", "like"),
    ])  # fmt: skip
    t = states["c"].table
    assert t.cols["engaged"][t.index["ann"]] == 2.0  # p1 once (bob's love), p2 once (dee's like)
    assert t.cols["posts"][t.index["ann"]] == 2.0


def test_sentiment_reads_chinese_too():
    t = MemberTable()
    i, j = t.add("a", 0), t.add("b", 0)
    from online_models.sentiment import sentiment

    t.post(i, sentiment("广告太多了，很失望，我要退群了。"))
    t.post(j, sentiment("谢谢大家，这个社群太棒了！"))
    x_i, x_j = member_features(t, i, DAY), member_features(t, j, DAY)
    assert x_i["sentiment"] < 0 < x_j["sentiment"]
    assert list(x_i) == list(FEATURES)


def test_features_use_nothing_after_now():
    t = MemberTable()
    i = t.add("a", 0)
    for d in (1, 2, 3):
        t.touch(i, d * DAY)
    x = member_features(t, i, 3 * DAY)
    assert x["recency"] == 0.0 and math.isclose(x["tenure"], math.log1p(3))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=2, max_size=300))
def test_binned_auc_is_exact_up_to_pairs_sharing_a_bin(pairs):
    auc = BinnedAUC(bins=100)
    for y, p in pairs:
        auc.update(y, p)
    exact = exact_auc(pairs)
    got = auc.get()
    if math.isnan(exact):
        assert got is None
        return
    pos = [min(99, int(p * 100)) for y, p in pairs if y]
    neg = [min(99, int(p * 100)) for y, p in pairs if not y]
    same_bin = sum(a == b for a in pos for b in neg) / (len(pos) * len(neg))
    assert got is not None and abs(got - exact) <= same_bin / 2 + 1e-9


def test_model_beats_recency_on_known_archetypes():
    report = evaluate_members(days=70, communities=2, members=200, seed=5)
    assert report["labels"] > 1000
    assert report["auc_model"] > report["auc_recency_baseline"] + 0.02
    assert report["auc_model"] > 0.75


def test_late_event_counts_without_moving_last_seen():
    t = MemberTable()
    i = t.add("a", 10 * DAY)
    t.touch(i, 10 * DAY)
    t.touch(i, 9 * DAY)  # late (within the pipeline's grace in practice)
    assert t.cols["last"][i] == 10 * DAY and t.cols["c28"][i] > 1.9


def test_rsvps_feed_meetup_features():
    op = MemberInsights()
    states = {"c": op.new_state("c")}
    op.apply_batch(states, [
        Rsvp("r1", "c", "ann", T0, "m1", "going", (), T0 + DAY, 20),
        Rsvp("r2", "c", "ann", T0 + DAY, "m1", "attended", (), T0 + DAY, 20),
        Rsvp("r3", "c", "ann", T0 + DAY, "m2", "going", (), T0 + 2 * DAY, 20),
    ])  # fmt: skip
    t = states["c"].table
    x = member_features(t, t.index["ann"], T0 + 3 * DAY)
    assert x["attended_share"] == (1 + 1) / (2 + 2) and x["going"] == math.log1p(2)
