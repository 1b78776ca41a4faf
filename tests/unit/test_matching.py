"""Live matching: bilingual terms, the scorer, the inverted index, the top-k lists and their Redis
commands, closing (resolved, expired, evicted) and the snapshot contract."""

from __future__ import annotations

import math
import pickle

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from online_models.text_features import OnlineIDF, extract_terms, normalize_tag, tokenize
from schemas.events import Post, Reaction, Rsvp
from streams import keys
from streams.operators.matching import MatchConfig, MatchMaker, MatchState, matches_key
from streams.sinks.memory import MemoryStore
from tests import operator_runs
from tests.operator_runs import replay, run_batch
from tests.workers import digests_under_hash_seeds

T0 = 1_767_225_600_000
MIN = 60_000
DAY = 86_400_000


def post(pid: str, member: str, kind: str, text: str, tags: tuple[str, ...] = (), ts: int = T0, **kw) -> Post:
    return Post(
        f"e.{pid}.{ts}", kw.get("community", "c"), member, ts, pid, text, kind, tags, kw.get("reply_to")
    )


def apply_commands(store: MemoryStore, commands: list[list]) -> None:
    """Check the shape of each of matching's commands, then apply it to the in-memory store."""
    for cmd in commands:
        name, key, *args = cmd
        assert name in ("DEL", "ZADD", "ZREM", "ZREMRANGEBYSCORE", "EXPIRE"), f"unexpected command {cmd}"
        if name == "ZADD":
            assert args and len(args) % 2 == 0, cmd
            kind = int if key.count(":") == 2 else float  # the index holds integer deadlines (ms)
            pairs = zip(args[::2], args[1::2], strict=True)
            assert all(isinstance(sc, kind) and isinstance(m, str) for sc, m in pairs), cmd
        elif name == "ZREMRANGEBYSCORE":
            assert args[0] == "-inf", cmd
        elif name == "EXPIRE":
            assert key in store.zsets, f"EXPIRE on a missing key: {cmd}"
            assert isinstance(args[0], int) and args[0] >= 1, cmd
        store.apply([cmd])


# -- text features ---------------------------------------------------------------------------------


def test_english_terms_drop_stop_words_and_request_phrasing_and_keep_tech_names():
    assert extract_terms("Looking for someone who knows Next.js and C++, happy to pay!") == [
        "next.js", "c++", "pay",
    ]  # fmt: skip
    assert tokenize("investors investors companies") == ["investor", "investor", "company"]


def test_chinese_terms_are_bigrams_split_at_stop_words_and_glossary_words_plus_bridges():
    assert extract_terms("我们需要一个前端工程师") == ["frontend", "engineer", "前端", "工程师"]
    # Stop words never form bigrams; without the glossary every bigram of the rest is a term.
    assert extract_terms("我们需要一个前端工程师", glossary=False) == ["前端", "端工", "工程", "程师"]
    assert extract_terms("寻找通义千问的微调专家") == ["fine-tuning", "通义", "义千", "千问", "微调", "专家"]


def test_jieba_mode_segments_words():
    terms = extract_terms("招聘前端工程师，熟悉React", chinese="jieba", glossary=False)
    assert terms == ["react", "招聘", "前端", "工程师", "熟悉"]


def test_edge_texts_do_not_break_tokenisation():
    for text in ("", "🚀" * 40, "中" * 10_000, "a" * 10_000, "NUL \x00 here", "\u202eevil"):
        assert len(extract_terms(text)) <= 2


def test_normalize_tag():
    assert normalize_tag("#Open Source") == "open-source"


def test_online_idf_is_bounded_and_forgets():
    idf = OnlineIDF(max_terms=100, halve_at=1_000)
    for i in range(4_900):
        idf.learn_one([f"t{i}", "common"])
    assert len(idf.df) <= 100
    assert "common" in idf.df  # frequent terms survive pruning
    assert idf.n < 1_000  # halved, so recent documents weigh more
    assert idf.idf("common") < idf.idf("t4899") < idf.idf("never seen")


# -- scorer --------------------------------------------------------------------------------------


