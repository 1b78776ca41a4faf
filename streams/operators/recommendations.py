"""Member → meetup recommendations: learn online who joins what, publish each active member's top-5.

Signals (event time only):

* RSVPs — ``going`` / ``attended`` are positives (1.0), ``maybe`` 0.5, ``declined`` /
  ``cancelled`` 0.0; each positive also teaches one *sampled negative*: another upcoming meetup
  the member has not answered (picked by a CRC of the event id, so replays pick the same one).
  Without negatives, implicit feedback is all ones and the model learns nothing but the mean.
* Reactions (like, love, thanks, insightful, laugh) to a tagged post — interest in its tags.

The model is :class:`online_models.recommender.MeetupAffinity`: river ``reco.BiasedMF`` over
members × meetups plus each member's tag profile (smoothed lift of the meetup's tags among their
positives), which is what ranks a brand-new meetup before anyone has answered it.  After every
batch, each member who RSVP'd or reacted in it gets ``pulse:recs:{community}:{member}``: a
sorted set of up to ``k`` upcoming meetups (``starts_at`` after the community's event time, not
full, not already answered) → score, written as ``DEL`` + ``ZADD`` + ``EXPIRE`` (until the last
of them starts, at most ``recs_ttl_seconds``) **when its ranking changed** (issue 14): the scores
drift with every event of the community, so a list whose meetups and order are the ones its key
holds is not rewritten (only ``EXPIRE`` when its expiry moves later), and its scores are those of
the batch that last changed the ranking.  What each key holds (its ranking and event-time
expiry) is remembered per member in the state and its snapshot, which the batch script commits
together with the keys: a restored state knows what Redis holds at its offsets, so a restart or a
replay writes exactly what an uninterrupted run writes.  A key past its event-time expiry is
written again; as for every event-time TTL in Pulse, a key that expired in wall-clock time while
the worker was down and its backlog is still behind is not (until the ranking changes or the
expiry moves later).  An empty list is a ``DEL`` (once).  Members who were not
active keep their previous set until it expires.

Bounded memory per community: ``max_members`` members and ``max_items`` meetups+tags in the
model (LRU), ``max_meetups`` meetups in the catalog (dropped ``keep_after_start_ms`` after they
start, when check-ins stop), ``max_posts`` post → tags entries.  Cost per batch is one pass over
the upcoming meetups, then per active member a pass over those they have not answered and, when
there are several or its list is rewritten, one matrix-vector product and a tag-profile lookup
per upcoming meetup tag (a ranking of one meetup needs no scores).

>>> from schemas.events import Rsvp
>>> op = MeetupRecommender()
>>> states = {"c": op.new_state("c")}
>>> day, t0 = 86_400_000, 1_767_225_600_000
>>> out = op.apply_batch(states, [
...     Rsvp("e1", "c", "ann", t0, "m1", "going", ("meetup", "ai"), t0 + day, 50),
...     Rsvp("e2", "c", "bob", t0, "m2", "going", ("meetup", "hiring"), t0 + 2 * day, None),
... ])
>>> [c[:2] + c[3:] for c in out.commands if c[0] == "ZADD"]  # each is offered the meetup they did not answer
[['ZADD', 'pulse:recs:c:ann', 'm2'], ['ZADD', 'pulse:recs:c:bob', 'm1']]
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from online_models.recommender import MeetupAffinity
from online_models.text_features import content_tags, normalize_tag
from schemas.events import Event, Post, Reaction, Rsvp
from streams import keys
from streams.config import Settings
from streams.operators.base import Observation, Output, RedisCommand

__all__ = ["MeetupInfo", "MeetupRecommender", "RecoConfig", "RecoState", "recs_key"]

DAY_MS = 86_400_000
NEVER = 2**62
RATING = {"going": 1.0, "attended": 1.0, "maybe": 0.5, "declined": 0.0, "cancelled": 0.0}
GOING = frozenset({"going", "attended"})
INTEREST_REACTIONS = frozenset({"like", "love", "thanks", "insightful", "laugh"})


@lru_cache(maxsize=65_536)  # active members come back batch after batch: encode their key once
def recs_key(community: str, member: str) -> str:
    return keys.recs(community, member)


@dataclass(frozen=True, slots=True)
class RecoConfig:
    """Knobs of :class:`MeetupRecommender`; the memory limits are per community."""

    k: int = 5
    n_factors: int = 8
    learning_rate: float = 0.05
    l2: float = 0.01
    tag_weight: float = 0.0  # tags as extra factor items: no gain on the eval stream, twice the cost
    content_weight: float = 1.0
    init_std: float = 0.1
    reaction_rating: float = 1.0
    negatives: int = 1  # sampled negatives per positive RSVP
    max_members: int = 2_000
    max_items: int = 1_000  # meetups + tags held by the factor model
    max_meetups: int = 300  # meetup catalog
    max_posts: int = 2_000  # post → tags, for reactions
    keep_after_start_ms: int = DAY_MS  # late check-ins (attended) still teach the model
    recs_ttl_seconds: int = 7 * 86_400
    seed: int = 7


class MeetupInfo:
    """What the catalog knows of a meetup (from its RSVPs): start, tags, capacity, who answered."""

    __slots__ = ("capacity", "going", "responders", "starts_at", "tags")

    def __init__(self, starts_at: int | None, tags: tuple[str, ...], capacity: int | None) -> None:
        self.starts_at = starts_at
        self.tags = tags
        self.capacity = capacity
        self.going = 0
        self.responders: dict[str, str] = {}  # member → latest status

    def __reduce__(self) -> tuple[Any, ...]:  # faster to pickle than __getstate__ (no copyreg)
        return _restore_meetup, (self.capacity, self.going, self.responders, self.starts_at, self.tags)

    def is_full(self) -> bool:
        return self.capacity is not None and self.going >= self.capacity


def _restore_meetup(*state: Any) -> MeetupInfo:
    info = MeetupInfo.__new__(MeetupInfo)
    info.capacity, info.going, info.responders, info.starts_at, info.tags = state
    return info


# Tag lists repeat (a meetup's RSVPs, a community's usual topics): normalize each distinct one once.
@lru_cache(maxsize=16_384)
def _meetup_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(normalize_tag(t) for t in tags))



def _top(scores: list[float], unanswered: list[tuple[int, str]], k: int) -> list[tuple[float, str]]:
    """The best ``k`` (-score, meetup) of the ``unanswered`` (index in ``scores``, meetup), best
    first: scores rounded to 6 places (what Redis gets), ties broken by meetup id."""
    ranked = sorted([(-round(scores[i], 6), mid) for i, mid in unanswered])
    return ranked[:k]


class RecoState:
    __slots__ = ("clock", "meetups", "model", "post_tags", "retire_at", "written")

    def __init__(self, config: RecoConfig) -> None:
        self.model = MeetupAffinity(
            n_factors=config.n_factors,
            learning_rate=config.learning_rate,
            l2=config.l2,
            tag_weight=config.tag_weight,
            content_weight=config.content_weight,
            max_users=config.max_members,
            max_items=config.max_items,
            init_std=config.init_std,
            seed=config.seed,
        )
        self.meetups: dict[str, MeetupInfo] = {}  # first-seen order
        self.post_tags: dict[str, tuple[str, ...]] = {}  # oldest first
        self.clock = 0
        self.retire_at = NEVER  # event time at which the earliest meetup in the catalog retires
        # member → (the ranking its key holds, event time at which that key expires); in the
        # snapshot, which is committed with the keys in one script: a restored state knows them
        self.written: dict[str, tuple[tuple[Any, ...], int]] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore_state, (
            self.clock,
            self.meetups,
            self.model,
            self.post_tags,
            self.retire_at,
            self.written,
        )


def _restore_state(*state: Any) -> RecoState:
    s = RecoState.__new__(RecoState)
    s.clock, s.meetups, s.model, s.post_tags, s.retire_at, s.written = state
    return s


class MeetupRecommender:
    """Stateful operator ``recommendations``: see the module docstring."""

    name = "recommendations"

    def __init__(self, config: RecoConfig | None = None) -> None:
        self.config = config or RecoConfig()

    @classmethod
    def from_settings(cls, settings: Settings) -> MeetupRecommender:
        """Factory for the registry (``PULSE_RECO_TOP_K``)."""
        return cls(RecoConfig(k=settings.reco_top_k))

    def new_state(self, community: str) -> RecoState:
        return RecoState(self.config)

    def apply_batch(self, states: dict[str, RecoState], events: Sequence[Event]) -> Output:
        out = Output()
        active: dict[str, dict[str, None]] = {}
        reaction_rating = self.config.reaction_rating
        for ev in events:
            state = states[ev.community]
            members = active.get(ev.community)
            if members is None:
                members = active[ev.community] = {}
            if ev.ts > state.clock:
                state.clock = ev.ts
                if ev.ts >= state.retire_at:
                    self._retire(state)
            cls = ev.__class__
            if cls is Rsvp:
                self._rsvp(state, ev)  # type: ignore[arg-type]
                members[ev.member] = None
            elif cls is Reaction:  # interest in a tagged post's topics
                tags = state.post_tags.get(ev.post)  # type: ignore[union-attr]
                if tags and ev.reaction in INTEREST_REACTIONS:  # type: ignore[union-attr]
                    state.model.learn_tags(ev.member, tags, reaction_rating)
                    members[ev.member] = None
            elif cls is Post and ev.tags:  # type: ignore[union-attr]
                self._post(state, ev)  # type: ignore[arg-type]
        for community, members in active.items():
            state = states[community]
            commands, upcoming = self._publish(community, state, members)
            out.commands += commands
            out.observations.append(Observation("reco_upcoming_meetups", community, float(upcoming)))
        return out

    # -- learning ---------------------------------------------------------------------------------

    def _rsvp(self, state: RecoState, ev: Rsvp) -> None:
        cfg = self.config
        info = state.meetups.get(ev.meetup)
        tags = _meetup_tags(ev.meetup_tags)
        if info is None:
            info = state.meetups[ev.meetup] = MeetupInfo(ev.starts_at, tags, ev.capacity)
            if len(state.meetups) > cfg.max_meetups:
                self._drop(state, next(iter(state.meetups)))
        else:  # the latest RSVP carries the publisher's latest view of the meetup
            info.starts_at = ev.starts_at if ev.starts_at is not None else info.starts_at
            info.tags = tags or info.tags
            info.capacity = ev.capacity if ev.capacity is not None else info.capacity  # as turnout, kpis
        if info.starts_at is not None:
            state.retire_at = min(state.retire_at, info.starts_at + cfg.keep_after_start_ms)
        before = info.responders.get(ev.member)
        info.going += (ev.status in GOING) - (before in GOING)
        info.responders[ev.member] = ev.status
        y = RATING.get(ev.status, 0.0)
        state.model.learn_one(ev.member, ev.meetup, y, info.tags)
        if ev.status == "going" and cfg.negatives:
            pool = [
                mid
                for mid, m in state.meetups.items()
                if mid != ev.meetup and (m.starts_at or 0) > ev.ts and ev.member not in m.responders
            ]
            h = zlib.crc32(ev.id.encode())
            for i in range(min(cfg.negatives, len(pool))):
                mid = pool[(h + i * 7919) % len(pool)]
                state.model.learn_one(ev.member, mid, 0.0, state.meetups[mid].tags)

    def _post(self, state: RecoState, ev: Post) -> None:
        tags = content_tags(ev.tags)
        if not tags:
            return
        posts = state.post_tags
        posts.pop(ev.post, None)
        posts[ev.post] = tags
        if len(posts) > self.config.max_posts:
            del posts[next(iter(posts))]

    def _retire(self, state: RecoState) -> None:
        """Drop meetups whose check-ins are over; the catalog is scanned only when one is due."""
        keep = self.config.keep_after_start_ms
        horizon = state.clock - keep
        for mid in [
            mid for mid, m in state.meetups.items() if m.starts_at is not None and m.starts_at <= horizon
        ]:
            self._drop(state, mid)
        starts = [m.starts_at for m in state.meetups.values() if m.starts_at is not None]
        state.retire_at = min(starts) + keep if starts else NEVER

    def _drop(self, state: RecoState, meetup: str) -> None:
        del state.meetups[meetup]
        state.model.forget_item(meetup)

    # -- ranking ----------------------------------------------------------------------------------

    def candidates(self, state: RecoState) -> list[str]:
        """Meetups that can be recommended now: upcoming in event time and not full."""
        return self._candidates(state)[0]

    def _candidates(self, state: RecoState) -> tuple[list[str], int]:
        """:meth:`candidates`, and how many meetups are upcoming (full ones included)."""
        clock = state.clock
        mids = []
        upcoming = 0
        for mid, m in state.meetups.items():
            starts_at = m.starts_at
            if starts_at is not None and starts_at > clock:
                upcoming += 1
                if m.capacity is None or m.going < m.capacity:
                    mids.append(mid)
        return mids, upcoming

    def recommend(
        self, state: RecoState, member: str, k: int | None = None, cache: Any = None
    ) -> list[tuple[str, float]]:
        """Top ``k`` (meetup, score) for ``member``, best first, answered meetups left out."""
        if cache is None:
            cache = self._vectors(state)
        mids, scorer = cache
        meetups = state.meetups
        unanswered = [(i, mid) for i, mid in enumerate(mids) if member not in meetups[mid].responders]
        if not unanswered:
            return []
        return [(mid, -s) for s, mid in _top(scorer(member), unanswered, k or self.config.k)]

    def _vectors(
        self, state: RecoState, mids: list[str] | None = None
    ) -> tuple[list[str], Callable[[str], list[float]]]:
        """The candidates and a scorer of them (:meth:`MeetupAffinity.scorer`), once per batch."""
        if mids is None:
            mids = self.candidates(state)
        tags = [state.meetups[mid].tags for mid in mids]
        biases, vectors = state.model.item_vectors(list(zip(mids, tags, strict=True)))
        return mids, state.model.scorer(biases.tolist(), vectors, tags)

    def _publish(
        self, community: str, state: RecoState, members: dict[str, None]
    ) -> tuple[list[RedisCommand], int]:
        """Each active member's list, written only when its ranking differs from the one its key
        holds (or its expiry has to move later); and the number of upcoming meetups."""
        commands: list[RedisCommand] = []
        mids, upcoming = self._candidates(state)
        scorer = None  # built when a member's ranking or list needs scores
        ttl = self.config.recs_ttl_seconds
        clock = state.clock
        written = state.written
        meetups = state.meetups
        k = self.config.k
        candidates = [(i, mid, meetups[mid].responders) for i, mid in enumerate(mids)]
        starts = {mid: meetups[mid].starts_at or 0 for mid in mids}
        for member in members:
            last = written.pop(member, None)
            unanswered = [(i, mid) for i, mid, responders in candidates if member not in responders]
            recs = None
            if len(unanswered) > 1:
                scorer = scorer or self._vectors(state, mids)[1]
                recs = _top(scorer(member), unanswered, k)
                digest = tuple([mid for _, mid in recs])  # the ranking: scores drift with every event
            else:  # at most one meetup: its ranking needs no scores (they are computed if written)
                digest = tuple([mid for _, mid in unanswered[:k]])
            if not digest:
                if last is None or last[0]:
                    commands.append(["DEL", recs_key(community, member)])
                written[member] = ((), NEVER)
                continue
            last_start = starts[digest[0]] if len(digest) == 1 else max(map(starts.__getitem__, digest))
            seconds = max(1, min(ttl, -(-(last_start - clock) // 1000)))
            deadline = clock + 1000 * seconds
            if last is not None and last[0] == digest and last[1] > clock:  # the key holds this ranking
                if deadline > last[1] + 1000:  # its expiry moves later (beyond rounding)
                    commands.append(["EXPIRE", recs_key(community, member), seconds])
                else:
                    deadline = last[1]
                written[member] = (digest, deadline)
                continue
            if recs is None:
                scorer = scorer or self._vectors(state, mids)[1]
                recs = _top(scorer(member), unanswered, k)
            key = recs_key(community, member)
            zadd: RedisCommand = ["ZADD", key]
            for s, mid in recs:
                zadd += (-s, mid)
            commands += [["DEL", key], zadd, ["EXPIRE", key, seconds]]
            written[member] = (digest, deadline)
        while len(written) > self.config.max_members:
            del written[next(iter(written))]
        return commands, upcoming
