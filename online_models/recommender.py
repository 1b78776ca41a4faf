"""Member → meetup affinity: river's ``reco.BiasedMF`` plus a tag profile, bounded in memory.

Meetups are short-lived items: most are recommended while they have few RSVPs, the classic
cold start of collaborative filtering, and in an online single pass a member's latent vector
learns slowly from a handful of RSVPs.  So the score adds two parts:

* collaborative — river ``reco.BiasedMF`` (``r = μ + b_u + b_i + u·v_i``) over meetups
  (``m:<id>``) and, with ``tag_weight > 0`` (off by default: no gain measured, twice the
  learning cost), over their tags as extra items (``t:<tag>``, folded into a meetup's score as
  ``tag_weight · mean_t(b_t + u·v_t)``);
* content — the member's tag profile from positive RSVPs and reactions to tagged posts:
  ``content_weight · mean_t log(lift_t)``, the smoothed lift of each of the meetup's tags in the
  member's positives over all positives (``prior`` pseudo-counts of the community's mix, so an
  unknown member scores 0 and tags everybody has, like ``meetup``, score about 0).

Unknown members fall back to the item biases, i.e. to popularity.  Measured on the labeled
stream of :mod:`studies.evaluate_matching`, the content part carries most of the hit rate;
the factorisation adds meetup-specific effects (who else is going).

Bounded memory: members and items are kept in least-recently-used order and evicted beyond
``max_users`` / ``max_items`` (biases, latent vectors and profile deleted); a profile keeps its
``max_profile_tags`` heaviest tags; the operator calls :meth:`forget_item` when a meetup is over.
Snapshots pickle the latent vectors as two float64 matrices instead of one numpy object per key
(about 3x faster) and restore them bit for bit, so a restored model continues exactly.

>>> aff = MeetupAffinity(seed=1)
>>> for _ in range(30):
...     aff.learn_one("ann", "m1", 1.0, tags=("ai", "llm"))
...     aff.learn_one("ann", "m2", 0.0, tags=("hiring",))
...     aff.learn_one("bob", "m2", 1.0, tags=("hiring",))
>>> aff.predict_one("ann", "m3", tags=("ai",)) > aff.predict_one("ann", "m4", tags=("hiring",))
True
>>> import pickle
>>> clone = pickle.loads(pickle.dumps(aff))
>>> clone.predict_one("ann", "m1", ("ai",)) == aff.predict_one("ann", "m1", ("ai",))
True
"""

from __future__ import annotations

import copy
import functools
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from river import optim, reco

__all__ = ["MeetupAffinity"]


def _meetup_key(meetup: str) -> str:
    return f"m:{meetup}"


def _tag_key(tag: str) -> str:
    return f"t:{tag}"