def test_from_settings_reads_the_typed_knobs():
    from streams.config import Settings

    assert MatchMaker.from_settings(Settings(_env_file=None)).config == MatchConfig()
    custom = Settings(_env_file=None, match_ttl_seconds=3600, match_top_k=5, match_max_open_posts=100)
    assert MatchMaker.from_settings(custom).config == MatchConfig(ttl_ms=3_600_000, k=5, max_open_posts=100)


def test_need_meets_offer_in_chinese_and_english_and_reasons_are_reported():
    out, _ = run_batch(
        MatchMaker(),
        [
            post("n1", "ann", "need", "招聘前端工程师，需要React经验", ("hiring", "frontend")),
            post("o1", "bob", "offer", "资深前端工程师可接兼职，熟悉React", ("frontend", "offer"), T0 + MIN),
            post(
                "o2",
                "cat",
                "offer",
                "Senior frontend engineer available for freelance React work",
                ("frontend",),
                T0 + 2 * MIN,
            ),
            post("o3", "dan", "offer", "Free GPU credits for AI startups", ("ai",), T0 + 3 * MIN),
        ],
    )
    pairs = {(m.value["need"], m.value["offer"]) for m in out.messages}
    assert pairs == {("n1", "o1"), ("n1", "o2")}  # the GPU offer shares nothing with the need
    first = out.messages[0].value
    assert set(first) == {
        "need",
        "offer",
        "need_member",
        "offer_member",
        "community",
        "score",
        "reasons",
        "ts",
    }
    assert first["reasons"]["shared_tags"] == ["frontend"]  # the kind tag "offer" is not a reason
    assert "react" in first["reasons"]["matched_terms"] and "前端" in first["reasons"]["matched_terms"]
    assert (first["need_member"], first["offer_member"], first["community"]) == ("ann", "bob", "c")
    assert 0.0 < first["score"] <= 1.0
    assert out.messages[0].topic == "match-candidates" and out.messages[0].key == "c"
    orjson.dumps(first)  # what the engine does with it


def test_a_member_is_never_matched_with_themself():
    op = MatchMaker()
    out, states = run_batch(
        op,
        [
            post("n1", "ann", "need", "Looking for a React frontend engineer", ("frontend",)),
            post("o1", "ann", "offer", "Senior React frontend engineer available", ("frontend",), T0 + MIN),
            post(
                "o2", "bob", "offer", "Senior React frontend engineer available", ("frontend",), T0 + 2 * MIN
            ),
        ],
    )
    assert [(m.value["need"], m.value["offer"]) for m in out.messages] == [("n1", "o2")]
    posts = states["c"].posts
    assert list(posts["n1"].top) == ["o2"] and posts["o1"].top == {}


def test_track_record_and_recency_rank_equally_relevant_offers():
    text, tags = "Happy to review pitch decks for seed founders", ("pitch",)
    op = MatchMaker()
    _, states = run_batch(
        op,
        [
            post("o1", "bob", "offer", text, tags),
            post("o2", "cat", "offer", text, tags),
            post("x", "cat", "post", "our launch went well", ()),
            *[Reaction(f"r{i}", "c", f"fan{i}", T0 + MIN, "x", "thanks") for i in range(6)],
            post(
                "n1",
                "ann",
                "need",
                "Need feedback on our pitch deck before the seed raise",
                tags,
                T0 + 2 * MIN,
            ),
        ],
    )
    top = states["c"].posts["n1"].top
    assert top["o2"] > top["o1"]  # cat's posts were thanked 6 times
    assert states["c"].records["cat"] == [6, 0]


def test_replies_to_a_resolved_need_count_as_past_matches():
    op = MatchMaker()
    _, states = run_batch(
        op,
        [
            post("n1", "ann", "need", "Need a venue for our meetup", ("events",)),
            post("r1", "bob", "post", "DM'd you, we have space", (), T0 + MIN, reply_to="n1"),
            post("r2", "ann", "post", "thanks!", (), T0 + 2 * MIN, reply_to="n1"),  # the author: no credit
            post("x1", "ann", "resolved", "Found one, thanks all", (), T0 + 3 * MIN, reply_to="n1"),
        ],
    )
    assert states["c"].records == {"bob": [0, 1]}


