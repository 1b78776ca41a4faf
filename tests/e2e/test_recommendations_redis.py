"""Recommendations write a member's list only when its ranking changed (issue 14), on a real Redis.

Two copies of the operator run over the same labelled stream, batch by batch, each batch's commands
applied to a real ``redis-server`` in one MULTI/EXEC: one as shipped (writes skipped when the key
already holds the list), one forced to write every active member's list every batch (what the
operator did before: ``DEL`` + ``ZADD`` + ``EXPIRE``), each in its own database.  After every batch
both databases must hold the same rankings, with the reference's scores wherever the shipped
operator wrote this batch (elsewhere those of the batch that last changed the ranking), every list
must carry a TTL, and the shipped one must send fewer commands.  Midway, the shipped operator is
"restarted" from pickled states (what the worker does after a crash or rebalance: the snapshot is
committed with the keys, so Redis holds what the restored state remembers writing) and must go on
exactly as the reference says.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import redis

from infra.local_services import EmbeddedRedis
from schemas.events import Event
from streams.labelled.matching import reco_stream
from streams.operators.base import RedisCommand
from streams.operators.recommendations import MeetupRecommender, RecoState

pytestmark = pytest.mark.slow


def _apply(client: redis.Redis, commands: list[RedisCommand]) -> None:
    pipe = client.pipeline(transaction=True)
    for cmd in commands:
        pipe.execute_command(*cmd)
    pipe.execute()


def _lists(client: redis.Redis) -> dict[bytes, list[tuple[bytes, float]]]:
    out = {}
    for key in client.scan_iter(match="pulse:recs:*", count=1000):
        out[key] = client.zrevrange(key, 0, -1, withscores=True)
        assert client.ttl(key) > 0, f"{key!r} has no TTL"
    return out


def _run(op: MeetupRecommender, states: dict[str, RecoState], batch: list[Event]) -> list[RedisCommand]:
    for ev in batch:
        if ev.community not in states:
            states[ev.community] = op.new_state(ev.community)
    return op.apply_batch(states, batch).commands


def test_only_changed_rankings_are_written_also_across_a_restart(
    redis_server: EmbeddedRedis, redis_client: Any
) -> None:
    shipped_db, full_db = redis_client, redis.Redis.from_url(redis_server.url, db=1)
    full_db.flushdb()
    events = reco_stream(seed=3, communities=2, days=8, members=60, reactions_per_day=40).events
    op, reference = MeetupRecommender(), MeetupRecommender()
    states: dict[str, RecoState] = {}
    ref_states: dict[str, RecoState] = {}
    sent = full = 0
    size = 40
    batches = [events[at : at + size] for at in range(0, len(events), size)]
    restart_at = len(batches) // 2
    for i, batch in enumerate(batches):
        if i == restart_at:  # a restart: states from their snapshots
            states = {c: pickle.loads(pickle.dumps(s, protocol=5)) for c, s in states.items()}
            op = MeetupRecommender()
        commands = _run(op, states, batch)
        for s in ref_states.values():
            s.written.clear()  # the reference forgets what it wrote: every list written every batch
        ref_commands = _run(reference, ref_states, batch)
        _apply(shipped_db, commands)
        _apply(full_db, ref_commands)
        sent += len(commands)
        full += len(ref_commands)
        shipped, reference_lists = _lists(shipped_db), _lists(full_db)
        assert {k: [m for m, _ in v] for k, v in shipped.items()} == {
            k: [m for m, _ in v] for k, v in reference_lists.items()
        }, f"batch {i}"
        for cmd in commands:
            if cmd[0] == "ZADD":
                assert shipped[cmd[1].encode()] == reference_lists[cmd[1].encode()], f"batch {i}"
    assert len(_lists(full_db)) > 20
    assert sent < 0.95 * full, (sent, full)
    full_db.close()
