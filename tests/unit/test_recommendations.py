"""Meetup recommendations: the river reco wrapper (bounded, exact snapshots), the operator's
catalog, ranking and Redis commands, and the snapshot contract."""

from __future__ import annotations

import math
import pickle

import pytest

from online_models.recommender import MeetupAffinity
from schemas.events import Post, Reaction, Rsvp
from streams.operators.base import Output
from streams.operators.recommendations import MeetupRecommender, RecoConfig, recs_key
from tests import operator_runs
from tests.operator_runs import replay, run_batch
from tests.workers import digests_under_hash_seeds

T0 = 1_767_225_600_000
HOUR = 3_600_000
DAY = 86_400_000


def rsvp(
    eid: str, member: str, meetup: str, status: str, ts: int, tags=("meetup",), starts=T0 + DAY, cap=None
):
    return Rsvp(eid, "c", member, ts, meetup, status, tuple(tags), starts, cap)


# -- the wrapper -------------------------------------------------------------------------------------


def test_affinity_learns_topics_and_predicting_never_grows_the_model():
    aff = MeetupAffinity(seed=3)
    for i in range(40):  # u0 and u1 join AI meetups, u2 and u3 hiring ones
        aff.learn_one(f"u{i % 2}", f"ai{i % 3}", 1.0, ("meetup", "ai"))
        aff.learn_one(f"u{i % 2}", f"hr{i % 3}", 0.0, ("meetup", "hiring"))
        aff.learn_one(f"u{2 + i % 2}", f"hr{i % 3}", 1.0, ("meetup", "hiring"))
    sizes = (len(aff.model.u_latents), len(aff.model.i_latents), len(aff.model.u_biases), len(aff.profiles))
    new_ai = aff.predict_one("u1", "brand-new", ("meetup", "ai"))
    new_hr = aff.predict_one("u1", "brand-new-2", ("meetup", "hiring"))
    aff.predict_one("stranger", "unknown", ("x",))
    assert new_ai > new_hr  # a meetup nobody answered yet, ranked by the member's tag profile
    assert sizes == (
        len(aff.model.u_latents),
        len(aff.model.i_latents),
        len(aff.model.u_biases),
        len(aff.profiles),
    )
    assert aff.content("stranger", ("ai",)) == 0.0


def test_affinity_memory_is_bounded_by_lru():
    aff = MeetupAffinity(max_users=10, max_items=20, max_profile_tags=3)
    for i in range(500):
        aff.learn_one(f"u{i}", f"m{i}", 1.0, (f"t{i % 7}", f"s{i % 5}"))
        aff.learn_tags(f"u{i % 3}", (f"r{i}",), 1.0)
    m = aff.model
    assert len(m.u_latents) <= 10 and len(m.u_biases) <= 10 and len(aff.profiles) <= 10
    assert len(m.i_latents) <= 20 and len(m.i_biases) <= 20 and len(aff.tag_mass) <= 20
    assert all(len(p) <= 3 for p in aff.profiles.values())
    aff.forget_item("m499")
    assert "m:m499" not in m.i_latents


def test_affinity_snapshot_is_exact_and_continues_identically():
    a = MeetupAffinity(tag_weight=1.0, seed=5)
    for i in range(300):
        a.learn_one(f"u{i % 17}", f"m{i % 11}", float(i % 3 == 0), (f"t{i % 4}",))
    b = pickle.loads(pickle.dumps(a, protocol=5))
    for i in range(300):  # both continue, new users and items included (the RNG state moved along)
        for model in (a, b):
            model.learn_one(f"v{i % 23}", f"m{i % 13}", float(i % 2), (f"t{i % 5}",))
    for u in ("u1", "v3", "v22", "nobody"):
        for item in ("m1", "m12", "zz"):
            assert a.predict_one(u, item, ("t1", "t4")) == b.predict_one(u, item, ("t1", "t4"))


