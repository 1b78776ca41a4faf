"""Live match candidates: each new ``need`` is scored against the open ``offer`` posts of its
community (and each new offer against the open needs), and every open post keeps its top-k.

Score of a (need, offer) pair, in [0, 1]::

    relevance = (w_tags · cos(tags) + w_text · cos(terms)) · (1 - single_key_factor ^ shared keys)
                (× tags_only_factor when both have text and cos(terms) = 0)
    score     = relevance + w_track · track(offerer) + w_recency · recency

* ``cos`` is the cosine of binary TF-IDF vectors whose IDF is learned online from the
  community's needs and offers (:class:`~online_models.text_features.OnlineIDF`; request
  phrasing common to them weighs little, chatter does not dilute it); terms come from
  :func:`~online_models.text_features.extract_terms` (English words, Chinese bigrams, a
  Chinese→English glossary), tags are normalised and the kind echoes (``need``/``offer``) dropped.
  When either post has no tags (or no terms), the other cosine takes both weights: missing
  evidence is not negative evidence.  But when both have text and share no term, only the tags
  (often topic-wide: three services per topic on the labelled stream) agree, and relevance is
  multiplied by ``tags_only_factor`` (issue 18: 45 % of the wrong top-3 candidates on the
  labelled stream shared tags and no word).  A pair joined by a single shared word is discounted.
* Text terms weigh their IDF times :func:`~online_models.text_stage.informativeness` (wordfreq:
  everyday words such as "make", "better", "pay" weigh little), and a pair needs a shared tag
  or at least ``min_shared_terms`` informative shared terms (issue 18: real "Ask"/"Show" posts
  were paired on one generic word).
* ``track`` = x / (x + 5) with x = thanks + insightful reactions the offerer received on their
  posts + 3 × past matches (replies to a need that was then resolved).
* ``recency`` falls linearly from 1 to 0 over the post TTL with the age of the older post.

A pair needs ``relevance >= min_relevance``: track record and recency rank relevant candidates,
they never make an irrelevant one.  No pair joins a member to themself.  A post is open until
``ttl_ms`` of event time passes or a ``resolved`` post (by anyone) replies to it; re-sending an
open post id (an edit) re-scores it and reports only pairs that are new or scored higher.

Cost per need/offer is bounded, not proportional to the open posts: candidates come from an
inverted index (tag or term → open posts of the other kind); keys found in more than ``max_df``
of the needs/offers are treated as stop words; only the ``max_query_keys`` most informative keys
of a post are indexed and queried, rarest first; each posting list keeps its newest
``max_postings`` posts; new candidates stop being drawn at ``max_candidates`` (later keys only
add evidence to them); and only the best ``max_pairs`` update top-k lists and send messages.
The cost rises while these caps are not yet binding (a few hundred open posts) and is flat
beyond.  Memory per community is bounded by ``max_open_posts`` (oldest closed), ``max_terms``
(IDF), ``max_members`` (track records) and ``max_authors`` (post → author, to credit reactions);
a candidate that leaves a top-k list (pushed out, or closed) does not come back to it.

Redis: ``pulse:matches:{community}:{post}`` is a sorted set (candidate post → score), listed in
the index ``pulse:matches:{community}`` (post → event-time deadline, ms), rewritten
as ``DEL`` + ``ZADD`` + ``EXPIRE`` (seconds until the post's event-time TTL) once per batch when
its candidates changed, and deleted (``DEL``) when the post closes.  Kafka: one
``match-candidates`` message per pair that is new or improved in either post's top-k, keyed by
community (the input topics' key, so a community's matches stay in order).

>>> from schemas.events import Post
>>> op = MatchMaker()
>>> states = {"c": op.new_state("c")}
>>> out = op.apply_batch(states, [
...     Post("e1", "c", "ann", 1_767_225_600_000, "n1", "Hiring a frontend engineer, React", "need",
...          ("hiring", "frontend"), None),
...     Post("e2", "c", "bob", 1_767_225_660_000, "o1", "资深前端工程师可接兼职，熟悉React", "offer",
...          ("frontend",), None),
... ])
>>> [(m.value["need"], m.value["offer"], m.value["reasons"]) for m in out.messages]
[('n1', 'o1', {'shared_tags': ['frontend'], 'matched_terms': ['frontend', 'react', 'engineer']})]
>>> [c for c in out.commands if c[0] == "ZADD"][:2]
[['ZADD', 'pulse:matches:c:n1', 0.488178, 'o1'], ['ZADD', 'pulse:matches:c:o1', 0.488178, 'n1']]
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from online_models.text_features import ChineseMode, OnlineIDF, content_tags, extract_terms
from online_models.text_stage import STOP_TOPICS_EN, analysis_of, informativeness
from schemas.events import Event, Post, Reaction
from streams import keys
from streams.config import Settings
from streams.operators.base import Observation, OutgoingMessage, Output, RedisCommand

__all__ = ["MatchConfig", "MatchMaker", "MatchState", "OpenPost", "matches_key"]

DAY_MS = 86_400_000
KUDOS_REACTIONS = frozenset({"thanks", "insightful"})
OTHER_SIDE = {"need": "offer", "offer": "need"}
_informativeness = lru_cache(maxsize=65_536)(informativeness)  # each key's, once: posts repeat words


@lru_cache(maxsize=16_384)  # tag lists repeat (a community's usual topics): build each one's once
def _tag_keys(tags: tuple[str, ...]) -> tuple[str, ...]:
    """A post's index keys for its tags: ``#tag`` of each of its :func:`content_tags`."""
    return tuple(f"#{t}" for t in content_tags(tags))


