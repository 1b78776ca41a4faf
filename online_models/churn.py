"""Will a member still be active next week?  An online model of member activity, river style.

The label of a member at checkpoint ``T`` is "posts, reacts or RSVPs in (T, T + horizon]"
(7 days by default).  It only exists ``horizon`` later, so the operator predicts at ``T`` from
features known at ``T``, keeps those features, and learns them once the outcome is known —
never before (progressive validation: every prediction is scored before its label is learned).

Features (:func:`member_features`), each chosen for a reason:

* **recency** (days since the last action) — the strongest single signal, and the baseline;
* **frequency** — exponentially decayed action counts over ~1 and ~4 weeks, and decayed
  distinct active days (regularity: 10 actions on one day are not 10 visits);
* **trend** — the last week against the month's weekly average (activity that decays before
  a member leaves), and **overdue** — recency relative to the member's own usual gap;
* **tenure** — days since first seen;
* **engagement received** — share of the member's posts that got a reply or a positive
  reaction from someone else (smoothed toward ½);
* **sentiment** — exponentially weighted tone of what they write
  (:func:`online_models.sentiment.sentiment`: VADER compound for English, a character n-gram
  model for Chinese, so Chinese is *not* treated as neutral);
* **meetups** — RSVPs ``going`` and the share of them attended.

:class:`ActivityModel` is river's ``StandardScaler`` then ``LogisticRegression``;
:class:`RecencyBaseline` is the same on recency alone, learned side by side so the gain of
the other features is measured, not assumed.  :class:`BinnedAUC` scores both (ROC AUC from
two 100-bin histograms: ~1e-3 precise, a few hundred bytes in a snapshot).

:class:`MemberTable` keeps the per-member numbers as columns of ``array`` (float32 for
statistics, float64 for timestamps): ~120 bytes a member in a snapshot, against ~400 for a
dict of floats — the state is pickled into every snapshot.

>>> t = MemberTable()
>>> i = t.add("ann", ts=0)
>>> t.touch(i, ts=86_400_000); t.touch(i, ts=2 * 86_400_000)
>>> x = member_features(t, i, now=9 * 86_400_000)
>>> round(x["recency"], 3), round(x["active_days"], 3), x["posts"]
(2.079, 0.928, 0.0)
>>> model = ActivityModel(); model.observe(x); before = model.predict_one(x)
>>> model.learn_one(x, False); model.predict_one(x) < before
True
"""

from __future__ import annotations

import math
from array import array

from river import linear_model, optim, preprocessing

__all__ = [
    "FEATURES",
    "PRIOR",
    "ActivityModel",
    "BinnedAUC",
    "MemberTable",
    "RecencyBaseline",
    "member_features",
]

DAY_MS = 86_400_000
TAU_SHORT_MS = 7 * DAY_MS
TAU_LONG_MS = 28 * DAY_MS
SENTIMENT_RATE = 0.2
"""Weight of a new post in the member's sentiment average (≈ the last 5 posts)."""

FEATURES = (
    "recency", "overdue", "count_week", "count_month", "active_days", "trend", "tenure",
    "posts", "engaged_share", "sentiment", "going", "attended_share",
)  # fmt: skip
"""The model's inputs, in a fixed order (the table stores pending ones as columns x0, x1, ...)."""

_D_COLUMNS = ("first", "last", "pending", "after")
"""float64: event times (ms) — first and last action, pending checkpoint (0: none), first action after it."""
_F_COLUMNS = (
    "c7", "c28", "days", "posts", "engaged", "sent", "going", "attended", "p_model", "p_base",
    *(f"x{k}" for k in range(len(FEATURES))),
)  # fmt: skip
"""float32: decayed counts (as of ``last``), counters, sentiment, the pending predictions and features."""


