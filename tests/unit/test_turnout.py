"""The meetup turnout predictor: RSVP bookkeeping, freeze-then-learn, snapshots and the Redis contract."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from online_models.turnout import AttendanceModel, BaseRate, MemberStats, logit
from schemas.events import Event, Post, Rsvp
from streams.labelled.models import evaluate, synthetic_events
from streams.operators.base import Output
from streams.operators.runner import run_locally
from streams.operators.turnout import TurnoutPredictor
from tests.snapshots import assert_continues_after_snapshot, assert_continues_in_another_process

H = 3_600_000
START = 1_767_571_200_000 + 7 * 24 * H  # a meetup start
_ids = itertools.count()


def rsvp(
    member: str,
    ts: int,
    status: str,
    meetup: str = "m1",
    starts_at: int | None = START,
    capacity: int | None = 20,
    community: str = "c1",
) -> Rsvp:
    return Rsvp(f"r{next(_ids)}", community, member, ts, meetup, status, ("meetup",), starts_at, capacity)


def tick(ts: int, community: str = "c1") -> Post:
    """Any event of the community: it moves the community's event-time clock."""
    return Post(f"t{next(_ids)}", community, "someone", ts, "p", "…", "post", (), None)


def fields(cmd: list) -> dict:
    return dict(zip(cmd[2::2], cmd[3::2], strict=True))


def hsets(out: Output, meetup: str = "m1") -> list[dict]:
    return [fields(c) for c in out.commands if c[0] == "HSET" and c[1].endswith(f":{meetup}")]


def run(op: TurnoutPredictor, events: Sequence[Event], batch: int = 1_000) -> tuple[Output, dict]:
    """All of ``events`` in batches of ``batch``: every output merged, and the states."""
    outputs, states = run_locally(op, events, batch)
    return Output.merged(outputs), states


def meetup_events(
    meetup: str, starts_at: int, going: Sequence[str], came: Sequence[str], community: str = "c1"
) -> list[Event]:
    """RSVPs a day before ``starts_at``, check-ins an hour after it."""
    events: list[Event] = [
        rsvp(m, starts_at - 24 * H + i, "going", meetup, starts_at, 50, community)
        for i, m in enumerate(going)
    ]
    events += [
        rsvp(m, starts_at + H + i, "attended", meetup, starts_at, 50, community) for i, m in enumerate(came)
    ]
    return events


# --- the model --------------------------------------------------------------------------------------
def test_attendance_model_starts_at_the_members_smoothed_rate() -> None:
    """Guards the one private river attribute we set (there is no per-feature initializer)."""
    model, stats = AttendanceModel(), MemberStats(prior_strength=2.0)
    for going, came, base in ((0, 0, 0.6), (3, 0, 0.6), (10, 9, 0.4)):
        rate = stats.rate(going, came, base)
        x = model.features(rate, going, 3 * H, False, 0.1, 0.2, 0.5, 20.0)
        assert model.predict_one(x) == pytest.approx(rate, abs=1e-4)
    assert stats.rate(0, 0, 0.6) == 0.6 and stats.rate(3, 0, 0.6) == pytest.approx(1.2 / 5)
    x = model.features(0.5, 0, None, True, 0.0, 0.0, None, 0.0)
    assert x == {"prior": 0.0, "history": 0.0, "wavered": 1.0, "no_start": 1.0}
    wide = AttendanceModel(meetup_features=True).features(0.5, 0, 0, False, 0.25, 0.5, 3.0, 10.0)
    assert {"cancel_ratio", "maybe_ratio", "activity", "fill"} <= set(wide) and wide["fill"] == 2.0
    assert math.isfinite(logit(0.0)) and math.isfinite(logit(1.0))


def test_member_stats_are_an_lru_of_packed_counts() -> None:
    stats = MemberStats(max_members=3)
    for member, attended in (("a", True), ("b", False), ("a", False), ("c", True), ("d", True)):
        stats.record(member, attended)
    assert list(stats.counts) == ["a", "c", "d"]  # b was the least recently resolved
    assert stats.get("a") == (2, 1) and stats.get("b") == (0, 0)


def test_base_rate_is_a_beta_one_one_mean() -> None:
    base = BaseRate()
    assert base.predict_one() == 0.5
    for y in (True, True, False):
        base.learn_one(y)
    assert base.predict_one() == pytest.approx(3 / 5)