def test_unrelated_posts_do_not_pair_and_a_shared_noise_tag_ranks_low():
    _, states = run_batch(
        MatchMaker(),
        [
            post(
                "n1", "ann", "need", "Looking for a Kubernetes expert to fix our deployments", ("infra", "ai")
            ),
            post("o1", "bob", "offer", "Free pizza and drinks sponsorship for hackathons", ("events",)),
            post("o2", "cat", "offer", "Free GPU credits for startups", ("ai",)),
            post("o3", "dan", "offer", "Kubernetes consulting: deployments, upgrades, debugging", ("infra",)),
        ],
    )
    top = states["c"].posts["n1"].top
    assert "o1" not in top  # nothing shared
    assert top["o3"] > 2 * top["o2"]  # one shared tag is weak evidence


# -- index, closing, Redis ---------------------------------------------------------------------------


def test_resolved_need_leaves_the_index_and_every_list():
    op = MatchMaker()
    out1, states = run_batch(
        op,
        [
            post("n1", "ann", "need", "Looking for seed investors in fintech", ("fundraising",)),
            post(
                "o1",
                "bob",
                "offer",
                "Angel investor, happy to meet fintech founders raising seed",
                ("fundraising",),
                T0 + MIN,
            ),
        ],
    )
    store = MemoryStore()
    redis = store.zsets
    apply_commands(store, out1.commands)
    assert set(redis) == {matches_key("c", "n1"), matches_key("c", "o1"), keys.match_index("c")}
    assert set(redis[keys.match_index("c")]) == {"n1", "o1"}

    out2, _ = run_batch(
        op, [post("x", "ann", "resolved", "Done, thanks!", (), T0 + 2 * MIN, reply_to="n1")], states
    )
    apply_commands(store, out2.commands)
    state = states["c"]
    assert "n1" not in state.posts
    assert all("n1" not in postings for side in state.index.values() for postings in side.values())
    assert state.posts["o1"].top == {}
    assert ["DEL", matches_key("c", "n1")] in out2.commands
    assert redis == {}  # o1's list lost its only candidate: deleted, not left stale

    out3, _ = run_batch(op, [post("n2", "cat", "need", "Looking for seed investors in fintech",
                                  ("fundraising",), T0 + 3 * MIN)], states)  # fmt: skip
    assert [(m.value["need"], m.value["offer"]) for m in out3.messages] == [("n2", "o1")]


