"""Runs the stateful operators over a batch and turns their state into snapshots and logs.

Pure like the operators (no I/O): the engine asks :meth:`OperatorRunner.missing` which
communities have no state in memory, loads what the store holds for them, hands it to
:meth:`OperatorRunner.load`, then calls :meth:`OperatorRunner.run`.  The Redis commands that
persist every community a batch touched come back for the batch's atomic script, so the stored
state always matches the stored offsets.

Persisting a state means pickling it, and river models pickle slowly (~0.4-0.6 ms per community
for the forecast and turnout states): doing it for every community of every batch capped the
worker at small batches, which is what low latency needs.  So a community's states are
snapshotted only once its log holds ``snapshot_every`` to ``2 × snapshot_every - 1`` batches
*and* ``snapshot_events`` to ``2 × snapshot_events - 1`` events (both staggered by community, so
snapshots do not all fall on one batch), or ``SNAPSHOT_MAX_FACTOR × snapshot_every`` batches
(bounding the batches a restore replays), or ``log_max_bytes``: at small batches (low latency)
a community sees an event or two per batch, and a batch count alone would pickle every state
every second or so.  In between, the community's events of
each batch are appended to its log (:func:`streams.keys.log`, one entry per batch, a few µs to
pickle).  All operators of a community snapshot on the same batch, so they share **one** log
(the events of a batch are stored once, not once per operator) and one snapshot hash
(:func:`streams.keys.state`, field = operator).  Loading = the snapshots, then the log replayed
batch by batch through every operator with the outputs thrown away (their effects are already
in Redis).  A community's state depends only on its own events, in order and batch by batch (the
contract suite checks it), so the replayed state is the state the worker had.

States live in memory as a cache of what Redis holds: any community can be dropped between
batches (LRU beyond ``max_states``, idle ones before Redis expires their keys, or all of them on
a rebalance) and is reloaded on demand.

>>> from schemas.events import Post
>>> class Count:
...     name = "count"
...     def new_state(self, community): return [0]
...     def apply_batch(self, states, events):
...         for ev in events: states[ev.community][0] += 1
...         return Output()
>>> runner = OperatorRunner([Count()], snapshot_every=2, snapshot_events=0)
>>> batch = [Post("e1", "c1", "m", 946_684_800_000, "p", "hi", "post", (), None)]
>>> runner.missing(batch)
['c1']
>>> runner.load({"c1": ({}, [])})
>>> output, persist = runner.run(batch)
>>> persist[0][:2]  # the first batch goes to the log
['RPUSH', 'pulse:log:c1']
>>> runner.clear(); runner.load({"c1": ({}, [persist[0][2]])}); runner.states["count"]["c1"]
[1]
"""

from __future__ import annotations

import base64
import pickle
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import attrgetter
from typing import Any

from online_models.text_stage import TEXT_MAX_CHARS, annotate
from schemas.events import Event, Post, Reaction, Rsvp
from streams import keys
from streams.operators.base import Output, RedisCommand, StatefulOperator

SNAPSHOT_EVERY = 16
"""Batches a community's state may be behind its snapshot (at least; up to twice, staggered)."""
SNAPSHOT_EVENTS = 256
"""Events a community's log holds before a snapshot (at least; up to twice, staggered): a
snapshot pickles every operator's state (river models ~0.5 ms each), a log entry a few µs."""
SNAPSHOT_MAX_FACTOR = 4
"""A log of ``SNAPSHOT_MAX_FACTOR × snapshot_every`` batches is snapshotted whatever its events."""
LOG_MAX_BYTES = 1 << 20
"""A community's log is compacted (snapshot taken, log dropped) before it grows past this."""

Stored = tuple[Mapping[str, bytes | str | None], Sequence[bytes | str]]
"""What the store holds of one community: snapshot per operator name, and the log's entries."""


def _blob(value: Any) -> str:
    return base64.b64encode(pickle.dumps(value, protocol=5)).decode()


_EVENT_CLASSES: tuple[type[Post], type[Reaction], type[Rsvp]] = (Post, Reaction, Rsvp)
_EVENT_FIELDS = {cls: attrgetter(*(f for f in cls.__slots__ if f != "analysis")) for cls in _EVENT_CLASSES}
_EVENT_CODES = {cls: code for code, cls in enumerate(_EVENT_CLASSES)}