class MemberTable:
    """Per-member numbers of one community, one ``array`` per column (row ``i`` = member ``ids[i]``).

    Removing a member moves the last row into its place (O(1)); row order therefore depends
    only on the event sequence, so snapshots are deterministic.  The id → row index is not
    pickled; it is rebuilt on load.
    """

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.cols: dict[str, array[float]] = {c: array("d") for c in _D_COLUMNS}
        self.cols.update({c: array("f") for c in _F_COLUMNS})
        self._bind()

    def _bind(self) -> None:
        """The columns every action updates, as attributes (the same arrays as in ``cols``): the
        dict look-ups were a third of a touch's cost.  Not pickled, bound again on load."""
        cols = self.cols
        self.last, self.c7, self.c28, self.days = cols["last"], cols["c7"], cols["c28"], cols["days"]
        self.pending, self.after = cols["pending"], cols["after"]
        self.posts, self.sent = cols["posts"], cols["sent"]
        self._stamped = (cols["first"], cols["last"])  # a new row's first and last action: its ts
        self._zeroed = [col for name, col in cols.items() if name not in ("first", "last")]

    def __getstate__(self) -> tuple[list[str], dict[str, array[float]]]:
        return self.ids, self.cols

    def __setstate__(self, state: tuple[list[str], dict[str, array[float]]]) -> None:
        self.ids, self.cols = state
        self.index = {m: i for i, m in enumerate(self.ids)}
        self._bind()

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, member: str, ts: int) -> int:
        """A new row (first seen at ``ts``, nothing counted yet); returns its index."""
        i = len(self.ids)
        self.ids.append(member)
        self.index[member] = i
        for col in self._stamped:
            col.append(ts)
        for col in self._zeroed:
            col.append(0.0)
        return i

    def remove(self, i: int) -> None:
        last = len(self.ids) - 1
        member = self.ids[i]
        if i != last:
            moved = self.ids[last]
            self.ids[i] = moved
            self.index[moved] = i
            for col in self.cols.values():
                col[i] = col[last]
        self.ids.pop()
        del self.index[member]
        for col in self.cols.values():
            col.pop()

    def touch(self, i: int, ts: int) -> None:
        """One action at ``ts``: decayed counts and active days, last seen, the label's first action."""
        last_col, c7, c28, days = self.last, self.c7, self.c28, self.days
        last = last_col[i]
        fresh = c28[i] == 0.0 and days[i] == 0.0
        if ts >= last:
            dt = ts - last
            c7[i] = c7[i] * math.exp(-dt / TAU_SHORT_MS) + 1.0
            c28[i] = c28[i] * math.exp(-dt / TAU_LONG_MS) + 1.0
            if fresh or ts // DAY_MS != last // DAY_MS:
                days[i] = days[i] * math.exp(-dt / TAU_LONG_MS) + 1.0
            last_col[i] = ts
        else:  # a late event: its contribution, decayed to the last action
            dt = last - ts
            c7[i] += math.exp(-dt / TAU_SHORT_MS)
            c28[i] += math.exp(-dt / TAU_LONG_MS)
        pending = self.pending[i]
        if pending and ts > pending:
            after = self.after
            if after[i] == 0.0 or ts < after[i]:
                after[i] = ts

    def post(self, i: int, tone: float) -> None:
        sent, posts = self.sent, self.posts
        sent[i] = tone if posts[i] == 0.0 else sent[i] + SENTIMENT_RATE * (tone - sent[i])
        posts[i] += 1.0


