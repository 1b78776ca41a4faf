"""One contract suite over every registered stateful operator (as river runs over every estimator):
snapshots round-trip mid-stream, outputs are deterministic, and state stays per community."""

from __future__ import annotations

import copy
import pickle

import pytest

from streams import keys
from streams.config import Settings
from streams.operators.base import Output
from streams.operators.registry import OPERATORS, build_operator
from streams.operators.runner import OperatorRunner, run_locally
from streams.sinks.memory import MemoryStore
from tests.operator_runs import simulated_events

SETTINGS = Settings(_env_file=None)


def run(name: str, events: list, batch: int, snapshot_every_batch: bool) -> list[Output]:
    return run_locally(build_operator(name, SETTINGS), events, batch, snapshot_every_batch)[0]


@pytest.fixture(scope="module")
def events() -> list:
    return simulated_events(seed=3, events=4000, communities=6, members=300)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_snapshot_round_trip_mid_stream_changes_nothing(name, events):
    assert run(name, events, 250, snapshot_every_batch=True) == run(
        name, events, 250, snapshot_every_batch=False
    )


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_outputs_are_deterministic(name, events):
    assert run(name, events, 500, False) == run(name, events, 500, False)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_a_communitys_state_depends_only_on_its_own_events(name, events):
    """What log replay relies on: a community fed only its own events of each batch ends in the
    same state (and publishes the same for itself) as when it shared the batches with others."""
    op = build_operator(name, SETTINGS)
    together: dict = {}
    alone: dict = {}
    for at in range(0, len(events), 300):
        batch = events[at : at + 300]
        for ev in batch:
            together.setdefault(ev.community, op.new_state(ev.community))
        shared = op.apply_batch(together, batch)
        for community in dict.fromkeys(ev.community for ev in batch):
            own = [ev for ev in batch if ev.community == community]
            alone.setdefault(community, op.new_state(community))
            solo = op.apply_batch({community: alone[community]}, own)
            mine = [c for c in shared.commands if community in str(c[1])]
            assert [c for c in solo.commands if community in str(c[1])] == mine
    assert {c: pickle.dumps(s) for c, s in together.items()} == {c: pickle.dumps(s) for c, s in alone.items()}


def _continue(runner: OperatorRunner, batches: list[list], store: MemoryStore | None = None) -> list[Output]:
    """Run batches (states never seen start fresh); persist into ``store`` when given."""
    outputs = []
    for batch in batches:
        runner.load({community: ({}, []) for community in runner.missing(batch)})
        output, persist = runner.run(batch)
        outputs.append(output)
        if store is not None:
            store.apply(persist)
    return outputs


def _stored(store: MemoryStore, community: str) -> tuple[dict[str, str], list[str]]:
    """What the store holds of ``community``: its snapshots per operator and its one shared log."""
    return store.hashes.get(keys.state(community), {}), store.lists.get(keys.log(community), [])


def test_every_operator_shares_one_log_and_one_snapshot_hash_and_restores_exactly(events):
    """All operators of a community snapshot on the same batch, so one log serves them all (a
    batch's events are stored once, not once per operator); restored from it, a runner with
    every operator publishes what the uninterrupted one does."""
    batches = [events[at : at + 200] for at in range(0, len(events), 200)]
    def build() -> OperatorRunner:
        operators = [build_operator(n, SETTINGS) for n in sorted(OPERATORS)]
        return OperatorRunner(operators, snapshot_every=3, snapshot_events=0)

    runner, store = build(), MemoryStore()
    expected, held = [], None
    for k, batch in enumerate(batches):
        expected += _continue(runner, [batch], store)
        if k == 7:
            held = copy.deepcopy(store)
    assert held is not None
    communities = sorted({ev.community for ev in events})
    assert all(set(held.hashes.get(keys.state(c), {})) in (set(), set(OPERATORS)) for c in communities)
    assert not [k for k in held.lists if not k.startswith("pulse:log:")]  # no per-operator logs
    restored = build()
    restored.load({c: _stored(held, c) for c in communities})
    assert _continue(restored, batches[8:]) == expected[8:]


def test_a_log_past_its_byte_limit_is_compacted_into_a_snapshot(events):
    """A burst of long posts must not grow a log without bound: past ``log_max_bytes`` the runner
    snapshots instead of appending, whatever the batch count."""
    runner = OperatorRunner([build_operator("trends", SETTINGS)], snapshot_every=1000, log_max_bytes=4096)
    store = MemoryStore()
    batches = [events[at : at + 100] for at in range(0, 2000, 100)]
    _continue(runner, batches, store)
    assert store.hashes, "no snapshot was taken"
    assert max(sum(len(e) for e in entries) for entries in store.lists.values()) <= 4096


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_a_runner_restored_from_snapshots_and_logs_continues_like_the_original(name, events):
    """A worker that dies after any batch resumes from what it persisted: each community's
    snapshot plus the events logged since, replayed.  It must go on publishing exactly what the
    uninterrupted runner publishes."""
    batches = [events[at : at + 200] for at in range(0, len(events), 200)]
    runner = OperatorRunner([build_operator(name, SETTINGS)], snapshot_every=3, snapshot_events=0)
    store = MemoryStore()
    crashes = {3: None, 8: None, 13: None}  # after these batches: what Redis holds then
    expected = []
    for k, batch in enumerate(batches):
        expected += _continue(runner, [batch], store)
        if k in crashes:
            crashes[k] = copy.deepcopy(store)
    assert store.hashes and any(store.lists.values())  # both paths were exercised
    for k, held in crashes.items():
        restored = OperatorRunner([build_operator(name, SETTINGS)], snapshot_every=3, snapshot_events=0)
        communities = sorted({ev.community for ev in events})
        restored.load({c: _stored(held, c) for c in communities})
        assert _continue(restored, batches[k + 1 :]) == expected[k + 1 :], f"after batch {k}"
