"""Meetup turnout: how many members who said ``going`` will check in (``attended``)?

Per meetup, the operator follows every member's latest RSVP.  A going member gets a
probability of attending from the community's :class:`~online_models.turnout.AttendanceModel`
when they RSVP, and the meetup's predicted turnout is the sum over its going members.

Predict, then learn, in event time (the community's highest ``ts``):

* at ``starts_at`` the meetup **freezes**: each going member's probability is recomputed once
  with the current model and member history and kept; that frozen sum is the turnout forecast
  (RSVP changes after the start no longer move it);
* ``attended`` events are recorded (a check-in from a member who was not going is a walk-in,
  not a label);
* ``check_in_ms`` after the start the meetup **ends**: each frozen probability is scored
  (log loss, and the community's base rate's as the baseline), then the model learns the
  outcome — attended, or a no-show — and the member's history is updated.  A meetup of 5 or
  more going members without a single check-in is not learned (check-ins were probably not
  recorded: learning it would teach "nobody comes").

Learning a meetup's outcomes together (at its end, in RSVP order) also keeps positives, which
arrive during the meetup, from being learned before the negatives, which only exist at the end.

Redis, for every meetup a batch touched (and once more when it ends)::

    HSET pulse:meetup:{community}:{meetup} community <c> going <n> maybe <n> cancelled <n>
         predicted_turnout <float> capacity <n|""> predicted_fill <turnout/capacity|"">
         attended <going members checked in> walk_ins <n> starts_at <ms|""> state <open|started|ended>
    EXPIRE pulse:meetup:{community}:{meetup} <retention_seconds>

and, per community, the progressive validation so far (whenever outcomes were learned)::

    HSET pulse:turnout:{community} log_loss <model> log_loss_base_rate <base rate> labels <n scored>

Bounded memory per community: ``max_meetups`` open meetups (beyond: the least recently
updated is dropped unlearned), ``max_rsvps`` members per meetup (later RSVPs ignored),
``max_members`` member histories (LRU).  Meetups end ``check_in_ms`` after their start;
meetups without ``starts_at`` are dropped ``stale_ms`` after their last RSVP.  RSVPs for a
meetup that would already have ended are ignored.

>>> from schemas.events import Rsvp
>>> op = TurnoutPredictor()
>>> states = {"c1": op.new_state("c1")}
>>> start = 1_767_571_200_000
>>> out = op.apply_batch(states, [
...     Rsvp("e1", "c1", "ann", start - 86_400_000, "m1", "going", (), start, 20),
...     Rsvp("e2", "c1", "bob", start - 3_600_000, "m1", "going", (), start, 20),
...     Rsvp("e3", "c1", "cy", start - 3_600_000, "m1", "maybe", (), start, 20)])
>>> cmd = out.commands[0]; fields = dict(zip(cmd[2::2], cmd[3::2]))
>>> cmd[:2], fields["going"], fields["maybe"], fields["predicted_turnout"], fields["predicted_fill"]
(['HSET', 'pulse:meetup:c1:m1'], 2, 1, '1.0', '0.05')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from river import metrics

from online_models.turnout import AttendanceModel, BaseRate, MemberStats
from schemas.events import Event, Rsvp
from streams import keys
from streams.operators.base import Observation, Output, RedisCommand

if TYPE_CHECKING:
    from streams.config import Settings

HOUR_MS = 3_600_000
_COUNTED = ("going", "maybe", "cancelled", "declined")
_NEVER = 2**62


@dataclass(slots=True)
class MeetupState:
    """One open meetup.  ``rsvps``: member → [latest status, ts of the last going, wavered]."""

    meetup: str
    starts_at: int | None
    capacity: int | None
    last_ts: int
    rsvps: dict[str, list] = field(default_factory=dict)  # type: ignore[type-arg]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTED, 0))
    probs: dict[str, float] = field(default_factory=dict)  # going member → P(attend), before the start
    frozen: dict[str, tuple[dict[str, float], float, float]] | None = None  # member → (x, p, base rate)
    frozen_turnout: float = 0.0
    checked_in: set[str] = field(default_factory=set)  # every member who checked in


@dataclass(slots=True)
class TurnoutState:
    """One community's turnout state (pickled into its snapshot, see :mod:`streams.operators.runner`)."""

    community: str
    model: AttendanceModel
    base: BaseRate
    members: MemberStats
    log_loss: metrics.LogLoss = field(default_factory=metrics.LogLoss)
    log_loss_base: metrics.LogLoss = field(default_factory=metrics.LogLoss)
    meetups: dict[str, MeetupState] = field(default_factory=dict)
    clock: int = 0  # highest event time (ms) seen for the community
    next_due: int = _NEVER  # earliest freeze / end / stale time of any meetup
    activity: float = 0.0  # events per hour, exponentially weighted over completed hours
    activity_hour: int = -1
    activity_count: int = 0
    labels: int = 0  # outcomes scored and learned
    ignored: int = 0  # RSVPs for ended meetups, or beyond ``max_rsvps``