class MeetupAffinity:
    """River-style recommender: :meth:`learn_one` / :meth:`predict_one`, plus batch :meth:`score_many`."""

    def __init__(
        self,
        n_factors: int = 8,
        learning_rate: float = 0.05,
        l2: float = 0.01,
        tag_weight: float = 0.0,
        content_weight: float = 1.0,
        prior: float = 2.0,
        max_users: int = 2_000,
        max_items: int = 1_000,
        max_profile_tags: int = 32,
        init_std: float = 0.1,
        seed: int = 7,
    ) -> None:
        self.n_factors = n_factors
        self.tag_weight = tag_weight
        self.content_weight = content_weight
        self.prior = prior
        self.max_users = max_users
        self.max_items = max_items
        self.max_profile_tags = max_profile_tags
        self.model = reco.BiasedMF(
            n_factors=n_factors,
            bias_optimizer=optim.SGD(learning_rate),
            latent_optimizer=optim.SGD(learning_rate),
            l2_bias=l2,
            l2_latent=l2,
            latent_initializer=optim.initializers.Normal(mu=0.0, sigma=init_std, seed=seed),
            clip_gradient=5.0,
            seed=seed,
        )
        self._users: dict[Any, None] = {}  # LRU order (oldest first) of what the model holds
        self._items: dict[Any, None] = {}
        self.profiles: dict[str, dict[str, float]] = {}  # member → tag → positive mass
        self.tag_mass: dict[str, float] = {}  # tag → positive mass over all members
        self.total_mass = 0.0

    # -- learning -------------------------------------------------------------------------------

    def learn_one(self, user: str, item: str, y: float, tags: Sequence[str] = ()) -> None:
        """One observation ``y`` (1 joined, 0 declined / not chosen) for a meetup and its tags."""
        self._learn(user, _meetup_key(item), y)
        self.learn_tags(user, tags, y)

    def learn_tags(self, user: str, tags: Sequence[str], y: float) -> None:
        """Interest ``y`` in topics (also without a meetup: a reaction to a tagged post)."""
        if self.tag_weight:
            for tag in tags:
                self._learn(user, _tag_key(tag), y)
        if y > 0 and tags:
            self._touch_user(user)
            profile = self.profiles.setdefault(user, {})
            mass = self.tag_mass
            for tag in tags:
                profile[tag] = profile.get(tag, 0.0) + y
                mass[tag] = mass.get(tag, 0.0) + y
            self.total_mass += y * len(tags)
            if len(profile) > self.max_profile_tags:
                del profile[min(profile, key=lambda t: (profile[t], t))]
            if len(mass) > self.max_items:
                lightest = min(mass, key=lambda t: (mass[t], t))
                self.total_mass -= mass.pop(lightest)

    def _learn(self, user: str, item: str, y: float) -> None:
        self._mf_learn_one(user, item, y)
        self._touch_user(user)
        items = self._items
        items.pop(item, None)
        items[item] = None
        if len(items) > self.max_items:
            self._evict_item(next(iter(items)))

    def _mf_learn_one(self, user: str, item: str, y: float) -> None:
        """``reco.BiasedMF.learn_one`` (squared loss, constant-rate SGD) without river's per-call
        dispatch: the same float operations in the same order, so the model is bit for bit the one
        river would hold (checked by a test against ``BiasedMF.learn_one``)."""
        m = self.model
        mean = m.global_mean
        mean.update(y)
        ub, ib, ul, il = m.u_biases, m.i_biases, m.u_latents, m.i_latents
        bu = ub[user]  # defaultdict lookups in river's order: the latent initialiser's RNG draws match
        bi = ib[item]
        u = ul[user]
        v = il[item]
        y_pred = mean.get()
        y_pred += bu
        y_pred += bi
        y_pred += np.dot(u, v)
        g = 2 * (y_pred.item() - y)
        clip = m.clip_gradient
        g = max(min(g, clip), -clip)
        l2b, l2l = m.l2_bias, m.l2_latent
        u_grad = g * v + l2l * u
        i_grad = g * u + l2l * v
        # river's optimiser step for each of the four weights, in its order, unrolled
        opt = m.u_bias_optimizer
        ub[user] = bu - opt.learning_rate * (g + l2b * bu)
        opt.n_iterations += 1
        opt = m.i_bias_optimizer
        ib[item] = bi - opt.learning_rate * (g + l2b * bi)
        opt.n_iterations += 1
        opt = m.u_latent_optimizer
        u -= opt.learning_rate * u_grad  # in place, as river's ``w[key] -= ...``: u is ul[user]
        opt.n_iterations += 1
        opt = m.i_latent_optimizer
        v -= opt.learning_rate * i_grad
        opt.n_iterations += 1

    def _touch_user(self, user: str) -> None:
        users = self._users
        users.pop(user, None)
        users[user] = None
        if len(users) > self.max_users:
            self._evict_user(next(iter(users)))

    def _evict_user(self, user: Any) -> None:
        m = self.model
        del self._users[user]
        m.u_biases.pop(user, None)
        m.u_latents.pop(user, None)
        self.profiles.pop(user, None)

    def _evict_item(self, item: Any) -> None:
        m = self.model
        del self._items[item]
        m.i_biases.pop(item, None)
        m.i_latents.pop(item, None)

    def forget_item(self, meetup: str) -> None:
        """Drop a meetup's bias and factors (it is over; its tags stay)."""
        if _meetup_key(meetup) in self._items:
            self._evict_item(_meetup_key(meetup))

    def forget_user(self, user: str) -> None:
        if user in self._users:
            self._evict_user(user)

    # -- prediction (never inserts: river's defaultdicts would grow on every lookup) -------------

    def content(self, user: str, tags: Sequence[str]) -> float:
        """Mean log smoothed lift of ``tags`` in ``user``'s positives (0: no evidence either way)."""
        profile = self.profiles.get(user)
        if not profile or not tags or not self.total_mass:
            return 0.0
        n_u = sum(profile.values())
        total, mass, prior = self.total_mass, self.tag_mass, self.prior
        score = 0.0
        for t in tags:
            share = mass.get(t, 0.0) / total
            if share > 0.0:
                score += math.log((profile.get(t, 0.0) + prior * share) / ((n_u + prior) * share))
        return score / len(tags)

    def _item_part(self, item: str, user_vec: np.ndarray | None) -> float:
        m = self.model
        b = m.i_biases.get(item, 0.0)
        if user_vec is None:
            return b
        v = m.i_latents.get(item)
        return b if v is None else b + float(np.dot(user_vec, v))

    def predict_one(self, user: str, item: str, tags: Sequence[str] = ()) -> float:
        """Affinity of ``user`` for meetup ``item`` with ``tags`` (higher: more likely to join)."""
        m = self.model
        u = m.u_latents.get(user)
        score = m.global_mean.get() + m.u_biases.get(user, 0.0) + self._item_part(_meetup_key(item), u)
        if tags and self.tag_weight:
            parts = [self._item_part(_tag_key(t), u) for t in tags]
            score += self.tag_weight * sum(parts) / len(parts)
        if self.content_weight:
            score += self.content_weight * self.content(user, tags)
        return score

    def item_vectors(self, meetups: Sequence[tuple[str, Sequence[str]]]) -> tuple[np.ndarray, np.ndarray]:
        """Bias vector and factor matrix of meetups as the collaborative part sees them (tags
        folded in), computed once per batch so ranking a member over every upcoming meetup is one
        matrix-vector product (:meth:`score_many`)."""
        m = self.model
        zeros = np.zeros(self.n_factors)
        if not self.tag_weight:  # the default: one lookup per meetup, one copy of the rows
            ib, il = m.i_biases, m.i_latents
            item_keys = [_meetup_key(meetup) for meetup, _ in meetups]
            rows = [il.get(key, zeros) for key in item_keys]
            return (
                np.array([ib.get(key, 0.0) for key in item_keys], dtype=float),
                np.array(rows) if rows else np.zeros((0, self.n_factors)),
            )
        biases = np.zeros(len(meetups))
        vectors = np.zeros((len(meetups), self.n_factors))
        w = self.tag_weight
        for row, (meetup, tags) in enumerate(meetups):
            key = _meetup_key(meetup)
            b = m.i_biases.get(key, 0.0)
            v = m.i_latents.get(key, zeros).copy()
            if tags and w:
                share = w / len(tags)
                for t in tags:
                    b += share * m.i_biases.get(_tag_key(t), 0.0)
                    tv = m.i_latents.get(_tag_key(t))
                    if tv is not None:
                        v += share * tv
            biases[row] = b
            vectors[row] = v
        return biases, vectors

    def score_many(
        self, user: str, biases: np.ndarray, vectors: np.ndarray, tags: Sequence[Sequence[str]] = ()
    ) -> np.ndarray:
        """Scores of ``user`` for the meetups of :meth:`item_vectors` (same order; ``tags`` of each)."""
        m = self.model
        base = m.global_mean.get() + m.u_biases.get(user, 0.0)
        u = m.u_latents.get(user)
        scores = base + biases if u is None else base + biases + vectors @ u
        if self.content_weight and tags and user in self.profiles:
            scores += self.content_weight * np.array(self.content_many(user, tags))
        return scores

    def scorer(
        self, biases: Sequence[float], vectors: np.ndarray, tags: Sequence[Sequence[str]] = ()
    ) -> Callable[[str], list[float]]:
        """:meth:`score_many` of one user at a time as a list, for many users over the same meetups
        (one batch's ranking: the model does not change meanwhile).  What depends on the meetups
        only (the global mean, each tag's share of all positives) is computed once, and numpy's
        per-call cost is paid only for the matrix product on the few meetups a community has
        upcoming: the same float operations as :meth:`score_many` and :meth:`content_many`."""
        m = self.model
        mean = m.global_mean.get()
        u_biases, u_latents, profiles = m.u_biases, m.u_latents, self.profiles
        w, prior, total = self.content_weight, self.prior, self.total_mass
        shares: dict[str, tuple[float, float]] = {}  # tag → (share of all positives, prior mass)
        if total:
            mass = self.tag_mass
            for tag_list in tags:
                for t in tag_list:
                    if t not in shares:
                        share = mass.get(t, 0.0) / total
                        shares[t] = (share, prior * share)
        log = math.log

        def scores(user: str) -> list[float]:
            base = mean + u_biases.get(user, 0.0)
            u = u_latents.get(user)
            if u is None:
                out = [base + b for b in biases]
            else:
                out = [base + b + d for b, d in zip(biases, (vectors @ u).tolist(), strict=True)]
            if w and tags and user in profiles:
                profile = profiles[user]
                if not profile or not total:
                    return [s + w * 0.0 for s in out]
                n_u = sum(profile.values())
                get, scale = profile.get, n_u + prior
                lift = {
                    t: log((get(t, 0.0) + pseudo) / (scale * share)) if share else 0.0
                    for t, (share, pseudo) in shares.items()
                }
                for i, tag_list in enumerate(tags):
                    c = 0.0
                    for t in tag_list:
                        c += lift[t]
                    out[i] += w * (c / len(tag_list) if tag_list else 0.0)
            return out

        return scores

    def content_many(self, user: str, tag_lists: Sequence[Sequence[str]]) -> list[float]:
        """:meth:`content` of many meetups, each tag's lift computed once (meetups share tags)."""
        profile = self.profiles.get(user)
        if not profile or not self.total_mass:
            return [0.0] * len(tag_lists)
        n_u = sum(profile.values())
        total, mass, prior = self.total_mass, self.tag_mass, self.prior
        lift: dict[str, float] = {}
        out = []
        for tags in tag_lists:
            score = 0.0
            for t in tags:
                value = lift.get(t)
                if value is None:
                    share = mass.get(t, 0.0) / total
                    value = (
                        math.log((profile.get(t, 0.0) + prior * share) / ((n_u + prior) * share))
                        if share
                        else 0.0
                    )
                    lift[t] = value
                score += value
            out.append(score / len(tags) if tags else 0.0)
        return out

    def __len__(self) -> int:
        return len(self._users) + len(self._items)

    # -- compact, exact snapshots ---------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        m = self.model
        shell = copy.copy(m)  # optimisers, initialiser (with its RNG state), global mean: shared, small
        for name in ("u_biases", "i_biases", "u_latents", "i_latents"):
            setattr(shell, name, None)
        state = {k: v for k, v in self.__dict__.items() if k != "model"}
        state["shell"] = shell
        for side in ("u", "i"):
            biases, latents = getattr(m, f"{side}_biases"), getattr(m, f"{side}_latents")
            keys = list(latents)
            state[f"{side}_keys"] = keys
            state[f"{side}_matrix"] = (
                np.stack([latents[k] for k in keys]) if keys else np.zeros((0, self.n_factors))
            )
            state[f"{side}_biases"] = dict(biases)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        m = state.pop("shell")
        factory = functools.partial(m.latent_initializer, shape=m.n_factors)
        for side in ("u", "i"):
            keys, matrix = state.pop(f"{side}_keys"), state.pop(f"{side}_matrix")
            latents: defaultdict[Any, np.ndarray] = defaultdict(factory)
            for k, row in zip(keys, matrix, strict=True):
                latents[k] = row.copy()
            setattr(m, f"{side}_latents", latents)
            setattr(m, f"{side}_biases", defaultdict(m.weight_initializer, state.pop(f"{side}_biases")))
        self.__dict__.update(state)
        self.model = m
