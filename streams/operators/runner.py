"""Runs the stateful operators over a batch and turns their state into snapshots.

Pure like the operators (no I/O): the engine asks :meth:`OperatorRunner.missing` which
community states are not in memory, loads their snapshots from the store, hands them to
:meth:`OperatorRunner.load`, then calls :meth:`OperatorRunner.run`.  The snapshots of every
community a batch touched come back as Redis commands for the batch's atomic script, so the
stored state always matches the stored offsets.

States live in memory as a cache of what Redis holds: any of them can be dropped between
batches (LRU beyond ``max_states``, or all of them on a rebalance) and is reloaded on demand.

>>> from schemas.events import Post
>>> class Count:
...     name = "count"
...     def new_state(self, community): return [0]
...     def apply_batch(self, states, events):
...         for ev in events: states[ev.community][0] += 1
...         return Output()
>>> runner = OperatorRunner([Count()])
>>> batch = [Post("e1", "c1", "m", 946_684_800_000, "p", "hi", "post", (), None)]
>>> runner.missing(batch)
{'count': ['c1']}
>>> runner.load("count", {"c1": None})
>>> output, snapshots = runner.run(batch)
>>> snapshots[0][:3]
['HSET', 'pulse:state:count', 'c1']
>>> runner.clear(); runner.load("count", {"c1": snapshots[0][3]}); runner.states["count"]["c1"]
[1]
"""

from __future__ import annotations

import base64
import pickle
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from schemas.events import Event
from streams.operators.base import Output, RedisCommand, StatefulOperator

SNAPSHOTS_PER_COMMAND = 500  # Lua's unpack() has a stack limit of a few thousand arguments


def state_key(name: str) -> str:
    """Hash of one operator's snapshots: field = community, value = base64 pickle."""
    return f"pulse:state:{name}"


class OperatorRunner:
    def __init__(self, operators: Sequence[StatefulOperator[Any]], max_states: int = 20_000) -> None:
        self.operators = list(operators)
        self.max_states = max_states
        self.states: dict[str, OrderedDict[str, Any]] = {op.name: OrderedDict() for op in self.operators}

    def clear(self) -> None:
        """Forget every state (a rebalance, or a refused batch): Redis holds the truth."""
        for states in self.states.values():
            states.clear()

    def missing(self, events: Sequence[Event]) -> dict[str, list[str]]:
        communities = list(dict.fromkeys(ev.community for ev in events))
        wanted = {}
        for op in self.operators:
            states = self.states[op.name]
            absent = [c for c in communities if c not in states]
            if absent:
                wanted[op.name] = absent
        return wanted

    def load(self, name: str, blobs: dict[str, bytes | str | None]) -> None:
        """Install snapshots (``None``: a community never seen, so a fresh state)."""
        op = next(op for op in self.operators if op.name == name)
        states = self.states[name]
        for community, blob in blobs.items():
            states[community] = (
                op.new_state(community) if blob is None else pickle.loads(base64.b64decode(blob))
            )

    def run(self, events: Sequence[Event]) -> tuple[Output, list[RedisCommand]]:
        """Apply ``events`` to every operator; return their output and the snapshot commands."""
        output = Output()
        snapshots: list[RedisCommand] = []
        if not events:
            return output, snapshots
        touched = list(dict.fromkeys(ev.community for ev in events))
        for op in self.operators:
            states = self.states[op.name]
            output.extend(op.apply_batch(states, events))
            for at in range(0, len(touched), SNAPSHOTS_PER_COMMAND):
                command: RedisCommand = ["HSET", state_key(op.name)]
                for community in touched[at : at + SNAPSHOTS_PER_COMMAND]:
                    states.move_to_end(community)
                    command += [
                        community,
                        base64.b64encode(pickle.dumps(states[community], protocol=5)).decode(),
                    ]
                snapshots.append(command)
            while len(states) > self.max_states:
                states.popitem(last=False)  # least recently used; its snapshot is in Redis
        return output, snapshots


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