@dataclass(frozen=True, slots=True)
class TurnoutConfig:
    """Every knob of the meetup-turnout operator."""

    check_in_ms: int = 4 * HOUR_MS
    max_meetups: int = 64
    max_rsvps: int = 2_000
    max_members: int = 5_000
    stale_ms: int = 30 * 24 * HOUR_MS
    retention_seconds: int = 7 * 86_400
    learning_rate: float = 0.01
    intercept_lr: float = 0.002
    meetup_features: bool = False
    prior_strength: float = 2.0
    activity_rate: float = 0.1


class TurnoutPredictor:
    """The ``turnout`` operator (see the module docstring for what it writes and why)."""

    name = "turnout"
    reads_text = False  # counts only: the runner may skip the text stage

    def __init__(self, config: TurnoutConfig | None = None, **overrides: Any) -> None:
        """``config`` (defaults: :class:`TurnoutConfig`), any field overridden by keyword."""
        c = self.config = replace(config or TurnoutConfig(), **overrides)
        self.check_in_ms = c.check_in_ms
        self.max_meetups = c.max_meetups
        self.max_rsvps = c.max_rsvps
        self.max_members = c.max_members
        self.stale_ms = c.stale_ms
        self.retention_seconds = c.retention_seconds
        self.learning_rate = c.learning_rate
        self.intercept_lr = c.intercept_lr
        self.meetup_features = c.meetup_features
        self.prior_strength = c.prior_strength
        self.activity_rate = c.activity_rate

    @classmethod
    def from_settings(cls, settings: Settings) -> TurnoutPredictor:
        """Meetup keys expire like window keys (``PULSE_RETENTION_SECONDS``)."""
        return cls(retention_seconds=settings.retention_seconds)

    def new_state(self, community: str) -> TurnoutState:
        return TurnoutState(
            community=community,
            model=AttendanceModel(self.learning_rate, self.intercept_lr, self.meetup_features),
            base=BaseRate(),
            members=MemberStats(self.max_members, self.prior_strength),
        )

    def apply_batch(self, states: dict[str, TurnoutState], events: Sequence[Event]) -> Output:
        out = Output()
        touched: dict[tuple[str, str], None] = {}  # (community, meetup), in first-touch order
        labels_before: dict[str, int] = {}
        for ev in events:
            st = states[ev.community]
            if ev.community not in labels_before:
                labels_before[ev.community] = st.labels
            ts = ev.ts
            hour = ts // HOUR_MS
            if hour == st.activity_hour:
                st.activity_count += 1
            elif hour > st.activity_hour:
                self._roll_activity(st, hour)
            if ts > st.clock:
                st.clock = ts
                if ts >= st.next_due:
                    self._due(st, out)
            if ev.__class__ is Rsvp:
                m = self._rsvp(st, ev)  # type: ignore[arg-type]
                if m is not None:
                    touched[(ev.community, m.meetup)] = None
        for community, meetup in touched:
            st = states[community]
            m = st.meetups.get(meetup)
            if m is not None:  # (an ended one was published when it ended)
                out.commands += self._publish(st, m, "open" if m.frozen is None else "started")
        for community, before in labels_before.items():
            st = states[community]
            if st.labels != before:
                loss, base = st.log_loss.get(), st.log_loss_base.get()
                out.observations.append(Observation("turnout_log_loss", community, loss))
                out.observations.append(Observation("turnout_log_loss_base", community, base))
                out.commands.append(
                    ["HSET", keys.turnout(community), "log_loss", round(loss, 6),
                     "log_loss_base_rate", round(base, 6), "labels", st.labels]
                )  # fmt: skip
        return out

    # --- events ----------------------------------------------------------------------------------
    def _roll_activity(self, st: TurnoutState, hour: int) -> None:
        if st.activity_hour >= 0:
            keep = 1.0 - self.activity_rate
            st.activity = keep * st.activity + self.activity_rate * st.activity_count
            st.activity *= keep ** min(hour - st.activity_hour - 1, 1000)  # empty hours in between
        st.activity_hour = hour
        st.activity_count = 1

    def _rsvp(self, st: TurnoutState, ev: Rsvp) -> MeetupState | None:
        m = st.meetups.get(ev.meetup)
        if m is None:
            if ev.starts_at is not None and ev.starts_at + self.check_in_ms <= st.clock:
                st.ignored += 1  # its meetup has ended (and was learned, or never seen)
                return None
            if len(st.meetups) >= self.max_meetups:
                oldest = min(st.meetups.values(), key=lambda x: (x.last_ts, x.meetup))
                del st.meetups[oldest.meetup]  # dropped unlearned; its Redis key expires
            m = st.meetups[ev.meetup] = MeetupState(ev.meetup, ev.starts_at, ev.capacity, ev.ts)
            st.next_due = min(st.next_due, self._due_at(m))
        m.last_ts = max(m.last_ts, ev.ts)
        if m.frozen is None:
            if ev.starts_at is not None and ev.starts_at != m.starts_at:
                m.starts_at = ev.starts_at  # rescheduled
                st.next_due = min(st.next_due, self._due_at(m))
            if ev.capacity is not None:
                m.capacity = ev.capacity
        member, status = ev.member, ev.status
        if status == "attended":
            if m.frozen is None:  # a check-in: it has started, whatever the clock says
                if m.starts_at is None:
                    m.starts_at = ev.ts
                self._freeze(st, m)
                st.next_due = min(st.next_due, self._due_at(m))
            if len(m.checked_in) < self.max_rsvps:
                m.checked_in.add(member)
            return m
        rsvp = m.rsvps.get(member)
        previous = rsvp[0] if rsvp is not None else None
        if previous == status:
            return m
        if rsvp is None:
            if len(m.rsvps) >= self.max_rsvps:
                st.ignored += 1
                return None
            rsvp = m.rsvps[member] = [status, 0, False]
        elif previous is not None:
            m.counts[previous] -= 1
            rsvp[0] = status
        m.counts[status] += 1
        if status == "going":
            rsvp[1] = ev.ts
            rsvp[2] = rsvp[2] or previous == "maybe"
            if m.frozen is None:
                m.probs[member] = st.model.predict_one(self._features(st, m, member, rsvp))
        else:
            m.probs.pop(member, None)
        return m

    def _features(self, st: TurnoutState, m: MeetupState, member: str, rsvp: list) -> dict[str, float]:  # type: ignore[type-arg]
        going, came = st.members.get(member)
        counts = m.counts
        n_going = counts["going"]
        return st.model.features(
            rate=st.members.rate(going, came, st.base.predict_one()),
            history=going,
            lead_ms=None if m.starts_at is None else m.starts_at - rsvp[1],
            wavered=rsvp[2],
            cancel_ratio=counts["cancelled"] / max(1, n_going + counts["cancelled"]),
            maybe_ratio=counts["maybe"] / max(1, n_going + counts["maybe"]),
            fill=None if not m.capacity else n_going / m.capacity,
            activity=st.activity,
        )

    # --- meetup life cycle -------------------------------------------------------------------------
    def _due_at(self, m: MeetupState) -> int:
        if m.starts_at is None:
            return m.last_ts + self.stale_ms
        return m.starts_at if m.frozen is None else m.starts_at + self.check_in_ms

    def _due(self, st: TurnoutState, out: Output) -> None:
        """Freeze, end or drop every meetup whose time has come, earliest first."""
        clock = st.clock
        due = sorted((self._due_at(m), m.meetup) for m in st.meetups.values() if self._due_at(m) <= clock)
        for _, meetup in due:
            m = st.meetups[meetup]
            if m.starts_at is None:
                del st.meetups[meetup]  # no start, no RSVP for ``stale_ms``: nothing to learn
                continue
            if m.frozen is None:
                self._freeze(st, m)
                out.commands += self._publish(st, m, "started")
            if m.starts_at + self.check_in_ms <= clock:
                self._end(st, m, out)
        st.next_due = min((self._due_at(m) for m in st.meetups.values()), default=_NEVER)

    def _freeze(self, st: TurnoutState, m: MeetupState) -> None:
        base = st.base.predict_one()
        frozen = m.frozen = {}
        for member in m.probs:  # the going members, in RSVP order
            x = self._features(st, m, member, m.rsvps[member])
            frozen[member] = (x, st.model.predict_one(x), base)
        m.frozen_turnout = sum(p for _, p, _ in frozen.values())
        m.probs = {}

    def _end(self, st: TurnoutState, m: MeetupState, out: Output) -> None:
        frozen = m.frozen or {}
        came = m.checked_in
        if any(member in came for member in frozen) or len(frozen) < 5:
            for member, (x, p, base) in frozen.items():
                y = member in came
                st.log_loss.update(y, p)  # scored before learning
                st.log_loss_base.update(y, base)
                st.model.learn_one(x, y)
                st.base.learn_one(y)
                st.members.record(member, y)
                st.labels += 1
        out.commands += self._publish(st, m, "ended")
        del st.meetups[m.meetup]

    def _publish(self, st: TurnoutState, m: MeetupState, state: str) -> list[RedisCommand]:
        if m.frozen is None:
            going = m.counts["going"]
            turnout = sum(m.probs.values())
            attended = 0
        else:
            going = len(m.frozen)
            turnout = m.frozen_turnout
            attended = sum(1 for member in m.frozen if member in m.checked_in)
        key = keys.meetup(st.community, m.meetup)
        command: RedisCommand = [
            "HSET", key, "community", st.community,
            "going", going, "maybe", m.counts["maybe"], "cancelled", m.counts["cancelled"],
            "predicted_turnout", _num(turnout),
            "capacity", "" if m.capacity is None else m.capacity,
            "predicted_fill", _num(turnout / m.capacity) if m.capacity else "",
            "attended", attended, "walk_ins", len(m.checked_in) - attended,
            "starts_at", "" if m.starts_at is None else m.starts_at, "state", state,
        ]  # fmt: skip
        return [command, ["EXPIRE", key, self.retention_seconds]]


def _num(value: float) -> str:
    return repr(round(value, 4))
