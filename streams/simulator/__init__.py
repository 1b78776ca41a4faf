"""Deterministic synthetic event stream for Pulse: load tests, demos and end-to-end checks.

Real community data is private and never has ground truth, so Pulse is exercised against a
stream that looks like one: Zipf-sized communities, heavy-tailed member activity, English,
Chinese and code-switched posts with a known tone, replies and reactions that point at earlier
posts of the same community, meetups whose RSVPs run from ``going`` to ``attended``.  The same
:class:`SimConfig` always yields the same bytes, so a failing run can be replayed exactly.

It also plays the hostile publisher: re-sent duplicates (same id, same bytes), late events and
malformed messages, each labelled with the rejection reason that
``schemas.events.EventDecoder(max_message_bytes=1_000_000, ...)`` gives, so tests and dashboards
can check that every message was accounted for.

The generator is a scheduler (:meth:`Simulator.messages`) that walks event time and hands each
slot to a small per-kind producer (posts, reactions, RSVPs, late, malformed).  Producers share
mutable per-community state (:class:`Community`), which is what scenarios (:class:`Scenario`)
steer.  It is pure Python and fast enough to out-run a broker from one core (~150-200k valid
events/s): texts are expanded and JSON-encoded once, and each event costs a few
``getrandbits`` slices, table lookups and one f-string.

>>> sim = Simulator(SimConfig(seed=7, events=2_000, start_ms=1_767_225_600_000, dup_rate=0.02))
>>> msgs = list(sim.messages())
>>> sum(m.label is None for m in msgs), sim.stats["duplicate"] > 0
(2000, True)
>>> from schemas.events import EventDecoder
>>> ev = EventDecoder(1_000_000, 300_000).decode(msgs[0].topic, msgs[0].value)
>>> ev.community == msgs[0].key.decode(), 1_767_225_600_000 <= ev.ts <= 1_767_225_600_000 + 6 * 3_600_000
(True, True)
>>> [m.value for m in Simulator(sim.config).messages()] == [m.value for m in msgs]
True
"""

from __future__ import annotations

from streams.simulator.base import MALFORMED_KINDS, Scenario, SimConfig, SimMessage
from streams.simulator.engine import Simulator
from streams.simulator.phrases import N_TONES, POST, TOPIC_NAMES, TOPIC_TAGS, Phrasebank
from streams.simulator.story import DemoStory, StoryEvent
from streams.simulator.world import REACTION_MIX, Community, Meetup

__all__ = [
    "MALFORMED_KINDS",
    "N_TONES",
    "POST",
    "REACTION_MIX",
    "TOPIC_NAMES",
    "TOPIC_TAGS",
    "Community",
    "DemoStory",
    "Meetup",
    "Phrasebank",
    "Scenario",
    "SimConfig",
    "SimMessage",
    "Simulator",
    "StoryEvent",
]