def test_batch_scoring_equals_one_at_a_time():
    aff = MeetupAffinity(tag_weight=1.0)
    for i in range(300):
        aff.learn_one(f"u{i % 5}", f"m{i % 9}", float(i % 3 == 0), (f"t{i % 4}", "meetup"))
    meetups = [("m1", ("t1", "meetup")), ("m2", ("t2",)), ("new", ()), ("m3", ("zz", "t3"))]
    biases, vectors = aff.item_vectors(meetups)
    for user in ("u1", "stranger"):
        batch = aff.score_many(user, biases, vectors, [tags for _, tags in meetups])
        single = [aff.predict_one(user, m, tags) for m, tags in meetups]
        assert batch.tolist() == pytest.approx(single, abs=1e-12)


def test_compact_snapshot_is_smaller_than_pickling_river_directly():
    a = MeetupAffinity()
    for i in range(3_000):
        a.learn_one(f"u{i % 500}", f"m{i % 40}", float(i % 2))
    assert len(pickle.dumps(a, protocol=5)) < len(pickle.dumps(a.model, protocol=5))


# -- the operator ----------------------------------------------------------------------------------


def test_from_settings_reads_optional_fields():
    from streams.config import Settings

    assert MeetupRecommender.from_settings(Settings(_env_file=None)).config == RecoConfig()
    assert MeetupRecommender.from_settings(Settings(_env_file=None, reco_top_k=3)).config.k == 3


def test_recommends_upcoming_unanswered_meetups_that_are_not_full():
    op = MeetupRecommender()
    out, states = run_batch(
        op,
        [
            rsvp("e1", "bob", "past", "going", T0 - 2 * HOUR, starts=T0 - HOUR),  # already started
            rsvp("e2", "bob", "full", "going", T0, starts=T0 + DAY, cap=1),  # bob takes the only seat
            rsvp("e3", "bob", "open1", "going", T0, starts=T0 + DAY),
            rsvp("e4", "cat", "open2", "maybe", T0, starts=T0 + 2 * DAY),
            rsvp("e5", "ann", "open1", "declined", T0 + 1),
        ],
    )
    assert [m for m, _ in op.recommend(states["c"], "ann")] == ["open2"]  # answered, full, past: left out
    recs = {c[1]: c for c in out.commands if c[0] == "ZADD"}
    assert recs[recs_key("c", "ann")][3::2] == ["open2"]
    assert set(recs[recs_key("c", "bob")][3::2]) == {"open2"}


def test_redis_command_shapes_and_expiry():
    op = MeetupRecommender(RecoConfig(recs_ttl_seconds=3600 * 24))
    out, _ = run_batch(
        op,
        [
            rsvp("e1", "bob", "m1", "going", T0, starts=T0 + 5 * HOUR),
            rsvp("e2", "bob", "m2", "going", T0, starts=T0 + 3 * DAY),
            rsvp("e3", "ann", "m3", "going", T0 + 1_000, starts=T0 + 2 * HOUR),
        ],
    )
    ann = [c for c in out.commands if c[1] == recs_key("c", "ann")]
    assert [c[0] for c in ann] == ["DEL", "ZADD", "EXPIRE"]
    zadd = ann[1]
    assert sorted(zadd[3::2]) == ["m1", "m2"]
    assert all(isinstance(s, float) for s in zadd[2::2]) and zadd[2::2] == sorted(zadd[2::2], reverse=True)
    assert ann[2] == ["EXPIRE", recs_key("c", "ann"), 24 * 3600]  # capped: m2 starts in 3 days
    cat, _ = run_batch(
        MeetupRecommender(),
        [
            rsvp("e1", "bob", "m1", "going", T0, starts=T0 + 5 * HOUR),
            rsvp("e2", "cat", "m2", "going", T0 + 2_000, starts=T0 + 3 * DAY),
        ],
    )
    expire = next(c for c in cat.commands if c[0] == "EXPIRE" and c[1] == recs_key("c", "cat"))
    assert expire[2] == math.ceil((5 * HOUR - 2_000) / 1000)  # until its only meetup starts


def test_members_without_candidates_get_their_key_deleted():
    op = MeetupRecommender()
    out, _ = run_batch(op, [rsvp("e1", "bob", "m1", "going", T0)])
    assert out.commands == [["DEL", recs_key("c", "bob")]]


