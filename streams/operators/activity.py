"""The activity score operator: A = w1·I + w2·C + w3·H per community and event-time window.

:class:`ActivityWindow` turns a batch of applied (validated, on-time, de-duplicated) events
into *deltas* per (community, window): interactions and posts to add, and each member's
contribution to add.  Deltas merge commutatively (HINCRBY / ZINCRBY), so the store can apply
them atomically with the batch's offsets and compute C and the score from what it holds —
no window state has to live in the worker, and nothing has to be restored after a crash.

>>> from schemas.events import Post, Reaction
>>> op = ActivityWindow(window_seconds=3600)
>>> changes = op.apply_batch([
...     Post("e1", "c1", "ann", 7_200_000, "p1", "hi", "post", (), None),
...     Reaction("e2", "c1", "bob", 7_300_000, "p1", "like"),
... ])
>>> changes[("c1", 7200)]
WindowDelta(interactions=1, posts=1, members={'ann': 1.0, 'bob': 0.5})
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.events import Event, Post


@dataclass(slots=True)
class WindowDelta:
    """What one batch adds to one community window."""

    interactions: int = 0
    posts: int = 0
    members: dict[str, float] = field(default_factory=dict)


def window_start(ts_ms: int, window_seconds: int) -> int:
    """Epoch-aligned start (seconds) of the tumbling window holding ``ts_ms``.

    >>> window_start(7_199_999, 3600), window_start(7_200_000, 3600)
    (3600, 7200)
    """
    return ts_ms // 1000 // window_seconds * window_seconds


class ActivityWindow:
    """Per-community activity deltas for tumbling event-time windows (stateless between batches)."""

    def __init__(
        self,
        window_seconds: int,
        member_post_weight: float = 1.0,
        member_reaction_weight: float = 0.5,
        member_rsvp_weight: float = 0.5,
    ) -> None:
        self.window_seconds = window_seconds
        self.member_post_weight = member_post_weight
        self.member_interaction_weight = {"Reaction": member_reaction_weight, "Rsvp": member_rsvp_weight}

    def apply_batch(self, events: Iterable[Event]) -> dict[tuple[str, int], WindowDelta]:
        """Deltas keyed by (community, window start in epoch seconds)."""
        size = self.window_seconds
        deltas: dict[tuple[str, int], WindowDelta] = {}
        post_weight = self.member_post_weight
        interaction_weight = self.member_interaction_weight
        for ev in events:
            key = (ev.community, ev.ts // 1000 // size * size)
            delta = deltas.get(key)
            if delta is None:
                delta = deltas[key] = WindowDelta()
            if ev.__class__ is Post:
                delta.posts += 1
                weight = post_weight
            else:
                delta.interactions += 1
                weight = interaction_weight[ev.__class__.__name__]
            members = delta.members
            members[ev.member] = members.get(ev.member, 0.0) + weight
        return deltas


def activity_score(
    interactions: int, participants: int, posts: int, weights: tuple[float, float, float]
) -> float:
    """The design's formula, evaluated in one fixed order so every store computes the same float.

    >>> activity_score(3, 2, 1, (0.5, 0.3, 0.2))  # not 2.3: hence one order, everywhere
    2.3000000000000003
    """
    w_i, w_c, w_h = weights
    return w_i * interactions + w_c * participants + w_h * posts
