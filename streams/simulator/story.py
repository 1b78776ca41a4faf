"""Labelled scenarios scripted into a stream: the demo's story (:class:`DemoStory`)."""

from __future__ import annotations

from dataclasses import dataclass

from streams.simulator.base import SimConfig  # noqa: F401 (the doctest)
from streams.simulator.engine import Simulator
from streams.simulator.phrases import EN, N_TOPICS, TOPIC_NAMES, ZH
from streams.simulator.world import Community

# --------------------------------------------------------------------------------------------------
# Labelled scenarios
# --------------------------------------------------------------------------------------------------


@dataclass
class StoryEvent:
    """One scripted change: what happened, to whom, from when (event time, ms)."""

    kind: str  # atmosphere_drop | topic_surge
    community: str
    ts: int
    detail: str


class DemoStory:
    """What ``pulse demo`` scripts into an otherwise ordinary stream, so each signal has something
    to catch: at ``drop_at`` of the span the busiest English community turns sour (70 % negative
    posts, and the reactions that go with them); at ``surge_at`` the busiest Chinese community
    (the second busiest English one if there is none) starts talking mostly about ``topic``.

    A surge is a topic passing 5× its recent rate and 10 mentions an hour (issue 18), so the story
    keeps ``topic`` rare in that community until ``surge_at`` (~2 % of its posts, a weight of
    ``rare`` against 1 for the other topics) and then makes it ~80 % of them (30 against 1): ~40×.

    >>> story = DemoStory()
    >>> sim = Simulator(SimConfig(seed=3, events=20_000, communities=6, start_ms=1_767_225_600_000), [story])
    >>> _ = sum(1 for _ in sim.messages())
    >>> [(s.kind, s.ts > sim.start_ms) for s in story.script]
    [('topic_surge', True), ('atmosphere_drop', True)]
    """

    def __init__(
        self, drop_at: float = 0.6, surge_at: float = 0.5, topic: str = "ai", rare: float = 0.15
    ) -> None:
        self.drop_at, self.surge_at, self.topic = drop_at, surge_at, TOPIC_NAMES.index(topic)
        self.rare = rare
        self.script: list[StoryEvent] = []
        self._quieted = False

    def _surge_target(self, sim: Simulator) -> Community:
        ranked = sorted(sim.communities, key=lambda c: -c.weight)
        zh = [c for c in ranked if c.lang == ZH]
        en = [c for c in ranked if c.lang == EN]
        return zh[0] if zh else en[min(1, len(en) - 1)] if en else ranked[-1]

    def tick(self, sim: Simulator, ts: int) -> None:
        done = {s.kind for s in self.script}
        elapsed = (ts - sim.start_ms) / sim.span_ms
        ranked = sorted(sim.communities, key=lambda c: -c.weight)
        if not self._quieted:  # from the start: the topic is rare there until the surge
            self._quieted = True
            self._surge_target(sim).set_topics(
                [self.rare if i == self.topic else 1.0 for i in range(N_TOPICS)]
            )
        if "topic_surge" not in done and elapsed >= self.surge_at:
            target = self._surge_target(sim)
            target.set_topics([30.0 if i == self.topic else 1.0 for i in range(N_TOPICS)])
            self.script.append(StoryEvent("topic_surge", target.id, ts, TOPIC_NAMES[self.topic]))
        if "atmosphere_drop" not in done and elapsed >= self.drop_at:
            en = [c for c in ranked if c.lang == EN] or ranked
            en[0].set_tone(0.05, 0.25, 0.70)
            self.script.append(StoryEvent("atmosphere_drop", en[0].id, ts, "70 % negative posts"))