def test_reactions_to_tagged_posts_shape_recommendations():
    op = MeetupRecommender()
    events = [
        rsvp("e1", "x", "ai-night", "going", T0, tags=("meetup", "ai", "llm")),
        rsvp("e2", "y", "hiring-fair", "going", T0, tags=("meetup", "hiring", "talent")),
        Post("p1", "c", "z", T0 + 1, "post1", "LLM evals", "post", ("ai", "llm"), None),
        *[Reaction(f"r{i}", "c", "ann", T0 + 2 + i, "post1", "insightful") for i in range(3)],
    ]
    out, states = run_batch(op, events)
    assert op.recommend(states["c"], "ann")[0][0] == "ai-night"
    assert any(c[1] == recs_key("c", "ann") for c in out.commands)  # a reaction makes a member active
    unknown = Reaction("r9", "c", "bob", T0 + 10, "no-such-post", "like")
    assert run_batch(op, [unknown], states)[0].commands == []


def test_meetups_retire_after_check_ins_end():
    op = MeetupRecommender(RecoConfig(keep_after_start_ms=HOUR))
    _, states = run_batch(op, [rsvp("e1", "bob", "m1", "going", T0, starts=T0 + HOUR)])
    assert "m:m1" in states["c"].model.model.i_latents
    run_batch(op, [rsvp("e2", "bob", "m1", "attended", T0 + 90 * 60_000, starts=T0 + HOUR)], states)
    assert "m1" in states["c"].meetups  # check-ins still count
    run_batch(op, [rsvp("e3", "bob", "m2", "going", T0 + 3 * HOUR, starts=T0 + DAY)], states)
    assert "m1" not in states["c"].meetups and "m:m1" not in states["c"].model.model.i_latents


def test_going_counts_follow_status_changes():
    op = MeetupRecommender()
    _, states = run_batch(
        op,
        [
            rsvp("e1", "bob", "m1", "going", T0),
            rsvp("e2", "ann", "m1", "going", T0),
            rsvp("e3", "bob", "m1", "cancelled", T0 + 1),
            rsvp("e4", "cat", "m1", "maybe", T0 + 2),
        ],
    )
    assert states["c"].meetups["m1"].going == 1


# -- snapshot contract and quality ----------------------------------------------------------------------


def simulated_events() -> list:
    return operator_runs.simulated_events(seed=6, events=6000, communities=4, members=200)


def labeled_events() -> list:
    from streams.labelled.matching import reco_stream

    return reco_stream(seed=2, communities=2, days=6, members=80).events


@pytest.mark.parametrize("source", [simulated_events, labeled_events])
@pytest.mark.parametrize("tag_weight", [0.0, 1.0])
def test_snapshot_mid_stream_then_continue_gives_identical_outputs(source, tag_weight):
    events = source()
    config = RecoConfig(tag_weight=tag_weight, max_members=40, max_items=30, max_meetups=8, max_posts=50)
    interrupted = replay(lambda: MeetupRecommender(config), events, 113, snapshot_every_batch=True)
    uninterrupted = replay(lambda: MeetupRecommender(config), events, 113, snapshot_every_batch=False)
    assert interrupted == uninterrupted  # what each key holds is in the snapshot too
    assert redis_after_each(interrupted) == redis_after_each(uninterrupted)
    assert sum(c[0] == "ZADD" for o in uninterrupted for c in o.commands) > 20


def redis_after_each(outputs: list[Output]) -> list[dict]:
    """The rankings the recs keys hold after each batch (DEL and ZADD applied as Redis would)."""
    store: dict = {}
    after = []
    for out in outputs:
        for c in out.commands:
            if c[0] == "DEL":
                store.pop(c[1], None)
            elif c[0] == "ZADD":
                store[c[1]] = c[3::2]  # the ranking (scores: those of the batch that last changed it)
        after.append(dict(store))
    return after


def test_outputs_do_not_depend_on_the_process_hash_seed():
    """A restored state may continue in another process: set and dict orders must not leak into outputs."""
    digests = digests_under_hash_seeds(
        "streams.operators.recommendations:MeetupRecommender",
        "streams.labelled.matching:reco_stream(seed=4, communities=2, days=5, members=60)",
    )
    assert len(digests) == 1, digests


def test_beats_popularity_on_members_with_latent_interests():
    from streams.labelled.matching import reco_stream, run_reco

    result = run_reco(reco_stream(seed=9, communities=1, days=12, members=150), RecoConfig())
    assert result["tests"] > 200
    assert result["model"] > result["popularity"] + 0.1, result