@lru_cache(maxsize=65_536)  # a post's key is written at every change of its top-k: encode it once
def matches_key(community: str, post: str) -> str:
    """Sorted set of one open post's candidates."""
    return keys.matches(community, post)


@dataclass(frozen=True, slots=True)
class MatchConfig:
    """Knobs of :class:`MatchMaker`; the memory limits are per community."""

    ttl_ms: int = 14 * DAY_MS  # a post is open this long in event time unless resolved
    k: int = 10  # candidates kept (and written to Redis) per open post
    w_tags: float = 0.30  # tags are often missing, generic or noisy; text says more (measured)
    w_text: float = 0.65
    w_track: float = 0.02  # track record and recency order relevant candidates, they are not relevance
    w_recency: float = 0.03
    tags_only_factor: float = 0.5  # relevance x this when both posts have text but share no term
    single_key_factor: float = 0.3  # relevance x (1 - f^shared keys): 0.7 for one, 0.91 for two...
    min_relevance: float = 0.05  # relevance (tags + text part) below this: no pair
    min_shared_terms: int = 2  # without a shared tag, a pair needs this many informative shared terms
    informative: float = 0.4  # text_stage.informativeness (wordfreq) at which a term counts as informative
    rare: float = 0.9  # ... and at which one counts twice (a name or jargon: kubernetes, figma, 融资)
    max_open_posts: int = 1_000  # open needs + offers (~0.45 KB of snapshot each); oldest closed beyond
    max_postings: int = 32  # newest open posts per (side, key) in the inverted index
    max_query_keys: int = 16  # most informative tags/terms per post that are indexed and queried
    max_df: float = 0.15  # keys in more than this share of needs/offers are stop words (after 50 posts)
    max_candidates: int = 64  # posts that new candidates are drawn from; later keys only add evidence
    max_pairs: int = 32  # best candidates of a new post that update top-k lists
    max_terms: int = 10_000  # IDF vocabulary
    max_members: int = 5_000  # track records
    max_authors: int = 5_000  # recent post → author (reactions credit the author)
    track_half: float = 5.0  # track = x / (x + track_half)
    chinese: ChineseMode = "bigram"
    glossary: bool = True
    topic: str = "match-candidates"


