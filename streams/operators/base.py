"""The one tiny interface every stateful operator implements (as river does for estimators).

An operator keeps one state object per community.  The engine loads the states of the
communities in a batch (from their last snapshot in Redis, or fresh), calls
:meth:`StatefulOperator.apply_batch`, writes the returned Redis commands **and** the pickled
states of the communities it touched in the same atomic script as the batch's offsets, and
produces the returned Kafka messages (alerts, match candidates) just before that commit.
So after a crash an operator continues from exactly the state that matches the stored
offsets — nothing counted twice, nothing lost — and a rebalance moves a community's state
with its partition.

Operators stay pure: no Faust, Kafka, Redis or Prometheus imports; event time only (the
events' ``ts``), never the wall clock, so a replay produces the same outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson

from schemas.events import Event
from streams import keys

ALERTS_KEPT = 100
"""Length of each ``pulse:alerts:{community}`` list."""
ALERTS_ALL_KEPT = 1000
"""Length of ``pulse:alerts``, the newest alerts of every community."""

RedisCommand = list[Any]
"""A Redis command as a list, e.g. ``["HSET", "pulse:atmosphere:c1", "index", 0.42]``.
Absolute writes (HSET, ZADD, DEL, LPUSH + LTRIM, EXPIRE) — they run inside the batch's script."""


@dataclass(slots=True)
class OutgoingMessage:
    topic: str  # logical output topic: "alerts", "match-candidates"
    key: str | None
    value: dict[str, Any]  # encoded with orjson by the engine


@dataclass(slots=True)
class Observation:
    """A number worth a Prometheus gauge; the engine decides which communities get a series."""

    metric: str  # e.g. "atmosphere_index"
    community: str
    value: float


@dataclass(slots=True)
class Output:
    commands: list[RedisCommand] = field(default_factory=list)
    messages: list[OutgoingMessage] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)  # kinds of alerts raised (for pulse_alerts_total)

    def raise_alert(self, value: dict[str, Any], keep: int = ALERTS_KEPT) -> None:
        """An alert the one documented way: a message on the ``alerts`` topic (key = community),
        an entry at the head of ``pulse:alerts:{community}`` (newest first, ``keep`` kept) and of
        ``pulse:alerts`` (every community's, ``ALERTS_ALL_KEPT`` kept) and a
        count for ``pulse_alerts_total{kind}``.  ``value`` needs ``kind`` and ``community``."""
        community = value["community"]
        key = keys.alerts(community)
        doc = orjson.dumps(value).decode()
        self.messages.append(OutgoingMessage("alerts", community, value))
        self.commands += [["LPUSH", key, doc], ["LTRIM", key, 0, keep - 1]]
        self.commands += [["LPUSH", keys.ALERTS_ALL, doc], ["LTRIM", keys.ALERTS_ALL, 0, ALERTS_ALL_KEPT - 1]]
        self.alerts.append(value["kind"])

    @classmethod
    def merged(cls, outputs: Sequence[Output]) -> Output:
        """One output holding all of ``outputs``, in order."""
        out = cls()
        for other in outputs:
            out.extend(other)
        return out

    def extend(self, other: Output) -> None:
        self.commands += other.commands
        self.messages += other.messages
        self.observations += other.observations
        self.alerts += other.alerts


S = TypeVar("S")


class StatefulOperator(Protocol[S]):
    """``name`` keys the operator's snapshot in its community's ``pulse:state:{community}`` hash.

    An operator that never reads a post's text analysis may say so with a class attribute
    ``reads_text = False``: a runner whose operators all say it skips the text stage."""

    name: str

    def new_state(self, community: str) -> S:
        """The state of a community never seen before."""
        ...

    def apply_batch(self, states: dict[str, S], events: Sequence[Event]) -> Output:
        """Update ``states`` (it holds every community in ``events``) and say what to write.
        Events come in per-partition offset order, already validated, on time and unique."""
        ...
