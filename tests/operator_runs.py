"""Operators over in-memory streams, for the operator tests: the simulator's stream decoded, one
batch on given states, and a replay that can pass every batch through a crash and restore."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from schemas.events import Event, EventDecoder, Rejection
from streams.config import Settings
from streams.operators.base import Output, StatefulOperator
from streams.operators.runner import iter_locally
from streams.simulator import SimConfig, Simulator


def simulated_events(seed: int, events: int, communities: int, members: int) -> list[Event]:
    """The simulator's stream (no re-sent duplicates) through the worker's decoder, in time order."""
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    decoder = EventDecoder(defaults.max_message_bytes, defaults.max_future_seconds * 1000)
    config = SimConfig(seed=seed, events=events, communities=communities, members=members, dup_rate=0.0)
    decoded = (decoder.decode(m.topic, m.value) for m in Simulator(config).messages())
    return sorted((ev for ev in decoded if not isinstance(ev, Rejection)), key=lambda e: e.ts)


def run_batch(op: StatefulOperator[Any], events: list, states: dict | None = None) -> tuple[Output, dict]:
    """``op`` over ``events`` as one batch; states are created on first sight in ``states`` (in place)."""
    states = {} if states is None else states
    ((_, output),) = iter_locally(op, [events], states)
    return output, states


def replay(
    make: Callable[[], StatefulOperator[Any]], events: list, batch: int, snapshot_every_batch: bool
) -> list[Output]:
    """Batches of ``batch`` events; with ``snapshot_every_batch``, each batch runs on a fresh
    operator from a pickle round trip of the states: all that a crash and restore leaves."""
    op = make()
    states: dict = {}
    outputs = []
    for at in range(0, len(events), batch):
        out, states = run_batch(op, events[at : at + batch], states)
        outputs.append(out)
        if snapshot_every_batch:
            states = {c: pickle.loads(pickle.dumps(s, protocol=5)) for c, s in states.items()}
            op = make()
    return outputs