class OpenPost:
    """An open need or offer: its index keys and its current top-k, nothing else.

    ``keys`` are ``#tag`` keys first (``n_tags`` of them), then text terms; the norms are those of
    its TF-IDF vectors when it opened.  ``top`` maps candidate post → score; ``listed_in`` holds
    the posts whose ``top`` lists this one (so closing it can take it out of theirs).
    Pickled as a plain tuple: a snapshot holds thousands of these.
    """

    __slots__ = ("keys", "kind", "listed_in", "member", "n_tags", "pid", "repliers", "tag_norm", "text_norm",
                 "top", "ts")  # fmt: skip

    def __init__(
        self, pid: str, member: str, kind: str, ts: int, keys: tuple[str, ...], n_tags: int,
        tag_norm: float, text_norm: float,
    ) -> None:  # fmt: skip
        self.pid, self.member, self.kind, self.ts = pid, member, kind, ts
        self.keys, self.n_tags, self.tag_norm, self.text_norm = keys, n_tags, tag_norm, text_norm
        self.top: dict[str, float] = {}
        self.listed_in: dict[str, None] = {}
        self.repliers: tuple[str, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:  # 8x faster to pickle than __getstate__ (no copyreg)
        return _restore_post, (
            self.keys, self.kind, self.listed_in, self.member, self.n_tags, self.pid, self.repliers,
            self.tag_norm, self.text_norm, self.top, self.ts,
        )  # fmt: skip

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(k[1:] for k in self.keys[: self.n_tags])

    @property
    def terms(self) -> tuple[str, ...]:
        return self.keys[self.n_tags :]


def _restore_post(*state: Any) -> OpenPost:
    post = OpenPost.__new__(OpenPost)
    (post.keys, post.kind, post.listed_in, post.member, post.n_tags, post.pid, post.repliers,
     post.tag_norm, post.text_norm, post.top, post.ts) = state  # fmt: skip
    return post


class MatchState:
    """One community's open posts, inverted index, IDF, track records and event-time clock."""

    __slots__ = ("authors", "clock", "idf", "index", "posts", "records")

    def __init__(self, max_terms: int) -> None:
        self.posts: dict[str, OpenPost] = {}  # arrival order: the front is the oldest
        self.index: dict[str, dict[str, dict[str, None]]] = {"need": {}, "offer": {}}
        self.idf = OnlineIDF(max_terms=max_terms)
        self.records: dict[str, list[int]] = {}  # member → [kudos, matches], least recently updated first
        self.authors: dict[str, str] = {}  # post → member, oldest first
        self.clock = 0  # newest event time seen (ms)

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore_state, (self.authors, self.clock, self.idf, self.index, self.posts, self.records)


def _restore_state(*state: Any) -> MatchState:
    s = MatchState.__new__(MatchState)
    s.authors, s.clock, s.idf, s.index, s.posts, s.records = state
    return s


class _Batch:
    """What one ``apply_batch`` call changed in one community (turned into commands at the end)."""

    __slots__ = ("closed", "touched")

    def __init__(self) -> None:
        self.touched: dict[str, None] = {}
        self.closed: dict[str, None] = {}


class MatchMaker:
    """Stateful operator ``matching``: see the module docstring."""

    name = "matching"

    def __init__(self, config: MatchConfig | None = None) -> None:
        self.config = config or MatchConfig()

    @classmethod
    def from_settings(cls, settings: Settings) -> MatchMaker:
        """Factory for the registry: ``PULSE_MATCH_TTL_SECONDS``, ``_TOP_K``, ``_MAX_OPEN_POSTS``."""
        return cls(
            MatchConfig(
                ttl_ms=settings.match_ttl_seconds * 1000,
                k=settings.match_top_k,
                max_open_posts=settings.match_max_open_posts,
            )
        )

    def new_state(self, community: str) -> MatchState:
        return MatchState(self.config.max_terms)

    # -- batch ------------------------------------------------------------------------------------

    def apply_batch(self, states: dict[str, MatchState], events: Sequence[Event]) -> Output:
        out = Output()
        batches: dict[str, _Batch] = {}
        ttl = self.config.ttl_ms
        for ev in events:
            community = ev.community
            state = states[community]
            batch = batches.get(community)
            if batch is None:
                batch = batches[community] = _Batch()
            if ev.ts > state.clock:
                state.clock = ev.ts
                posts = state.posts
                if posts and next(iter(posts.values())).ts <= ev.ts - ttl:  # the oldest post expired
                    self._expire(state, batch)
            if ev.__class__ is Post:
                self._post(state, batch, ev, out)  # type: ignore[arg-type]
            elif ev.__class__ is Reaction and ev.reaction in KUDOS_REACTIONS:  # type: ignore[attr-defined]
                self._kudos(state, ev)  # type: ignore[arg-type]
        for community, batch in batches.items():
            state = states[community]
            out.commands += self._commands(community, state, batch)
            out.observations.append(Observation("match_open_posts", community, float(len(state.posts))))
        return out

    def _commands(self, community: str, state: MatchState, batch: _Batch) -> list[RedisCommand]:
        """Each touched post's match set, and the community's index of them (post → event-time
        deadline, ms): readers list a community's match sets there instead of scanning keys."""
        if not batch.touched and not batch.closed:  # most batches of a community: chatter, reactions
            return []
        commands: list[RedisCommand] = [["DEL", matches_key(community, pid)] for pid in batch.closed]
        index = keys.match_index(community)
        unlisted: RedisCommand = ["ZREM", index, *batch.closed]
        ttl, clock = self.config.ttl_ms, state.clock
        listed: RedisCommand = ["ZADD", index]
        for pid in batch.touched:
            post = state.posts.get(pid)
            if post is None:
                continue
            key = matches_key(community, pid)
            commands.append(["DEL", key])
            if not post.top:
                unlisted.append(pid)
            else:
                zadd: RedisCommand = ["ZADD", key]
                for cand, score in sorted(post.top.items(), key=lambda kv: (-kv[1], kv[0])):
                    zadd += [score, cand]
                commands.append(zadd)
                commands.append(["EXPIRE", key, max(1, -(-(post.ts + ttl - clock) // 1000))])
                listed += [post.ts + ttl, pid]
        if len(unlisted) > 2:
            commands.append(unlisted)
        if len(listed) > 2:
            commands.append(listed)
            commands.append(["ZREMRANGEBYSCORE", index, "-inf", clock])  # past their deadline
        return commands

    # -- events -----------------------------------------------------------------------------------

    def _post(self, state: MatchState, batch: _Batch, ev: Post, out: Output) -> None:
        cfg = self.config
        authors = state.authors
        authors.pop(ev.post, None)
        authors[ev.post] = ev.member
        if len(authors) > cfg.max_authors:
            del authors[next(iter(authors))]
        target = state.posts.get(ev.reply_to) if ev.reply_to else None
        if target is not None:
            if ev.kind == "resolved":
                self._close(state, batch, target, resolved=True)
            elif ev.member != target.member and ev.member not in target.repliers and len(target.repliers) < 5:
                target.repliers += (ev.member,)
        if ev.kind in OTHER_SIDE:  # only needs and offers are matched: the rest skips text work
            if cfg.chinese == "bigram" and cfg.glossary:  # the text stage's terms: computed once per post
                terms = list(analysis_of(ev).terms)
            else:
                terms = extract_terms(ev.text, chinese=cfg.chinese, glossary=cfg.glossary)
            tag_keys = list(_tag_keys(ev.tags))
            state.idf.learn_one(tag_keys + terms)
            previous: dict[str, float] = {}
            old = state.posts.get(ev.post)
            if old is not None:  # an edit: re-score, report only what got better
                previous = dict(old.top)
                for h in old.listed_in:
                    previous[h] = state.posts[h].top[old.pid]
                self._close(state, batch, old, resolved=False)  # its key is rewritten if it reopens
            self._open(state, batch, ev, tag_keys, terms, previous, out)

    def _kudos(self, state: MatchState, ev: Reaction) -> None:
        """A thanks or insightful reaction: credit the post's author."""
        author = state.authors.get(ev.post)
        if author is not None and author != ev.member:
            self._credit(state, author, 0)

    def _credit(self, state: MatchState, member: str, what: int) -> None:
        records = state.records
        record = records.pop(member, None) or [0, 0]
        record[what] += 1
        records[member] = record
        if len(records) > self.config.max_members:
            del records[next(iter(records))]

    # -- open, score, close -----------------------------------------------------------------------

    def _open(
        self, state: MatchState, batch: _Batch, ev: Post, tag_keys: list[str], terms: list[str],
        previous: dict[str, float], out: Output,
    ) -> None:  # fmt: skip
        cfg = self.config
        idf = state.idf
        df, n = idf.df, idf.n
        df_get, log, n1 = df.get, math.log, 1 + n
        # Text terms weigh their IDF in this community (OnlineIDF.idf, inlined: the same operations)
        # times how rare they are in the language (wordfreq): "make", "better", "pay" say little
        # even when this community rarely uses them.
        weights = {k: log(n1 / (1 + df_get(k, 0))) + 1.0 for k in tag_keys}
        weights.update((t, (log(n1 / (1 + df_get(t, 0))) + 1.0) * _informativeness(t)) for t in terms)
        if not weights:
            return  # nothing to match on (an empty or emoji-only post)
        by_weight = sorted(weights, key=lambda k: (-weights[k], k))
        limit = cfg.max_df * n if n >= 50 else math.inf
        if n >= 50:  # stop words learned from the stream: keep informative keys (at least 2)
            by_weight = by_weight[:2] + [k for k in by_weight[2:] if df_get(k, 0) <= limit]
        by_weight = by_weight[: cfg.max_query_keys]
        keys = [k for k in by_weight if k[0] == "#"]  # tags first, each group by weight
        n_tags = len(keys)
        tag_norm = math.sqrt(sum([weights[k] ** 2 for k in keys]))
        text_keys = [k for k in by_weight if k[0] != "#"]
        text_norm = math.sqrt(sum([weights[k] ** 2 for k in text_keys]))
        keys += text_keys
        post = OpenPost(ev.post, ev.member, ev.kind, ev.ts, tuple(keys), n_tags, tag_norm, text_norm)

        # Dot products over the other side's postings, rarest key first.  Once max_candidates
        # posts are in, later (commoner) keys only add evidence to them: the cost is bounded by
        # max_query_keys x min(max_postings, max_candidates), whatever the number of open posts.
        # candidate → [tag dot product, text dot product (None: no shared key of that kind),
        # shared keys, shared informative text terms], in the order the postings met them
        found: dict[str, list[Any]] = {}
        floor, rare, max_candidates = cfg.informative, cfg.rare, cfg.max_candidates
        other = state.index[OTHER_SIDE[ev.kind]]
        for key in by_weight:
            postings = other.get(key)
            if not postings:
                continue
            w2 = weights[key] ** 2
            at = 0 if key[0] == "#" else 1
            # informative: rare in the language (wordfreq) and not a stop word of this community
            info = (
                _informativeness(key) if at and df_get(key, 0) <= limit and key not in STOP_TOPICS_EN else 0.0
            )
            counts_as = 2 if info >= rare else 1 if info >= floor else 0
            draw = len(found) < max_candidates
            for pid in postings:
                rec = found.get(pid)
                if rec is None:
                    if draw:
                        rec = found[pid] = [None, None, 0, 0]
                    else:
                        continue
                dot = rec[at]
                rec[at] = w2 if dot is None else dot + w2
                rec[2] += 1
                rec[3] += counts_as
        scored: list[tuple[float, str]] = []
        posts = state.posts
        if found:
            w_tags, w_text, w_both = cfg.w_tags, cfg.w_text, cfg.w_tags + cfg.w_text
            tags_only, single_key = cfg.tags_only_factor, cfg.single_key_factor
            min_relevance, min_shared = cfg.min_relevance, cfg.min_shared_terms
            w_track, w_recency, ttl, track_half = cfg.w_track, cfg.w_recency, cfg.ttl_ms, cfg.track_half
            records, clock, member, ts = state.records, state.clock, post.member, post.ts
            is_need = post.kind == "need"
            for pid, (a_tag, a_text, n_shared, n_informative) in found.items():
                cand = posts[pid]
                if cand.member == member:
                    continue
                if a_tag is None and n_informative < min_shared:
                    continue  # no shared tag and fewer than two informative shared words: no evidence
                tag_cos = 0.0 if a_tag is None else min(1.0, a_tag / (tag_norm * cand.tag_norm))
                text_cos = 0.0 if a_text is None else min(1.0, a_text / (text_norm * cand.text_norm))
                if not (tag_norm and cand.tag_norm):  # untagged: missing evidence is not negative evidence
                    relevance = w_both * text_cos
                elif not (text_norm and cand.text_norm):
                    relevance = w_both * tag_cos
                else:
                    relevance = w_tags * tag_cos + w_text * text_cos
                    if not text_cos:  # both texts say something and share nothing: only the tags agree
                        relevance *= tags_only
                relevance *= 1.0 - single_key**n_shared  # one shared word is weak evidence
                if relevance < min_relevance:
                    continue
                record = records.get(member if not is_need else cand.member)  # the offerer's track
                if record is None:
                    track = 0.0
                else:
                    x = record[0] + 3 * record[1]
                    track = x / (x + track_half)
                score = relevance + w_track * track
                score += w_recency * max(0.0, 1.0 - (clock - min(ts, cand.ts)) / ttl)
                scored.append((round(score, 6), pid))

        for key in keys:  # index the new post on its own side
            postings = state.index[ev.kind].setdefault(key, {})
            postings[post.pid] = None
            if len(postings) > cfg.max_postings:
                del postings[next(iter(postings))]
        posts[post.pid] = post
        batch.touched[post.pid] = None
        batch.closed.pop(post.pid, None)

        if scored:
            own_keys = set(keys)
            if len(scored) > cfg.max_pairs or len(scored) > 1:
                scored = heapq.nsmallest(cfg.max_pairs, scored, key=lambda sp: (-sp[0], sp[1]))
            for score, pid in scored:
                cand = posts[pid]
                changed = self._offer(state, batch, post, cand, score)
                changed = self._offer(state, batch, cand, post, score) or changed
                if changed and score > previous.get(pid, -1.0):
                    shared_keys = own_keys.intersection(cand.keys)
                    shared_tags = sorted([k[1:] for k in shared_keys if k[0] == "#"])
                    shared = [k for k in shared_keys if k[0] != "#"]
                    terms = sorted(shared, key=lambda t: (-weights[t], t))[:8]
                    need, offer = (post, cand) if post.kind == "need" else (cand, post)
                    out.messages.append(self._message(ev, need, offer, score, shared_tags, terms))

        while len(posts) > cfg.max_open_posts:
            self._close(state, batch, next(iter(posts.values())), resolved=False)

    def _offer(
        self, state: MatchState, batch: _Batch, holder: OpenPost, cand: OpenPost, score: float
    ) -> bool:
        """Put ``cand`` into ``holder``'s top-k if it belongs there; True if that list changed."""
        top = holder.top
        old = top.get(cand.pid)
        if old is not None:
            if score <= old:
                return False
        elif len(top) >= self.config.k:
            if score < min(top.values()):
                return False
            worst = max(top, key=lambda p: (-top[p], p))
            if (-score, cand.pid) >= (-top[worst], worst):
                return False
            del top[worst]
            state.posts[worst].listed_in.pop(holder.pid, None)
        top[cand.pid] = score
        cand.listed_in[holder.pid] = None
        batch.touched[holder.pid] = None
        return True

    def _close(self, state: MatchState, batch: _Batch, post: OpenPost, resolved: bool) -> None:
        """Take ``post`` out of the index and of every top-k; its key is deleted at the end of the batch
        (unless it reopens in the same batch, then it is rewritten)."""
        pid = post.pid
        del state.posts[pid]
        index = state.index[post.kind]
        for key in post.keys:
            postings = index.get(key)
            if postings is not None and postings.pop(pid, 0) is None and not postings:
                del index[key]
        for h in post.listed_in:
            holder = state.posts[h]
            del holder.top[pid]
            batch.touched[h] = None
        for c in post.top:
            state.posts[c].listed_in.pop(pid, None)
        batch.touched.pop(pid, None)
        batch.closed[pid] = None
        if resolved and post.kind == "need":
            for member in post.repliers:
                self._credit(state, member, 1)

    def _expire(self, state: MatchState, batch: _Batch) -> None:
        """Close posts whose TTL passed (arrival order ≈ event-time order, within the allowed
        disorder of the stream: a post can outlive its TTL by at most that much)."""
        deadline = state.clock - self.config.ttl_ms
        posts = state.posts
        while posts:
            first = next(iter(posts.values()))
            if first.ts > deadline:
                break
            self._close(state, batch, first, resolved=False)

    def _message(
        self, ev: Post, need: OpenPost, offer: OpenPost, score: float, tags: list[str], terms: list[str]
    ) -> OutgoingMessage:
        return OutgoingMessage(
            self.config.topic,
            ev.community,
            {
                "need": need.pid,
                "offer": offer.pid,
                "need_member": need.member,
                "offer_member": offer.member,
                "community": ev.community,
                "score": score,
                "reasons": {"shared_tags": tags, "matched_terms": terms},
                "ts": ev.ts,
            },
        )
