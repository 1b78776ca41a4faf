"""Operations KPIs: the published window hashes equal an independent recompute, cohorts close,
snapshots change nothing, and the member filter never forgets anyone."""

from __future__ import annotations

import pickle
import random
import statistics
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import Event, Post, Reaction, Rsvp
from streams.operators.base import Output
from streams.operators.kpis import KpiState, OperationsKpis, SeenFilter, stable_hash
from streams.operators.runner import run_locally
from streams.sinks.memory import MemoryStore

H = 3_600_000
DAY = 24 * H
T0 = 1_767_571_200_000  # Monday 2026-01-05 00:00 UTC


def scripted_stream(seed: int, days: int = 3, communities: int = 2) -> list[Event]:
    """Posts, replies (some by the author, some too late), needs and resolutions, reactions,
    meetups with changing RSVPs, check-ins and walk-ins, members who come back or not."""
    rng = random.Random(seed)
    events: list[Event] = []
    n = 0
    for ci in range(communities):
        c = f"c{ci}"
        members = [f"{c}-m{i}" for i in range(40)]
        posts: list[Post] = []
        needs: list[Post] = []
        for _ in range(days * 60):
            n += 1
            ts = T0 + rng.randrange(days * DAY)
            member = rng.choice(members[: 10 + int(30 * (ts - T0) / (days * DAY))])  # newcomers over time
            r = rng.random()
            if r < 0.3 or not posts:
                kind = rng.choice(("post", "post", "need", "offer"))
                p = Post(f"e{n}", c, member, ts, f"{c}-p{n}", "text", kind, (), None)
                posts.append(p)
                if kind == "need":
                    needs.append(p)
                events.append(p)
            elif r < 0.55:
                target = rng.choice(posts)
                delay = rng.choice((60_000, 600_000, 3 * H, 20 * H, 30 * H))  # 30 h: too late
                author = target.member if rng.random() < 0.15 else member  # some self-replies
                events.append(
                    Post(f"e{n}", c, author, target.ts + delay, f"{c}-p{n}", "re", "post", (), target.post)
                )
            elif r < 0.65 and needs:
                need = rng.choice(needs)
                delay = rng.choice((H, DAY, 3 * DAY, 8 * DAY))  # 8 days: too late
                events.append(
                    Post(
                        f"e{n}",
                        c,
                        need.member,
                        need.ts + delay,
                        f"{c}-p{n}",
                        "done",
                        "resolved",
                        (),
                        need.post,
                    )
                )
            elif r < 0.8:
                events.append(Reaction(f"e{n}", c, member, ts, rng.choice(posts).post, "like"))
        for k in range(days):
            starts = T0 + k * DAY + rng.randrange(8, 20) * H
            capacity = rng.choice((None, 10, 25))
            meetup = f"{c}-meetup{k}"
            for j, member in enumerate(rng.sample(members, 15)):
                n += 1
                ts = starts - rng.randrange(1, 48) * H
                status = rng.choice(("going", "going", "maybe", "declined"))
                events.append(Rsvp(f"e{n}", c, member, ts, meetup, status, (), starts, capacity))
                if status == "going" and rng.random() < 0.2:
                    events.append(
                        Rsvp(f"e{n}c", c, member, ts + H // 2, meetup, "cancelled", (), starts, capacity)
                    )
                if rng.random() < 0.6 or j == 0:
                    late = rng.choice((10 * 60_000, H, 5 * H))  # 5 h: after the check-in period
                    events.append(
                        Rsvp(f"e{n}a", c, member, starts + late, meetup, "attended", (), starts, capacity)
                    )
    events.sort(key=lambda e: (e.ts, e.id))
    return [e for e in events if e.ts < T0 + (days + 9) * DAY]


def recompute(events: list[Event], op: OperationsKpis) -> dict[tuple[str, int], dict[str, Any]]:
    """The same KPIs, computed offline from the whole event list, the plain way."""
    size = op.size
    win = lambda ts: ts // 1000 // size * size  # noqa: E731
    by: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: defaultdict(int, delays=[])  # type: ignore[arg-type]
    )
    # Replies and needs.
    for ev in events:
        if not isinstance(ev, Post):
            continue
        w = by[(ev.community, win(ev.ts))]
        if ev.reply_to is None and ev.kind != "resolved":
            w["posts"] += 1
            first = next(
                (
                    r for r in events
                    if isinstance(r, Post) and r.community == ev.community and r.reply_to == ev.post
                    and r.member != ev.member and 0 <= r.ts - ev.ts <= op.reply_ms
                ),
                None,
            )  # fmt: skip
            if first is not None:
                w["replied"] += 1
                w["delays"].append((first.ts - ev.ts) // 1000)
        if ev.kind == "need":
            w["needs"] += 1
            if any(
                isinstance(r, Post) and r.community == ev.community and r.kind == "resolved"
                and r.reply_to == ev.post and 0 <= r.ts - ev.ts <= op.match_ms
                for r in events
            ):  # fmt: skip
                w["resolved"] += 1
    # Meetups, in the window of their start, RSVPs up to the end of the check-in period.
    meetups: dict[tuple[str, str], list[Rsvp]] = defaultdict(list)
    for ev in events:
        if isinstance(ev, Rsvp):
            meetups[(ev.community, ev.meetup)].append(ev)
    for (community, _), rsvps in meetups.items():
        starts = rsvps[0].starts_at
        assert starts is not None
        valid = [r for r in rsvps if r.ts < starts + op.check_in_ms]
        capacity = [r.capacity for r in valid if r.capacity is not None]
        latest: dict[str, str] = {}
        attended = set()
        for r in valid:
            if r.status == "attended":
                attended.add(r.member)
            else:
                latest[r.member] = r.status
        going = {m for m, s in latest.items() if s == "going"}
        w = by[(community, win(starts))]
        w["meetups"] += 1
        if capacity and capacity[-1]:
            w["capacity"] += capacity[-1]
            w["attended"] += len(attended)
        w["going"] += len(going)
        w["no_shows"] += len(going - attended)
    # Newcomers and their return.
    first_seen: dict[tuple[str, str], int] = {}
    returned: set[tuple[str, str]] = set()
    for ev in events:
        key = (ev.community, ev.member)
        if key not in first_seen:
            first_seen[key] = ev.ts
            by[(ev.community, win(ev.ts))]["new"] += 1
        elif (
            key not in returned
            and first_seen[key] + op.return_gap_ms <= ev.ts <= first_seen[key] + op.return_ms
        ):
            returned.add(key)
            by[(ev.community, win(first_seen[key]))]["returned"] += 1

    def rate(a: int, b: int) -> str:
        return repr(round(a / b, 4)) if b else ""

    expected: dict[tuple[str, int], dict[str, Any]] = {}
    for window, w in by.items():
        if not any(v for k, v in w.items() if k != "delays"):
            continue  # nothing started in this window: the operator writes no hash
        delays = w["delays"]
        expected[window] = {
            "posts": w["posts"], "replied": w["replied"], "reply_rate": rate(w["replied"], w["posts"]),
            "median_first_reply_s": repr(round(float(statistics.median(delays)), 1)) if delays else "",
            "needs_opened": w["needs"], "needs_resolved": w["resolved"],
            "match_success_rate": rate(w["resolved"], w["needs"]),
            "meetups": w["meetups"], "capacity": w["capacity"], "attended": w["attended"],
            "fill_rate": rate(w["attended"], w["capacity"]),
            "going": w["going"], "no_shows": w["no_shows"], "no_show_rate": rate(w["no_shows"], w["going"]),
            "new_members": w["new"], "returned": w["returned"], "return_rate": rate(w["returned"], w["new"]),
            "final": 1,
        }  # fmt: skip
    return expected


def run(
    op: OperationsKpis, events: list[Event], batch: int, snapshot: bool = False
) -> tuple[list[Output], dict[str, KpiState]]:
    return run_locally(op, events, batch, snapshot)


def flush(events: list[Event]) -> list[Event]:
    """One event per community far in the future: every cohort of the stream closes."""
    later = max(e.ts for e in events) + 10 * DAY
    return [
        Reaction(f"flush-{c}", c, "flusher", later, "none", "like")
        for c in sorted({e.community for e in events})
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_final_hashes_equal_an_independent_recompute(seed):
    op = OperationsKpis()
    events = scripted_stream(seed)
    outputs, states = run(op, events + flush(events), batch=97)
    redis = MemoryStore()
    for out in outputs:
        redis.apply(out.commands)
    expected = recompute(events, op)
    assert expected
    for (community, start), fields in expected.items():
        got = redis.hashes[f"pulse:kpi:{community}:{op.size}s:{start}"]
        assert got == fields, (community, start)
    # Every window of the stream closed and left the state; nothing is left waiting.
    for state in states.values():
        assert all(start > max(e.ts for e in events) // 1000 for start in state.windows)
        assert not state.meetups and not state.open_needs and not state.open_posts


def test_windows_are_provisional_until_their_cohorts_close():
    op = OperationsKpis()
    need = Post("e1", "c", "ann", T0 + 60_000, "p1", "need a lawyer", "need", (), None)
    out, states = run(
        op, [need, Post("e2", "c", "bob", T0 + 3 * DAY, "p2", "hi", "post", (), None)], batch=10
    )
    key = f"pulse:kpi:c:3600s:{T0 // 1000}"
    redis = MemoryStore()
    redis.apply(out[0].commands)
    assert redis.hashes[key]["match_success_rate"] == "0.0" and redis.hashes[key]["final"] == 0
    late = Post("e3", "c", "ann", T0 + 6 * DAY, "p3", "solved", "resolved", (), "p1")
    redis.apply(op.apply_batch(states, [late]).commands)
    assert redis.hashes[key]["match_success_rate"] == "1.0"  # the cohort of the need's window
    redis.apply(op.apply_batch(states, flush([late])).commands)
    assert redis.hashes[key]["final"] == 1 and T0 // 1000 not in states["c"].windows


def test_batching_and_snapshots_change_nothing():
    op = OperationsKpis()
    events = scripted_stream(4, days=2)
    events += flush(events)
    ref, _ = run(op, events, batch=len(events))
    snap, _ = run(op, events, batch=53, snapshot=True)
    plain, _ = run(op, events, batch=53)
    assert snap == plain  # the snapshot contract: restore mid-stream, same outputs
    final = lambda outs: {  # noqa: E731
        c[1]: c for o in outs for c in o.commands if c[0] == "HSET" and c[-1] == 1
    }
    assert final(ref) == final(plain)  # final numbers do not depend on batching


def test_observations_are_per_community_and_bounded():
    op = OperationsKpis(observation_windows=3)
    events = scripted_stream(5, days=2)
    outputs, states = run(op, events + flush(events), batch=200)
    obs = [o for out in outputs for o in out.observations]
    assert obs and {o.community for o in obs} <= {"c0", "c1"}
    assert {o.metric for o in obs} <= {
        "kpi_reply_rate", "kpi_match_success_rate", "kpi_fill_rate", "kpi_no_show_rate",
        "kpi_return_rate", "kpi_median_first_reply_seconds",
    }  # fmt: skip
    assert all(len(st.final) <= 3 for st in states.values())


def test_open_items_are_bounded():
    op = OperationsKpis(max_open_posts=50, max_open_needs=20, max_newcomers=30)
    events: list[Event] = [
        Post(f"e{i}", "c", f"m{i}", T0 + i * 1000, f"p{i}", "x" * 50, "need", (), None) for i in range(500)
    ]
    _, states = run(op, events, batch=100)
    s = states["c"]
    assert (len(s.open_posts), len(s.open_needs), len(s.newcomers)) == (50, 20, 30)
    assert len(pickle.dumps(s, protocol=5)) < 5_000  # hashes, not ids; the member filter ~1.2 bytes each


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=400, unique=True))
def test_seen_filter_never_forgets(members):
    seen = SeenFilter(capacity=16)
    hashes = [stable_hash(m) for m in members]
    for h in hashes:
        seen.add(h)
    assert all(not seen.add(h) for h in hashes)


def test_seen_filter_false_positive_rate():
    seen = SeenFilter(capacity=64)
    for i in range(20_000):
        seen.add(stable_hash(f"member-{i}"))
    fresh = sum(seen.add(stable_hash(f"newcomer-{i}")) for i in range(5_000))
    assert fresh / 5_000 > 0.975  # under the documented 2 %, with nine stages
    assert sum(len(s) for s in seen.stages) < 3.5 * 20_000  # bytes
