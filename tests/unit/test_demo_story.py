"""``pulse demo``'s story table (issue 18): a scripted surge is caught only by an alert about its topic."""

from __future__ import annotations

from streams.demo import _caught_by
from streams.simulator import StoryEvent

T = 1_767_571_200_000


def test_a_surge_row_is_caught_by_its_topic_or_one_of_its_tags_not_by_any_surge():
    surge = StoryEvent("topic_surge", "c1", T, "ai")
    assert _caught_by(surge, {"kind": "topic_surge", "topic": "ai", "ts": T + 60_000})
    assert _caught_by(surge, {"kind": "topic_surge", "topic": "llm", "ts": T + 60_000})  # a tag of "ai"
    assert not _caught_by(surge, {"kind": "topic_surge", "topic": "做过", "ts": T + 60_000})
    assert not _caught_by(surge, {"kind": "topic_surge", "topic": "ai", "ts": T - 1})  # before the script


def test_a_drop_row_is_caught_by_the_next_drop_of_its_community():
    drop = StoryEvent("atmosphere_drop", "c2", T, "70 % negative posts")
    assert _caught_by(drop, {"kind": "atmosphere_drop", "ts": T + 1})
    assert not _caught_by(drop, {"kind": "topic_surge", "topic": "terrible", "ts": T + 1})