# --- RSVP bookkeeping and the Redis contract ------------------------------------------------------------
def test_rsvp_transitions_update_the_counts() -> None:
    op = TurnoutPredictor()
    out, states = run(
        op,
        [
            rsvp("ann", START - 50 * H, "going"),
            rsvp("bob", START - 49 * H, "maybe"),
            rsvp("cy", START - 48 * H, "going"),
            rsvp("cy", START - 47 * H, "going"),  # the same status again: nothing changes
            rsvp("bob", START - 46 * H, "going"),  # maybe → going: wavered
            rsvp("ann", START - 45 * H, "cancelled"),
            rsvp("dee", START - 44 * H, "declined"),
        ],
    )
    m = states["c1"].meetups["m1"]
    assert m.counts == {"going": 2, "maybe": 0, "cancelled": 1, "declined": 1}
    assert set(m.probs) == {"cy", "bob"} and m.rsvps["bob"][2] is True and m.rsvps["cy"][2] is False
    assert m.rsvps["bob"][1] == START - 46 * H  # lead time counts from the last going
    last = hsets(out)[-1]
    assert (last["going"], last["maybe"], last["cancelled"], last["state"]) == (2, 0, 1, "open")


def test_redis_command_shape() -> None:
    op = TurnoutPredictor(retention_seconds=3600)
    out, _ = run(op, [rsvp("ann", START - H, "going"), rsvp("bob", START - H, "going", "m2", None, None)])
    assert len(out.commands) == 4  # one HSET + EXPIRE per touched meetup and batch
    hset, expire = out.commands[0], out.commands[1]
    assert hset[:2] == ["HSET", "pulse:meetup:c1:m1"] and expire == ["EXPIRE", "pulse:meetup:c1:m1", 3600]
    assert hset[2::2] == [
        "community", "going", "maybe", "cancelled", "predicted_turnout", "capacity", "predicted_fill",
        "attended", "walk_ins", "starts_at", "state",
    ]  # fmt: skip
    f = fields(hset)
    assert (f["community"], f["going"], f["capacity"], f["starts_at"], f["state"]) == (
        "c1",
        1,
        20,
        START,
        "open",
    )
    assert f["predicted_turnout"] == "0.5" and f["predicted_fill"] == "0.025"  # a cold model: p = 0.5
    g = fields(out.commands[2])  # no capacity, no start: the unknowns are empty strings
    assert (g["capacity"], g["predicted_fill"], g["starts_at"]) == ("", "", "")


# --- predict (freeze at the start), then learn (at the end of the check-in period) -------------------
def test_the_prediction_freezes_at_the_start() -> None:
    op = TurnoutPredictor()
    out, states = run(
        op,
        [
            rsvp("ann", START - 5 * H, "going"),
            rsvp("bob", START - 4 * H, "going"),
            tick(START),  # the community's clock reaches the start
            rsvp("cy", START + 60_000, "going"),  # after the start: counted nowhere in the forecast
            rsvp("bob", START + 120_000, "cancelled"),
        ],
        batch=1,
    )
    published = hsets(out)
    started = [f for f in published if f["state"] == "started"]
    assert started and all(f["going"] == 2 and f["predicted_turnout"] == "1.0" for f in started)
    m = states["c1"].meetups["m1"]
    assert list(m.frozen) == ["ann", "bob"] and m.probs == {}


def test_outcomes_are_scored_then_learned_when_the_check_in_period_ends() -> None:
    op = TurnoutPredictor(check_in_ms=4 * H)
    going = [f"u{i}" for i in range(10)]
    events = meetup_events("m1", START, going, came=going[:6])
    events.append(rsvp("walker", START + 2 * H, "attended"))  # checked in without saying going
    events.append(tick(START + 4 * H))  # the end
    out, states = run(op, events)
    st = states["c1"]
    assert "m1" not in st.meetups and st.labels == 10
    assert st.base.predict_one() == pytest.approx(7 / 12)
    assert st.members.get("u0") == (1, 1) and st.members.get("u9") == (1, 0)
    assert st.members.get("walker") == (0, 0)
    assert st.log_loss.get() == pytest.approx(math.log(2))  # every frozen p was the cold 0.5
    assert st.log_loss_base.get() == pytest.approx(math.log(2))
    final = hsets(out)[-1]
    assert (final["state"], final["going"], final["attended"], final["walk_ins"]) == ("ended", 10, 6, 1)
    assert {o.metric for o in out.observations} == {"turnout_log_loss", "turnout_log_loss_base"}
    assert st.model.regressor.weights != {"prior": 1.0}  # it learned


