"""Runs the stateful operators over a batch and turns their state into snapshots and logs.

Pure like the operators (no I/O): the engine asks :meth:`OperatorRunner.missing` which
community states are not in memory, loads what the store holds for them, hands it to
:meth:`OperatorRunner.load`, then calls :meth:`OperatorRunner.run`.  The Redis commands that
persist every community a batch touched come back for the batch's atomic script, so the stored
state always matches the stored offsets.

Persisting a state means pickling it, and river models pickle slowly (~0.4-0.6 ms per community
for the forecast and turnout states): doing it for every community of every batch capped the
worker at small batches, which is what low latency needs.  So a community's state is
snapshotted only every ``snapshot_every`` to ``2 × snapshot_every - 1`` batches (staggered by
community, so snapshots do not all fall on one batch); in between, the community's events of
each batch are appended to its log (``pulse:log:{operator}:{community}``, one entry per batch,
a few µs to pickle).  Loading a state = its snapshot, then its log replayed batch by batch
through the operator with the outputs thrown away (their effects are already in Redis).  A
community's state depends only on its own events, in order and batch by batch (the contract
suite checks it), so the replayed state is the state the worker had.

States live in memory as a cache of what Redis holds: any of them can be dropped between
batches (LRU beyond ``max_states``, or all of them on a rebalance) and is reloaded on demand.

>>> from schemas.events import Post
>>> class Count:
...     name = "count"
...     def new_state(self, community): return [0]
...     def apply_batch(self, states, events):
...         for ev in events: states[ev.community][0] += 1
...         return Output()
>>> runner = OperatorRunner([Count()], snapshot_every=2)
>>> batch = [Post("e1", "c1", "m", 946_684_800_000, "p", "hi", "post", (), None)]
>>> runner.missing(batch)
{'count': ['c1']}
>>> runner.load("count", {"c1": None})
>>> output, persist = runner.run(batch)
>>> persist[0][:2]  # the first batch goes to the log
['RPUSH', 'pulse:log:count:c1']
>>> runner.clear(); runner.load("count", {"c1": None}, {"c1": [persist[0][2]]}); runner.states["count"]["c1"]
[1]
"""

from __future__ import annotations

import base64
import pickle
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from online_models.text_stage import TEXT_MAX_CHARS, annotate
from schemas.events import Event, Post, Reaction, Rsvp
from streams.operators.base import Output, RedisCommand, StatefulOperator

SNAPSHOTS_PER_COMMAND = 500  # Lua's unpack() has a stack limit of a few thousand arguments
SNAPSHOT_EVERY = 16
"""Batches a community's state may be behind its snapshot (at least; up to twice, staggered)."""


def state_key(name: str) -> str:
    """Hash of one operator's snapshots: field = community, value = base64 pickle."""
    return f"pulse:state:{name}"


def log_key(name: str, community: str) -> str:
    """List of the community's events since its snapshot: one base64 pickle per batch."""
    return f"pulse:log:{name}:{community}"


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
        text_max_chars: int = TEXT_MAX_CHARS,
    ) -> None:
        self.operators = list(operators)
        self.text_max_chars = text_max_chars
        self.max_states = max_states
        self.snapshot_every = snapshot_every
        self.states: dict[str, OrderedDict[str, Any]] = {op.name: OrderedDict() for op in self.operators}
        # Per operator and community: batches in the log since the snapshot.
        self.logged: dict[str, dict[str, int]] = {op.name: {} for op in self.operators}

    def clear(self) -> None:
        """Forget every state (a rebalance, or a refused batch): Redis holds the truth."""
        for name, states in self.states.items():
            states.clear()
            self.logged[name].clear()

    def missing(self, events: Sequence[Event]) -> dict[str, list[str]]:
        communities = list(dict.fromkeys(ev.community for ev in events))
        wanted = {}
        for op in self.operators:
            states = self.states[op.name]
            absent = [c for c in communities if c not in states]
            if absent:
                wanted[op.name] = absent
        return wanted

    def load(
        self,
        name: str,
        blobs: dict[str, bytes | str | None],
        logs: dict[str, list[bytes]] | None = None,
    ) -> None:
        """Install snapshots (``None``: no snapshot yet, so a fresh state) and replay their logs."""
        op = next(op for op in self.operators if op.name == name)
        states = self.states[name]
        for community, blob in blobs.items():
            state = op.new_state(community) if blob is None else _unblob(blob)
            entries = (logs or {}).get(community, [])
            for entry in entries:
                replayed = _unblob_events(entry)
                annotate(replayed, self.text_max_chars)  # the analysis is recomputed, not logged
                op.apply_batch({community: state}, replayed)  # outputs are already in Redis
            states[community] = state
            self.logged[name][community] = len(entries)

    def _threshold(self, community: str) -> int:
        return self.snapshot_every + zlib.crc32(community.encode()) % self.snapshot_every

    def run(self, events: Sequence[Event]) -> tuple[Output, list[RedisCommand]]:
        """Apply ``events`` to every operator; return their output and the commands persisting
        the touched states (snapshots, or log entries)."""
        output = Output()
        persist: list[RedisCommand] = []
        if not events:
            return output, persist
        annotate(events, self.text_max_chars)  # the text stage: once per post, shared by all operators
        by_community: dict[str, list[Event]] = {}
        for ev in events:
            by_community.setdefault(ev.community, []).append(ev)
        entries: dict[str, str] = {}
        for op in self.operators:
            name = op.name
            states = self.states[name]
            logged = self.logged[name]
            output.extend(op.apply_batch(states, events))
            snapshot: RedisCommand = ["HSET", state_key(name)]
            for community, own in by_community.items():
                states.move_to_end(community)
                n = logged.get(community, 0) + 1
                if n >= self._threshold(community):
                    snapshot += [community, _blob(states[community])]
                    persist.append(["DEL", log_key(name, community)])
                    logged[community] = 0
                    if len(snapshot) >= 2 + 2 * SNAPSHOTS_PER_COMMAND:
                        persist.append(snapshot)
                        snapshot = ["HSET", state_key(name)]
                else:
                    entry = entries.get(community) or entries.setdefault(community, _events_blob(own))
                    persist.append(["RPUSH", log_key(name, community), entry])
                    logged[community] = n
            if len(snapshot) > 2:
                persist.append(snapshot)
            while len(states) > self.max_states:
                evicted, _ = states.popitem(last=False)  # least recently used: Redis has it all
                logged.pop(evicted, None)
        return output, persist


def run_locally(
    operator: StatefulOperator[Any], events: Sequence[Event], batch: int, snapshot_every_batch: bool = False
) -> tuple[list[Output], dict[str, Any]]:
    """Run one operator over ``events`` in batches with no Kafka and no Redis — for tests and
    notebooks.  ``snapshot_every_batch`` passes every state through a pickle round trip between
    batches, which is all a crash and restore leaves of it.  Returns the outputs and final states."""
    states: dict[str, Any] = {}
    outputs = []
    for at in range(0, len(events), batch):
        chunk = events[at : at + batch]
        for ev in chunk:
            if ev.community not in states:
                states[ev.community] = operator.new_state(ev.community)
        outputs.append(operator.apply_batch(states, chunk))
        if snapshot_every_batch:
            states = {c: pickle.loads(pickle.dumps(state, protocol=5)) for c, state in states.items()}
    return outputs, states
