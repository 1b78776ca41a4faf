"""One contract suite over every registered stateful operator (as river runs over every estimator):
snapshots round-trip mid-stream, outputs are deterministic, and state stays per community."""

from __future__ import annotations

import pytest

from schemas.events import EventDecoder, Rejection
from streams.config import Settings
from streams.operators.base import Output
from streams.operators.registry import OPERATORS, build_operator
from streams.operators.runner import run_locally
from streams.simulator import SimConfig, Simulator

SETTINGS = Settings(_env_file=None)


def simulated_events(n: int = 4000) -> list:
    decoder = EventDecoder(SETTINGS.max_message_bytes, SETTINGS.max_future_seconds * 1000)
    events = []
    for m in Simulator(SimConfig(seed=3, events=n, communities=6, members=300, dup_rate=0.0)).messages():
        ev = decoder.decode(m.topic, m.value)
        if not isinstance(ev, Rejection):
            events.append(ev)
    return sorted(events, key=lambda e: e.ts)


def run(name: str, events: list, batch: int, snapshot_every_batch: bool) -> list[Output]:
    return run_locally(build_operator(name, SETTINGS), events, batch, snapshot_every_batch)[0]


@pytest.fixture(scope="module")
def events() -> list:
    return simulated_events()


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_snapshot_round_trip_mid_stream_changes_nothing(name, events):
    assert run(name, events, 250, snapshot_every_batch=True) == run(
        name, events, 250, snapshot_every_batch=False
    )


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_outputs_are_deterministic(name, events):
    assert run(name, events, 500, False) == run(name, events, 500, False)