def test_the_frozen_prediction_does_not_depend_on_the_outcomes() -> None:
    op = TurnoutPredictor()
    going = [f"u{i}" for i in range(12)]
    history = meetup_events("m0", START - 72 * H, going, going[:8])  # some history to learn from
    later = START + 48 * H

    def stream(came: list[str]) -> list[Event]:
        events = history + meetup_events("m1", START, going, came) + meetup_events("m2", later, going, going)
        return sorted([*events, tick(later + 5 * H)], key=lambda e: e.ts)

    a, _ = run(op, stream(going[:2]), batch=7)
    b, _ = run(op, stream(going), batch=7)
    started_a = [f for f in hsets(a, "m1") if f["state"] != "open"]
    started_b = [f for f in hsets(b, "m1") if f["state"] != "open"]
    assert {f["predicted_turnout"] for f in started_a} == {f["predicted_turnout"] for f in started_b}
    assert len({f["predicted_turnout"] for f in started_a}) == 1  # frozen from the start to the end
    assert started_a[-1]["attended"] == 2 and started_b[-1]["attended"] == 12
    m2_a = next(f for f in hsets(a, "m2") if f["state"] == "started")
    m2_b = next(f for f in hsets(b, "m2") if f["state"] == "started")
    assert float(m2_a["predicted_turnout"]) < float(m2_b["predicted_turnout"])  # learned from m1


def test_a_meetup_without_any_check_in_is_not_learned() -> None:
    op = TurnoutPredictor()
    going = [f"u{i}" for i in range(6)]
    _, states = run(op, [*meetup_events("m1", START, going, came=[]), tick(START + 5 * H)])
    assert states["c1"].labels == 0 and "m1" not in states["c1"].meetups
    _, states = run(op, [*meetup_events("m1", START, going[:4], came=[]), tick(START + 5 * H)])
    assert states["c1"].labels == 4  # a small meetup where nobody came is believable


def test_a_check_in_before_the_clock_reaches_the_start_freezes_the_meetup() -> None:
    op = TurnoutPredictor()
    _, states = run(op, [rsvp("ann", START - H, "going"), rsvp("ann", START - 600_000, "attended")])
    m = states["c1"].meetups["m1"]
    assert m.frozen is not None and "ann" in m.checked_in


# --- bounded memory --------------------------------------------------------------------------------------
def test_rsvps_for_an_ended_meetup_are_ignored() -> None:
    op = TurnoutPredictor(check_in_ms=4 * H)
    _, states = run(op, [tick(START + 5 * H), rsvp("late", START + 5 * H + 1, "attended")])
    assert states["c1"].meetups == {} and states["c1"].ignored == 1


def test_meetups_and_rsvps_per_meetup_are_capped() -> None:
    op = TurnoutPredictor(max_meetups=3, max_rsvps=5)
    events: list[Event] = [rsvp("ann", START - 100 * H + k, "going", f"m{k}") for k in range(5)]
    events += [rsvp(f"u{i}", START - 50 * H + i, "going", "m4") for i in range(8)]
    _, states = run(op, events)
    st = states["c1"]
    assert list(st.meetups) == ["m2", "m3", "m4"]  # the least recently updated were dropped
    assert len(st.meetups["m4"].rsvps) == 5 and st.ignored == 4


def test_a_meetup_without_a_start_is_dropped_when_stale() -> None:
    op = TurnoutPredictor(stale_ms=10 * H)
    _, states = run(op, [rsvp("ann", START, "going", starts_at=None), tick(START + 9 * H)])
    assert "m1" in states["c1"].meetups
    _, states = run(op, [rsvp("ann", START, "going", starts_at=None), tick(START + 10 * H)])
    assert states["c1"].meetups == {}


# --- snapshots ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stream() -> list[Event]:
    return synthetic_events(days=10, communities=2, seed=5)


def test_snapshot_mid_stream_continues_identically(stream: list[Event]) -> None:
    whole = assert_continues_after_snapshot(TurnoutPredictor, stream)
    assert sum(len(o.observations) for o in whole) > 0  # outcomes were learned in both halves


def test_snapshot_restored_in_another_process(stream: list[Event], tmp_path: Path) -> None:
    """Another worker (another hash seed: set iteration order differs) continues identically."""
    assert_continues_in_another_process(TurnoutPredictor, stream, tmp_path, "4242")


def test_learning_does_not_depend_on_batch_boundaries(stream: list[Event]) -> None:
    def ended(batch: int) -> tuple[dict, list[float]]:
        out, states = run(TurnoutPredictor(), stream, batch)
        hsets = [c for c in out.commands if c[0] == "HSET"]
        final = {c[1]: fields(c) for c in hsets if fields(c).get("state") == "ended"}
        return final, [states[c].log_loss.get() for c in sorted(states)]

    assert ended(97) == ended(1_000)


# --- quality smoke test (the full benchmark: python -m studies.evaluate_models) ------------------
def test_beats_the_base_rate_on_a_stream_with_member_propensities() -> None:
    report = evaluate(synthetic_events(days=14, communities=4, seed=5), warmup_days=2)["turnout"]
    assert report["labels"] > 500
    assert report["log_loss"] < report["log_loss_base_rate"]
    assert report["mean_relative_error"] < 0.3