def member_features(t: MemberTable, i: int, now: int) -> dict[str, float]:
    """The features of row ``i`` at event time ``now`` (ms), from what happened up to ``now``."""
    cols = t.cols
    last = cols["last"][i]
    dt = max(0.0, now - last)
    c7 = cols["c7"][i] * math.exp(-dt / TAU_SHORT_MS)
    c28 = cols["c28"][i] * math.exp(-dt / TAU_LONG_MS)
    days = cols["days"][i] * math.exp(-dt / TAU_LONG_MS)
    recency = dt / DAY_MS
    usual_gap = 28.0 / max(days, 0.25)  # days between active days, at the member's own pace
    posts = cols["posts"][i]
    going = cols["going"][i]
    return {
        "recency": math.log1p(recency),
        "overdue": math.log1p(recency / usual_gap),
        "count_week": math.log1p(c7),
        "count_month": math.log1p(c28),
        "active_days": math.log1p(days),
        "trend": math.log((c7 + 0.5) / (c28 / 4.0 + 0.5)),
        "tenure": math.log1p(max(0.0, now - cols["first"][i]) / DAY_MS),
        "posts": math.log1p(posts),
        "engaged_share": (cols["engaged"][i] + 1.0) / (posts + 2.0),
        "sentiment": float(cols["sent"][i]),
        "going": math.log1p(going),
        "attended_share": (cols["attended"][i] + 1.0) / (going + 2.0),
    }


PRIOR = {"recency": -1.0, "overdue": -0.5, "active_days": 0.5, "trend": 0.3}
"""Initial weights (on standardised features): what every community's data says — recent,
regular members whose activity is not falling stay — so a community's first predictions,
before any label exists, already rank members sensibly.  Learning corrects them."""


class ActivityModel:
    """P(member active in the coming horizon | features): river's StandardScaler, then
    LogisticRegression (SGD), started from :data:`PRIOR`.

    The scaler is unsupervised: :meth:`observe` feeds it every member's features at every
    checkpoint (no label involved), so its statistics describe the population being ranked,
    long before the first label arrives.  Only the classifier waits for labels.
    """

    features: tuple[str, ...] = FEATURES

    def __init__(self, learning_rate: float = 0.01, l2: float = 1e-4, intercept: float = 1.0) -> None:
        self.scaler = preprocessing.StandardScaler()
        self.classifier = linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate), l2=l2, intercept_init=intercept, clip_gradient=5.0
        )
        for name, weight in PRIOR.items():
            if name in self.features:
                self.classifier._weights[name] = weight  # river has no per-feature initializer

    def _x(self, x: dict[str, float]) -> dict[str, float]:
        return x if len(self.features) == len(x) else {k: x[k] for k in self.features}

    def observe(self, x: dict[str, float]) -> None:
        """Update the feature statistics (unsupervised)."""
        self.scaler.learn_one(self._x(x))

    def predict_one(self, x: dict[str, float]) -> float:
        return float(self.classifier.predict_proba_one(self.scaler.transform_one(self._x(x)))[True])

    def learn_one(self, x: dict[str, float], active: bool) -> None:
        self.classifier.learn_one(self.scaler.transform_one(self._x(x)), active)


class RecencyBaseline(ActivityModel):
    """The same model on recency alone: what the other features have to beat."""

    features = ("recency",)


class BinnedAUC:
    """ROC AUC (river's ``update``/``get``) from positive and negative counts in ``bins``
    probability bins; pairs in the same bin count ½ (Mann-Whitney with ties).

    >>> auc = BinnedAUC()
    >>> for y, p in ((True, 0.9), (True, 0.6), (False, 0.4), (False, 0.65)):
    ...     auc.update(y, p)
    >>> auc.get()
    0.75
    """

    def __init__(self, bins: int = 100) -> None:
        self.pos = [0] * bins
        self.neg = [0] * bins

    def update(self, y: bool, p: float) -> None:
        k = min(len(self.pos) - 1, max(0, int(p * len(self.pos))))
        (self.pos if y else self.neg)[k] += 1

    def get(self) -> float | None:
        n_pos, n_neg = sum(self.pos), sum(self.neg)
        if not n_pos or not n_neg:
            return None
        below = 0  # negatives in lower bins
        wins = 0.0
        for pos, neg in zip(self.pos, self.neg, strict=True):
            wins += pos * (below + 0.5 * neg)
            below += neg
        return wins / (n_pos * n_neg)

    @property
    def n(self) -> int:
        return sum(self.pos) + sum(self.neg)