def _events_blob(events: list[Event]) -> str:
    """A log entry: the events as (class code, field values) rows, which pickle ~3× faster than
    the dataclasses themselves."""
    return _blob([(_EVENT_CODES[ev.__class__], _EVENT_FIELDS[ev.__class__](ev)) for ev in events])


def _unblob_events(blob: bytes | str) -> list[Event]:
    return [_EVENT_CLASSES[code](*values) for code, values in _unblob(blob)]


def _unblob(blob: bytes | str) -> Any:
    return pickle.loads(base64.b64decode(blob))


class OperatorRunner:
    def __init__(
        self,
        operators: Sequence[StatefulOperator[Any]],
        max_states: int = 20_000,
        snapshot_every: int = SNAPSHOT_EVERY,
        snapshot_events: int = SNAPSHOT_EVENTS,
        idle_ttl_seconds: int | None = None,
        log_max_bytes: int = LOG_MAX_BYTES,
        text_max_chars: int = TEXT_MAX_CHARS,
    ) -> None:
        self.operators = list(operators)
        # the text stage runs only for operators that read its analysis (forecasts, turnout ... do not)
        self.reads_text = any(getattr(op, "reads_text", True) for op in self.operators)
        self.idle_ttl_seconds = idle_ttl_seconds  # EXPIRE of a community's snapshots and log
        self.text_max_chars = text_max_chars
        self.max_states = max_states
        self.snapshot_every = snapshot_every
        self.snapshot_events = snapshot_events
        self.states: dict[str, dict[str, Any]] = {op.name: {} for op in self.operators}
        # Per community in memory (LRU order): batches in its log since its snapshots.
        self.logged: OrderedDict[str, int] = OrderedDict()
        self.touched: dict[str, float] = {}  # community → wall-clock time of its last batch
        self.log_max_bytes = log_max_bytes
        self.log_bytes: dict[str, int] = {}  # community → bytes in its log (since the snapshots)
        self.log_events: dict[str, int] = {}  # community → events in its log

    def clear(self) -> None:
        """Forget every state (a rebalance, or a refused batch): Redis holds the truth."""
        for states in self.states.values():
            states.clear()
        self.logged.clear()
        self.touched.clear()
        self.log_bytes.clear()
        self.log_events.clear()

    def _drop(self, community: str) -> None:
        for states in self.states.values():
            states.pop(community, None)
        self.logged.pop(community, None)
        self.touched.pop(community, None)
        self.log_bytes.pop(community, None)
        self.log_events.pop(community, None)

    def forget_idle(self, now: float, idle_seconds: float) -> int:
        """Drop the communities untouched for ``idle_seconds`` (wall clock): their keys in Redis
        expire after an idle TTL, and a state kept here past that would continue a history Redis
        no longer has.  Dropping early is always safe (reloaded on demand); returns how many."""
        idle = [c for c, at in self.touched.items() if now - at >= idle_seconds]
        for community in idle:
            self._drop(community)
        return len(idle)

    def missing(self, events: Sequence[Event]) -> list[str]:
        """The communities of ``events`` whose states are not in memory (load them first)."""
        logged = self.logged
        return [c for c in dict.fromkeys(ev.community for ev in events) if c not in logged]

    def load(self, stored: Mapping[str, Stored]) -> None:
        """Install each community's snapshots (absent: a fresh state) and replay its log."""
        for community, (snapshots, entries) in stored.items():
            replay = [_unblob_events(entry) for entry in entries]
            for events in replay if self.reads_text else ():
                annotate(events, self.text_max_chars)  # the analysis is recomputed, never logged
            for op in self.operators:
                blob = snapshots.get(op.name)
                state = op.new_state(community) if blob is None else _unblob(blob)
                for events in replay:
                    op.apply_batch({community: state}, events)  # outputs are already in Redis
                self.states[op.name][community] = state
            self.logged[community] = len(entries)
            self.log_bytes[community] = sum(len(entry) for entry in entries)
            self.log_events[community] = sum(len(events) for events in replay)

    def _logs_more(self, community: str, batches: int, events: int) -> bool:
        """Whether a log of ``batches`` entries and ``events`` events may grow (else: snapshot)."""
        if batches >= SNAPSHOT_MAX_FACTOR * self.snapshot_every:
            return False
        stagger = zlib.crc32(community.encode())
        if batches < self.snapshot_every + stagger % self.snapshot_every:
            return True
        return self.snapshot_events > 0 and events < self.snapshot_events + stagger % self.snapshot_events

    def run(self, events: Sequence[Event], now: float = 0.0) -> tuple[Output, list[RedisCommand]]:
        """Apply ``events`` to every operator; return their output and the commands persisting
        the touched states (snapshots, or log entries).  ``now``: wall clock, for idle eviction."""
        output = Output()
        persist: list[RedisCommand] = []
        if not events:
            return output, persist
        if self.reads_text:  # the text stage: once per post, shared by all operators
            annotate(events, self.text_max_chars)
        by_community: dict[str, list[Event]] = {}
        for ev in events:
            by_community.setdefault(ev.community, []).append(ev)
        for op in self.operators:
            output.extend(op.apply_batch(self.states[op.name], events))
        logged, touched, log_bytes, log_events = self.logged, self.touched, self.log_bytes, self.log_events
        for community, own in by_community.items():
            n = logged.get(community, 0) + 1
            logged[community] = n
            logged.move_to_end(community)
            touched[community] = now
            entry = None
            held = log_events.get(community, 0) + len(own)
            if self._logs_more(community, n, held):
                entry = _events_blob(own)
                size = log_bytes.get(community, 0) + len(entry)
            if entry is not None and size <= self.log_max_bytes:
                persist.append(["RPUSH", keys.log(community), entry])
                log_bytes[community] = size
                log_events[community] = held
            else:  # see _logs_more, or once the log reaches log_max_bytes
                snapshot: RedisCommand = ["HSET", keys.state(community)]
                for op in self.operators:
                    snapshot += [op.name, _blob(self.states[op.name][community])]
                persist += [snapshot, ["DEL", keys.log(community)]]
                logged[community] = 0
                log_bytes[community] = 0
                log_events[community] = 0
            if self.idle_ttl_seconds:  # both refreshed every batch: they expire together
                ttl = self.idle_ttl_seconds
                persist += [["EXPIRE", keys.state(community), ttl], ["EXPIRE", keys.log(community), ttl]]
        while len(logged) > self.max_states:
            self._drop(next(iter(logged)))  # least recently used: Redis has it all
        return output, persist