def test_posts_expire_after_the_ttl_in_event_time():
    op = MatchMaker(MatchConfig(ttl_ms=DAY))
    _, states = run_batch(
        op,
        [
            post("n1", "ann", "need", "Looking for a React frontend engineer", ("frontend",)),
            post("o1", "bob", "offer", "React frontend engineer available", ("frontend",), T0 + DAY // 2),
        ],
    )
    # Any event moves the community's clock: an RSVP a day after n1 closes n1 (not yet o1).
    out, _ = run_batch(op, [Rsvp("v1", "c", "dan", T0 + DAY, "m1", "going", (), None, None)], states)
    assert list(states["c"].posts) == ["o1"]
    assert out.commands[0] == ["DEL", matches_key("c", "n1")]
    assert ["DEL", matches_key("c", "o1")] in out.commands  # o1's list is empty now
    out, _ = run_batch(op, [Reaction("r1", "c", "dan", T0 + 2 * DAY, "o1", "like")], states)
    assert states["c"].posts == {} and states["c"].index == {"need": {}, "offer": {}}


def test_oldest_posts_are_evicted_beyond_max_open_posts():
    op = MatchMaker(MatchConfig(max_open_posts=5))
    events = [
        post(f"n{i}", f"u{i}", "need", f"need number {i} for react", ("react",), T0 + i) for i in range(8)
    ]
    out, states = run_batch(op, events)
    assert list(states["c"].posts) == ["n3", "n4", "n5", "n6", "n7"]
    assert [c for c in out.commands if c[0] == "DEL" and c[1].endswith((":n0", ":n1", ":n2"))]


def test_redis_command_shapes_and_expire_follow_event_time():
    op = MatchMaker()
    out, states = run_batch(
        op,
        [
            post("n1", "ann", "need", "Looking for a React frontend engineer", ("frontend",)),
            post("o1", "bob", "offer", "React frontend engineer available", ("frontend",), T0 + 1_500),
            post("o2", "cat", "offer", "Frontend engineer, React and Vue", ("frontend",), T0 + 3_000),
        ],
    )
    by_key: dict[str, list[list]] = {}
    for cmd in out.commands:
        by_key.setdefault(cmd[1], []).append(cmd)
    n1 = by_key[matches_key("c", "n1")]
    assert [c[0] for c in n1] == ["DEL", "ZADD", "EXPIRE"]
    zadd = n1[1]
    scores, members = zadd[2::2], zadd[3::2]
    assert sorted(members) == ["o1", "o2"] and scores == sorted(scores, reverse=True)
    assert n1[2] == ["EXPIRE", matches_key("c", "n1"), math.ceil((14 * DAY - 3_000) / 1000)]
    assert by_key[matches_key("c", "o1")][1][2:] == [states["c"].posts["o1"].top["n1"], "n1"]


def test_posting_lists_and_keys_per_post_are_capped():
    cfg = MatchConfig(max_postings=4, max_query_keys=5, max_open_posts=100)
    op = MatchMaker(cfg)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    _, states = run_batch(op, [post(f"o{i}", f"u{i}", "offer", words, ("x",), T0 + i) for i in range(20)])
    state = states["c"]
    assert all(len(p.keys) <= 5 for p in state.posts.values())
    assert all(len(postings) <= 4 for postings in state.index["offer"].values())


def test_an_edit_rescores_and_reports_only_what_improved():
    op = MatchMaker()
    _, states = run_batch(
        op,
        [
            post("o1", "bob", "offer", "Happy to review pitch decks", ("pitch",)),
            post("n1", "ann", "need", "Need help with our deck", ("pitch",), T0 + MIN),
        ],
    )
    before = states["c"].posts["n1"].top["o1"]
    same, _ = run_batch(
        op, [post("n1", "ann", "need", "Need help with our deck", ("pitch",), T0 + MIN)], states
    )
    assert same.messages == []  # re-sent unchanged: nothing new to tell
    better, _ = run_batch(
        op,
        [post("n1", "ann", "need", "Need someone to review our pitch decks", ("pitch",), T0 + 2 * MIN)],
        states,
    )
    assert [m.value["offer"] for m in better.messages] == ["o1"]
    assert states["c"].posts["n1"].top["o1"] > before
    assert list(states["c"].posts) == ["o1", "n1"]


# -- invariants under random streams -------------------------------------------------------------

WORDS = (
    "react",
    "frontend",
    "seed",
    "investor",
    "venue",
    "gpu",
    "前端",
    "融资",
    "场地",
    "算力",
    "rag",
    "pilot",
)


_GAPS = st.integers(0, 3 * DAY)  # the fixed strategies, built once rather than at every draw
_MEMBERS = st.integers(0, 5)
_ACTIONS = st.sampled_from(("need", "offer", "offer", "resolve", "react", "edit"))
_KINDS = st.sampled_from(("need", "offer"))
_TEXTS = st.lists(st.sampled_from(WORDS), min_size=0, max_size=5)
_TAGS = st.lists(st.sampled_from(("ai", "events", "hiring", "need")), max_size=2)


@st.composite
def streams(draw):
    events: list[Post | Reaction] = []
    open_ids: list[str] = []
    t = T0
    for i in range(draw(st.integers(5, 60))):
        t += draw(_GAPS)
        member = f"u{draw(_MEMBERS)}"
        action = draw(_ACTIONS)
        if action in ("need", "offer") or (action == "edit" and open_ids):
            pid = draw(st.sampled_from(open_ids)) if action == "edit" else f"p{i}"
            kind = action if action != "edit" else draw(_KINDS)
            text = " ".join(draw(_TEXTS))
            tags = tuple(draw(_TAGS))
            events.append(Post(f"e{i}", "c", member, t, pid, text, kind, tags, None))
            open_ids.append(pid)
        elif action == "resolve" and open_ids:
            target = draw(st.sampled_from(open_ids))
            events.append(Post(f"e{i}", "c", member, t, f"x{i}", "done", "resolved", (), target))
        elif open_ids:
            events.append(Reaction(f"e{i}", "c", member, t, draw(st.sampled_from(open_ids)), "thanks"))
    return events, draw(st.integers(1, 7))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_state_and_redis_stay_consistent(stream):
    events, batch = stream
    op = MatchMaker(MatchConfig(k=3, ttl_ms=5 * DAY, max_open_posts=12, max_postings=4, max_candidates=6))
    states: dict[str, MatchState] = {}
    store = MemoryStore()
    redis = store.zsets
    for at in range(0, len(events), batch):
        out, states = run_batch(op, events[at : at + batch], states)
        apply_commands(store, out.commands)
        state = states["c"]
        posts = state.posts
        assert len(posts) <= 12
        for p in posts.values():
            assert len(p.top) <= 3
            for c in p.top:
                assert c in posts and posts[c].kind != p.kind and posts[c].member != p.member
                assert p.pid in posts[c].listed_in
            for h in p.listed_in:
                assert p.pid in posts[h].top
            assert p.ts > state.clock - 5 * DAY
        for side, index in state.index.items():
            for postings in index.values():
                assert postings and all(posts[pid].kind == side for pid in postings)
        index = redis.pop(keys.match_index("c"), {})
        assert redis == {matches_key("c", p.pid): p.top for p in posts.values() if p.top}
        assert index == {p.pid: p.ts + 5 * DAY for p in posts.values() if p.top}  # what readers list
        if index:
            redis[keys.match_index("c")] = index
        for m in out.messages:
            assert m.value["need_member"] != m.value["offer_member"]


# -- snapshot contract ---------------------------------------------------------------------------------


def simulated_events() -> list:
    return operator_runs.simulated_events(seed=5, events=6000, communities=4, members=200)


def labeled_events() -> list:
    from streams.labelled.matching import match_stream

    return match_stream(seed=3, communities=2, days=6).events


@pytest.mark.parametrize("source", [simulated_events, labeled_events])
def test_snapshot_mid_stream_then_continue_gives_identical_outputs(source):
    events = source()
    config = MatchConfig(max_open_posts=60, max_terms=300)  # small limits: eviction paths run too
    interrupted = replay(lambda: MatchMaker(config), events, 97, snapshot_every_batch=True)
    uninterrupted = replay(lambda: MatchMaker(config), events, 97, snapshot_every_batch=False)
    assert interrupted == uninterrupted
    assert sum(len(o.messages) for o in uninterrupted) > 20


def test_snapshots_stay_compact():
    events = labeled_events()
    op = MatchMaker()
    _, states = run_batch(op, events)
    for state in states.values():  # about 0.4 KB per open post plus the vocabulary
        assert len(pickle.dumps(state, protocol=5)) < 2048 * len(state.posts) + 64 * 1024


def test_outputs_do_not_depend_on_the_process_hash_seed():
    """A restored state may continue in another process: set and dict orders must not leak into outputs."""
    digests = digests_under_hash_seeds(
        "streams.operators.matching:MatchMaker",
        "streams.labelled.matching:match_stream(seed=4, communities=2, days=5)",
    )
    assert len(digests) == 1, digests


def test_evaluation_targets_on_a_short_labeled_stream():
    """The offline numbers, on a small stream (the full report: python -m studies.evaluate_matching)."""
    from streams.labelled.matching import match_stream, run_matching

    metrics, _ = run_matching(match_stream(seed=11, days=10), MatchConfig())
    assert metrics["self_pairs"] == 0
    assert metrics["p@3"] >= 0.7 and metrics["r@10"] >= 0.85, metrics
