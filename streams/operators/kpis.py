"""Operations KPIs per community and event-time window, as cohorts that mature.

Every KPI is attached to the window in which its subject *started* (the post, the need, the
meetup, the newcomer's first action), and follow-ups keep updating that window's hash until
its cohort closes — so a window's numbers are comparable with any other window's once
``final`` is 1, and visibly provisional before:

* **reply rate** — top-level posts (no ``reply_to``; not ``resolved``) that got a reply from
  another member within ``reply_horizon_seconds``, over top-level posts; **median time to
  first reply** (seconds) over the replied ones;
* **match success rate** — ``need`` posts resolved (a ``resolved`` post whose ``reply_to``
  names the need) within ``match_horizon_seconds``, over needs opened;
* **meetup fill rate** — check-ins (``attended``, walk-ins included) over capacity, for
  meetups with a capacity; **no-show rate** — members whose latest RSVP was ``going`` and who
  did not check in, over those going.  A meetup counts in the window of its ``starts_at``,
  once its check-in period (``check_in_seconds`` after the start) is over; meetups without
  ``starts_at`` are not counted (they cannot be placed);
* **return rate** — members first seen in the window who act again at least
  ``return_gap_seconds`` later (another visit) and within ``return_horizon_seconds``.

Redis, for every window a batch changed::

    HSET pulse:kpi:{community}:{size}s:{start}
         posts replied reply_rate median_first_reply_s
         needs_opened needs_resolved match_success_rate
         meetups capacity attended fill_rate going no_shows no_show_rate
         new_members returned return_rate  final <0|1>          (rates "" while undefined)
    EXPIRE ... retention_seconds

Observations (per community, when a window becomes final): ``kpi_reply_rate``,
``kpi_match_success_rate``, ``kpi_fill_rate``, ``kpi_no_show_rate``, ``kpi_return_rate``
over the last ``observation_windows`` final windows, and ``kpi_median_first_reply_seconds``
(median of their medians).

Bounded, compact state per community: post, need and member ids are kept as stable 64-bit
hashes (BLAKE2b; a collision would need ~4·10⁹ open items); at most ``max_open_posts``
posts awaiting a first reply, ``max_open_needs`` needs awaiting resolution and
``max_newcomers`` newcomers awaiting their return (the oldest leave first and count as
unanswered, unresolved, not returned); ``max_meetups`` open meetups of at most ``max_rsvps``
members; members ever seen in a scalable Bloom filter (~1.5-3 bytes a member; a newcomer is
mistaken for a known member with probability ≤ ~2 %, never the reverse); windows leave the
state when their last cohort closes; reply delays are kept until a window's reply cohort
closes, then only their median.

>>> from schemas.events import Post
>>> op = OperationsKpis(window_seconds=3600)
>>> states = {"c1": op.new_state("c1")}
>>> h = 1_767_571_200_000
>>> out = op.apply_batch(states, [
...     Post("e1", "c1", "ann", h + 60_000, "p1", "Need a designer", "need", (), None),
...     Post("e2", "c1", "bob", h + 600_000, "p2", "I can help", "post", (), "p1"),
...     Post("e3", "c1", "ann", h + 900_000, "p3", "Found one, thanks", "resolved", (), "p1")])
>>> cmd = out.commands[0]; f = dict(zip(cmd[2::2], cmd[3::2]))
>>> cmd[1], f["posts"], f["reply_rate"], f["median_first_reply_s"], f["match_success_rate"], f["new_members"]
('pulse:kpi:c1:3600s:1767571200', 1, '1.0', '540.0', '1.0', 2)
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from schemas.events import Event, Post, Rsvp
from streams import keys
from streams.operators.base import Observation, Output, RedisCommand

if TYPE_CHECKING:
    from streams.config import Settings

HOUR = 3600
DAY = 86_400


def stable_hash(text: str) -> int:
    """A 64-bit hash that is the same in every process (Python's ``hash`` is salted per process).

    >>> stable_hash("p1") == stable_hash("p1") != stable_hash("p2")
    True
    """
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


_MEMBER_HASHES: dict[str, int] = {}
_MEMBER_HASHES_MAX = 50_000  # ~8 MB at most, cleared when full


def member_hash(member: str) -> int:
    """:func:`stable_hash` memoized for member ids, which come back event after event (post ids
    do not: they are hashed directly).  blake2b costs ~0.6 µs.

    >>> member_hash("ann") == stable_hash("ann")
    True
    """
    h = _MEMBER_HASHES.get(member)
    if h is None:
        if len(_MEMBER_HASHES) >= _MEMBER_HASHES_MAX:
            _MEMBER_HASHES.clear()
        h = _MEMBER_HASHES[member] = stable_hash(member)
    return h


class SeenFilter:
    """Scalable Bloom filter: has this member ever been seen?  No false "new", rare false "seen".

    When a stage holds its capacity, a new one twice as large is added with a 0.75 × lower
    error rate (0.5 %, 0.375 %, ...: a few more bits per item and probes), so the total false
    positive rate stays under 2 % however many members come, and the size grows with the
    members actually seen (~1.5-3 bytes each, the last stage being partly empty).

    >>> seen = SeenFilter(capacity=4)
    >>> [seen.add(stable_hash(m)) for m in ("a", "b", "a", "c", "d", "e", "a")]
    [True, True, False, True, True, True, False]
    >>> len(seen.stages)
    2
    """

    ERROR = 0.005
    TIGHTENING = 0.75
    KNOWN_MAX = 1024
    """Hashes remembered as seen (not pickled): bits are only ever set, so once a hash is seen it
    stays seen, and the ~10 bit probes per stage (~5 µs in Python) are skipped for regulars.
    At most ~65 KB per community (cleared when full); 512 measured slower, 2048 not faster enough
    to pay ~130 KB per community."""

    def __init__(self, capacity: int = 1024) -> None:
        self.stages: list[bytearray] = []
        self.counts: list[int] = []
        self.first_capacity = capacity
        self._known: set[int] = set()
        self._grow()

    def __getstate__(self) -> dict[str, Any]:
        return {"stages": self.stages, "counts": self.counts, "first_capacity": self.first_capacity}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._known = set()

    def _grow(self) -> None:
        i = len(self.stages)
        nbits = math.ceil((self.first_capacity << i) * -math.log(self._error(i)) / math.log(2) ** 2)
        self.stages.append(bytearray((nbits + 7) // 8))
        self.counts.append(0)

    def _error(self, i: int) -> float:
        return self.ERROR * self.TIGHTENING**i

    def add(self, h: int) -> bool:
        """Record a member hash; True if it was (probably) never seen before."""
        known = self._known
        if h in known:
            return False
        if len(known) >= self.KNOWN_MAX:
            known.clear()
        known.add(h)  # whatever the answer below, h is seen from now on
        # Probe k of a stage of n bits is bit (h1 + k·h2) mod n, stepped without the product.
        h1, h2 = h & 0xFFFFFFFF, (h >> 32) | 1
        probes = _PROBES
        stages = self.stages
        for i, stage in enumerate(stages):
            nbits = len(stage) << 3
            p, step = h1 % nbits, h2 % nbits
            for _ in range(probes[i]):
                if not stage[p >> 3] >> (p & 7) & 1:
                    break
                p += step
                if p >= nbits:
                    p -= nbits
            else:
                return False  # every probe of this stage is set: seen
        last = len(stages) - 1
        if self.counts[last] >= self.first_capacity << last:
            self._grow()
            last += 1
        stage = stages[last]
        nbits = len(stage) << 3
        p, step = h1 % nbits, h2 % nbits
        for _ in range(probes[last]):
            stage[p >> 3] |= 1 << (p & 7)
            p += step
            if p >= nbits:
                p -= nbits
        self.counts[last] += 1
        return True


# Probes of stage i: round(-log2(error of stage i)), computed once instead of per call and stage.
_PROBES = [round(-math.log2(SeenFilter.ERROR * SeenFilter.TIGHTENING**i)) for i in range(64)]


# Columns of a window's counters (a list of ints, compact in a snapshot).
POSTS, REPLIED, NEEDS, RESOLVED, MEETUPS, CAPACITY, ATTENDED, GOING, NO_SHOWS, NEW, RETURNED = range(11)
N_COUNTERS = 11


@dataclass(slots=True)
class WindowKpi:
    counts: list[int] = field(default_factory=lambda: [0] * N_COUNTERS)
    delays: list[int] | None = field(default_factory=list)  # first-reply delays (s), until the cohort closes
    median_delay: float | None = None  # once it has closed
    meetups_open: int = 0  # meetups starting in this window not yet counted


@dataclass(slots=True)
class MeetupKpi:
    starts_at: int | None
    capacity: int | None
    status: dict[int, bool] = field(default_factory=dict)  # member hash → latest RSVP is going
    attended: set[int] = field(default_factory=set)


@dataclass(slots=True)
class KpiState:
    """One community's KPI state (pickled into its snapshot, see :mod:`streams.operators.runner`)."""

    community: str
    seen: SeenFilter
    windows: dict[int, WindowKpi] = field(default_factory=dict)  # start (s) → counters
    open_posts: dict[int, tuple[int, int]] = field(default_factory=dict)  # post hash → (ts, author hash)
    open_needs: dict[int, int] = field(default_factory=dict)  # need hash → ts
    newcomers: dict[int, int] = field(default_factory=dict)  # member hash → first ts
    meetups: dict[str, MeetupKpi] = field(default_factory=dict)
    final: list[tuple[Any, ...]] = field(default_factory=list)  # last final windows (counts, median)
    clock: int = 0
    maintained: int = 0  # window start (s) of the last maintenance pass
    ignored: int = 0  # events for windows already closed


@dataclass(frozen=True, slots=True)
class KpiConfig:
    """Every knob of the operations-KPI operator."""

    window_seconds: int = 3600
    reply_horizon_seconds: int = DAY
    match_horizon_seconds: int = 7 * DAY
    return_horizon_seconds: int = 7 * DAY
    return_gap_seconds: int = HOUR
    check_in_seconds: int = 4 * HOUR
    max_open_posts: int = 5_000
    max_open_needs: int = 2_000
    max_newcomers: int = 5_000
    max_meetups: int = 64
    max_rsvps: int = 2_000
    observation_windows: int = 24
    retention_seconds: int = 7 * DAY


class OperationsKpis:
    """The ``kpis`` operator (see the module docstring for what it writes and why)."""

    name = "kpis"
    reads_text = False  # counts only: the runner may skip the text stage

    def __init__(self, config: KpiConfig | None = None, **overrides: Any) -> None:
        """``config`` (defaults: :class:`KpiConfig`), any field overridden by keyword."""
        c = self.config = replace(config or KpiConfig(), **overrides)
        self.size = c.window_seconds
        self.reply_ms = c.reply_horizon_seconds * 1000
        self.match_ms = c.match_horizon_seconds * 1000
        self.return_ms = c.return_horizon_seconds * 1000
        self.return_gap_ms = c.return_gap_seconds * 1000
        self.check_in_ms = c.check_in_seconds * 1000
        self.max_open_posts = c.max_open_posts
        self.max_open_needs = c.max_open_needs
        self.max_newcomers = c.max_newcomers
        self.max_meetups = c.max_meetups
        self.max_rsvps = c.max_rsvps
        self.observation_windows = c.observation_windows
        self.retention_seconds = c.retention_seconds
        self.close_ms = max(self.reply_ms, self.match_ms, self.return_ms)

    @classmethod
    def from_settings(cls, settings: Settings) -> OperationsKpis:
        """Windows and key retention as the pipeline's (``PULSE_WINDOW_SECONDS``, ``_RETENTION_SECONDS``);
        a key's TTL restarts at every write, so it outlives its window's last (final) write."""
        return cls(window_seconds=settings.window_seconds, retention_seconds=settings.retention_seconds)

    def new_state(self, community: str) -> KpiState:
        return KpiState(community=community, seen=SeenFilter())

    def window_of(self, ts: int) -> int:
        return ts // 1000 // self.size * self.size

    # --- the batch -------------------------------------------------------------------------------
    def apply_batch(self, states: dict[str, KpiState], events: Sequence[Event]) -> Output:
        out = Output()
        changed: dict[tuple[str, int], None] = {}
        size = self.size
        close_s = self.close_ms // 1000 + size
        return_gap_ms, return_ms = self.return_gap_ms, self.return_ms
        max_newcomers = self.max_newcomers
        hashes = _MEMBER_HASHES
        for ev in events:
            st = states[ev.community]
            ts = ev.ts
            start = ts // 1000 // size * size  # window_of(ts), inlined: once per event
            if ts > st.clock:
                st.clock = ts
                if start > st.maintained:
                    self._maintain(st, changed, out)
            if start <= st.clock // 1000 - close_s:
                st.ignored += 1  # its window's cohorts have closed
                continue
            member = hashes.get(ev.member)
            if member is None:
                member = member_hash(ev.member)
            newcomers = st.newcomers
            if st.seen.add(member):  # a newcomer
                newcomers[member] = ts
                if len(newcomers) > max_newcomers:
                    del newcomers[next(iter(newcomers))]
                self._window(st, start, changed).counts[NEW] += 1
            else:  # a known member: back for another visit?
                first = newcomers.get(member)
                if first is not None and first + return_gap_ms <= ts <= first + return_ms:
                    del newcomers[member]
                    self._window(st, self.window_of(first), changed).counts[RETURNED] += 1
            cls = ev.__class__
            if cls is Post:
                self._post(st, ev, member, start, changed)  # type: ignore[arg-type]
            elif cls is Rsvp:
                self._rsvp(st, ev, member)  # type: ignore[arg-type]
        for community, start in changed:
            st = states[community]
            w = st.windows.get(start)
            if w is not None:
                out.commands += self._publish(st, start, w, final=False)
        return out

    def _window(self, st: KpiState, start: int, changed: dict[tuple[str, int], None]) -> WindowKpi:
        w = st.windows.get(start)
        if w is None:
            w = st.windows[start] = WindowKpi()
        changed[(st.community, start)] = None
        return w

    def _post(
        self, st: KpiState, ev: Post, member: int, start: int, changed: dict[tuple[str, int], None]
    ) -> None:
        ts, reply_to, kind = ev.ts, ev.reply_to, ev.kind
        if reply_to is not None:
            target = stable_hash(reply_to)
            opened = st.open_posts.get(target)
            if opened is not None and opened[1] != member and 0 <= ts - opened[0] <= self.reply_ms:
                del st.open_posts[target]
                w = self._window(st, self.window_of(opened[0]), changed)
                w.counts[REPLIED] += 1
                if w.delays is not None:
                    w.delays.append((ts - opened[0]) // 1000)
            if kind == "resolved":
                need_ts = st.open_needs.get(target)
                if need_ts is not None and 0 <= ts - need_ts <= self.match_ms:
                    del st.open_needs[target]
                    self._window(st, self.window_of(need_ts), changed).counts[RESOLVED] += 1
        if kind == "need":
            self._window(st, start, changed).counts[NEEDS] += 1
            st.open_needs[stable_hash(ev.post)] = ts
            if len(st.open_needs) > self.max_open_needs:
                del st.open_needs[next(iter(st.open_needs))]
        if reply_to is None and kind != "resolved":
            self._window(st, start, changed).counts[POSTS] += 1
            st.open_posts[stable_hash(ev.post)] = (ts, member)
            if len(st.open_posts) > self.max_open_posts:
                del st.open_posts[next(iter(st.open_posts))]

    def _rsvp(self, st: KpiState, ev: Rsvp, member: int) -> None:
        m = st.meetups.get(ev.meetup)
        if m is not None and m.starts_at is not None and ev.ts >= m.starts_at + self.check_in_ms:
            return  # after its check-in period: the meetup is over, whatever the clock says
        if m is None:
            if ev.starts_at is None or ev.starts_at + self.check_in_ms <= st.clock:
                return  # cannot be placed, or already counted (or never seen before its end)
            if len(st.meetups) >= self.max_meetups:
                return
            m = st.meetups[ev.meetup] = MeetupKpi(ev.starts_at, ev.capacity)
        if ev.capacity is not None:
            m.capacity = ev.capacity
        if ev.starts_at is not None:
            m.starts_at = ev.starts_at
        if ev.status == "attended":
            if len(m.attended) < self.max_rsvps:
                m.attended.add(member)
        elif member in m.status or len(m.status) < self.max_rsvps:
            m.status[member] = ev.status == "going"

    # --- time ------------------------------------------------------------------------------------
    def _maintain(self, st: KpiState, changed: dict[tuple[str, int], None], out: Output) -> None:
        """Once per window of event time: close meetups, expire what can no longer count,
        close cohorts, finalise windows (published with ``final`` 1, then dropped)."""
        clock = st.clock
        st.maintained = self.window_of(clock)
        for name in [
            n
            for n, m in st.meetups.items()
            if m.starts_at is not None and m.starts_at + self.check_in_ms <= clock
        ]:
            m = st.meetups.pop(name)
            assert m.starts_at is not None
            w = self._window(st, self.window_of(m.starts_at), changed)
            c = w.counts
            going = [h for h, g in m.status.items() if g]
            c[MEETUPS] += 1
            if m.capacity:
                c[CAPACITY] += m.capacity
                c[ATTENDED] += len(m.attended)
            c[GOING] += len(going)
            c[NO_SHOWS] += sum(1 for h in going if h not in m.attended)
        for opened, limit in ((st.open_posts, self.reply_ms), (st.open_needs, self.match_ms)):
            expired = [k for k, v in opened.items() if (v[0] if isinstance(v, tuple) else v) + limit < clock]
            for k in expired:
                del opened[k]
        for k in [k for k, first in st.newcomers.items() if first + self.return_ms < clock]:
            del st.newcomers[k]
        reply_closed = (clock - self.reply_ms) // 1000 - self.size  # windows ending before this are closed
        all_closed = (clock - self.close_ms) // 1000 - self.size
        pending_meetups = {
            self.window_of(m.starts_at) for m in st.meetups.values() if m.starts_at is not None
        }
        for start in sorted(st.windows):
            w = st.windows[start]
            if start <= reply_closed and w.delays is not None:
                w.median_delay = float(statistics.median(w.delays)) if w.delays else None
                w.delays = None
                changed[(st.community, start)] = None
            if start <= all_closed and start not in pending_meetups:
                out.commands += self._publish(st, start, w, final=True)
                changed.pop((st.community, start), None)
                del st.windows[start]
                st.final.append((tuple(w.counts), w.median_delay))
                del st.final[: -self.observation_windows]
                self._observe(st, out)

    # --- output ----------------------------------------------------------------------------------
    def _publish(self, st: KpiState, start: int, w: WindowKpi, final: bool) -> list[RedisCommand]:
        c = w.counts
        median = w.median_delay if w.delays is None else (statistics.median(w.delays) if w.delays else None)
        key = keys.kpi(st.community, self.size, start)
        command: RedisCommand = [
            "HSET", key,
            "posts", c[POSTS], "replied", c[REPLIED], "reply_rate", _rate(c[REPLIED], c[POSTS]),
            "median_first_reply_s", "" if median is None else repr(round(float(median), 1)),
            "needs_opened", c[NEEDS], "needs_resolved", c[RESOLVED],
            "match_success_rate", _rate(c[RESOLVED], c[NEEDS]),
            "meetups", c[MEETUPS], "capacity", c[CAPACITY], "attended", c[ATTENDED],
            "fill_rate", _rate(c[ATTENDED], c[CAPACITY]),
            "going", c[GOING], "no_shows", c[NO_SHOWS], "no_show_rate", _rate(c[NO_SHOWS], c[GOING]),
            "new_members", c[NEW], "returned", c[RETURNED], "return_rate", _rate(c[RETURNED], c[NEW]),
            "final", int(final),
        ]  # fmt: skip
        return [command, ["EXPIRE", key, self.retention_seconds]]

    def _observe(self, st: KpiState, out: Output) -> None:
        sums = [sum(counts[k] for counts, _ in st.final) for k in range(N_COUNTERS)]
        for metric, num, den in (
            ("kpi_reply_rate", REPLIED, POSTS),
            ("kpi_match_success_rate", RESOLVED, NEEDS),
            ("kpi_fill_rate", ATTENDED, CAPACITY),
            ("kpi_no_show_rate", NO_SHOWS, GOING),
            ("kpi_return_rate", RETURNED, NEW),
        ):
            if sums[den]:
                out.observations.append(Observation(metric, st.community, sums[num] / sums[den]))
        medians = [m for _, m in st.final if m is not None]
        if medians:
            out.observations.append(
                Observation("kpi_median_first_reply_seconds", st.community, float(statistics.median(medians)))
            )


def _rate(num: int, den: int) -> str:
    """A ratio as Redis should store it (4 decimals), or ``""`` when there is nothing to divide by."""
    return repr(round(num / den, 4)) if den else ""