def time_batches(events: Sequence[Event], batch_ms: int, max_events: int = 5000) -> Iterator[list[Event]]:
    """Consecutive events of the same ``batch_ms`` slice of event time (at most ``max_events``):
    a live worker's batches span milliseconds of wall time, so a minute of event time is coarse."""
    batch: list[Event] = []
    current = None
    for ev in events:
        slot = ev.ts // batch_ms
        if batch and (slot != current or len(batch) >= max_events):
            yield batch
            batch = []
        current = slot
        batch.append(ev)
    if batch:
        yield batch


def iter_locally(
    operator: StatefulOperator[Any],
    batches: Iterable[Sequence[Event]],
    states: dict[str, Any] | None = None,
    snapshot_every_batch: bool = False,
) -> Iterator[tuple[Sequence[Event], Output]]:
    """The one way to run an operator with no Kafka and no Redis (tests, studies, notebooks):
    each batch with its output, states created on first sight in ``states`` (updated in place).
    ``snapshot_every_batch`` passes every state through a pickle round trip between batches,
    which is all a crash and restore leaves of it."""
    states = {} if states is None else states
    for chunk in batches:
        for ev in chunk:
            if ev.community not in states:
                states[ev.community] = operator.new_state(ev.community)
        output = operator.apply_batch(states, chunk)
        if snapshot_every_batch:
            restored = {c: pickle.loads(pickle.dumps(state, protocol=5)) for c, state in states.items()}
            states.clear()
            states.update(restored)
        yield chunk, output


def run_locally(
    operator: StatefulOperator[Any],
    events: Sequence[Event],
    batch: int,
    snapshot_every_batch: bool = False,
    states: dict[str, Any] | None = None,
) -> tuple[list[Output], dict[str, Any]]:
    """:func:`iter_locally` over batches of ``batch`` events (continuing ``states`` when given,
    in place); returns the outputs and the states."""
    states = {} if states is None else states
    chunks = (events[at : at + batch] for at in range(0, len(events), batch))
    outputs = [out for _, out in iter_locally(operator, chunks, states, snapshot_every_batch)]
    return outputs, states