# -- issue 14: cost and Redis volume -------------------------------------------------------------------


def test_the_fast_sgd_step_is_rivers_biased_mf_bit_for_bit():
    from river import optim, reco

    fast = MeetupAffinity(seed=3)
    slow = reco.BiasedMF(
        n_factors=8, bias_optimizer=optim.SGD(0.05), latent_optimizer=optim.SGD(0.05), l2_bias=0.01,
        l2_latent=0.01, latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=3),
        clip_gradient=5.0, seed=3,
    )  # fmt: skip
    data = [(f"u{i % 7}", f"m{i % 5}", float(i % 3 == 0)) for i in range(300)] + [
        ("u1", "m9", 40.0)
    ]  # clipped
    for user, item, y in data:
        fast.learn_one(user, item, y)
        slow.learn_one(user, f"m:{item}", y)
    m = fast.model
    assert m.global_mean.get() == slow.global_mean.get()
    assert dict(m.u_biases) == dict(slow.u_biases) and dict(m.i_biases) == dict(slow.i_biases)
    for mine, theirs in ((m.u_latents, slow.u_latents), (m.i_latents, slow.i_latents)):
        assert list(mine) == list(theirs)
        assert all((mine[k] == theirs[k]).all() for k in mine)


def test_an_unchanged_ranking_is_not_rewritten_not_even_after_a_reload():
    op = MeetupRecommender()
    first = [
        rsvp("e1", "ann", "m1", "going", T0, tags=("ai",), starts=T0 + DAY),
        rsvp("e2", "bob", "m2", "going", T0, tags=("ai",), starts=T0 + 2 * DAY),
        rsvp("e3", "cat", "m3", "going", T0, tags=("web",), starts=T0 + 3 * DAY),
    ]
    out, states = run_batch(op, first)
    assert [c[0] for c in out.commands if c[1] == recs_key("c", "ann")] == ["DEL", "ZADD", "EXPIRE"]
    ranking = next(c[3::2] for c in out.commands if c[0] == "ZADD" and c[1] == recs_key("c", "ann"))
    # ann is active again and her ranking is the same: nothing to write for her
    out, states = run_batch(
        op, [rsvp("e4", "ann", "m1", "going", T0 + 1000, tags=("ai",), starts=T0 + DAY)], states
    )
    assert not [c for c in out.commands if c[1] == recs_key("c", "ann")]
    # a restored state knows what the key holds (the snapshot is committed with it): no write
    states = {c: pickle.loads(pickle.dumps(s, protocol=5)) for c, s in states.items()}
    out, states = run_batch(
        op, [rsvp("e5", "ann", "m1", "going", T0 + 2000, tags=("ai",), starts=T0 + DAY)], states
    )
    assert not [c for c in out.commands if c[1] == recs_key("c", "ann")]
    # once m2 has started it leaves her ranking: written
    late = rsvp("e9", "ann", "m9", "maybe", T0 + 2 * DAY + 1, tags=("x",), starts=T0 + 9 * DAY)
    out, states = run_batch(op, [late], states)
    zadd = [c for c in out.commands if c[0] == "ZADD" and c[1] == recs_key("c", "ann")]
    assert zadd and zadd[0][3::2] != ranking
    # a member with nothing to recommend (every meetup answered): one DEL, then nothing
    out, states = run_batch(
        op, [rsvp("e6", "dan", "m1", "declined", T0 + 3000, tags=("ai",), starts=T0 + DAY)], states
    )
    states["c"].meetups["m2"].responders["dan"] = "declined"
    states["c"].meetups["m3"].responders["dan"] = "declined"
    states["c"].meetups["m9"].responders["dan"] = "declined"
    out, states = run_batch(
        op, [rsvp("e7", "dan", "m1", "declined", T0 + 4000, tags=("ai",), starts=T0 + DAY)], states
    )
    assert [c for c in out.commands if c[1] == recs_key("c", "dan")] == [["DEL", recs_key("c", "dan")]]
    out, states = run_batch(
        op, [rsvp("e8", "dan", "m1", "declined", T0 + 5000, tags=("ai",), starts=T0 + DAY)], states
    )
    assert not [c for c in out.commands if c[1] == recs_key("c", "dan")]
