"""The simulator's configuration and output: :class:`SimConfig`, :class:`SimMessage`, the
:class:`Scenario` protocol, and the malformed-message labels."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

import orjson

if TYPE_CHECKING:  # a type only: the engine imports this module
    from streams.simulator.engine import Simulator


_dumps = orjson.dumps


def _json(value: object) -> str:
    """JSON text of ``value`` as str, for fragments that are pasted into messages."""
    return _dumps(value).decode()


TOPICS = ("posts", "reactions", "rsvps")
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{0,64}")

HOUR_MS = 3_600_000
LATE_DEFAULT_MS = (3600 + 300 + 600) * 1000
"""Default age of late events: window (1 h) + grace (300 s) + 10 min margin, see ``SimConfig.late_by_ms``."""

MALFORMED_KINDS: dict[str, str] = {
    "random_bytes": "invalid_json",
    "invalid_utf8": "invalid_json",
    "truncated_json": "invalid_json",
    "bad_json_syntax": "invalid_json",  # NaN, BOM, trailing comma, single quotes, lone surrogate, empty...
    "deep_nesting": "invalid_json",  # depth 5000; orjson stops at 1024
    "not_an_object": "schema",  # array, number, string, null, bool
    "missing_field": "schema",
    "wrong_type": "schema",  # numbers where strings belong, tags as a string, ts as bool...
    "unknown_enum": "schema",  # unknown reaction / status / kind
    "empty_id": "schema",
    "over_limit": "schema",  # text > 10,000 chars, 33 tags, 257-char id, capacity < 0
    "ts_year_9999": "timestamp",
    "ts_before_1970": "timestamp",
    "ts_naive": "timestamp",  # date-time without UTC offset
    "ts_not_rfc3339": "timestamp",
    "rsvp_bad_starts_at": "timestamp",
}
"""Malformed message categories → the decoder's ``Rejection.reason`` for them (plus ``oversized``)."""


# --------------------------------------------------------------------------------------------------
# Configuration and output
# --------------------------------------------------------------------------------------------------


@dataclass
class SimConfig:
    """Knobs of one simulated stream.  Equal configs give byte-identical streams.

    ``events`` counts original events (valid ones plus ``late`` ones); duplicates, malformed and
    oversized messages come on top, so a run yields about ``events * (1 + dup_rate +
    malformed_rate)`` messages.  ``start_ms`` defaults to "now minus the span" rounded down to the
    minute, fixed when the config is created, so no event lies in the decoder's future.
    """

    seed: int = 0
    communities: int = 20
    members: int = 2000
    events: int = 100_000
    start_ms: int | None = None
    span_seconds: int = 6 * 3600
    mix: tuple[float, float, float] = (0.35, 0.50, 0.15)  # posts, reactions, rsvps
    chinese_share: float = 0.3
    dup_rate: float = 0.01
    malformed_rate: float = 0.0
    disorder_ms: int = 60_000
    late_rate: float = 0.0
    late_by_ms: int = LATE_DEFAULT_MS  # a late event is this much (to 2x) older than its community's newest
    oversized_bytes: int | None = None  # e.g. 10_000_000; must exceed the consumer's max_message_bytes
    oversized_count: int = 1  # how many oversized messages when oversized_bytes is set (they are big)
    edge_text_rate: float = 0.002  # valid but awkward texts: empty, 10,000 chars, RTL, NUL, HTML...
    id_prefix: str | None = None  # default derives from seed and start, so reruns do not collide

    def __post_init__(self) -> None:
        if self.start_ms is None:
            now_ms = int(time.time() * 1000)
            self.start_ms = (now_ms - self.span_seconds * 1000) // 60_000 * 60_000
        if self.communities < 1 or self.members < 1 or self.events < 0 or self.span_seconds < 1:
            raise ValueError("communities and members must be >= 1, events >= 0, span_seconds >= 1")
        if len(self.mix) != 3 or min(self.mix) < 0 or sum(self.mix) <= 0:
            raise ValueError(
                f"mix must be three non-negative fractions (posts, reactions, rsvps): {self.mix}"
            )
        total = sum(self.mix)
        self.mix = (self.mix[0] / total, self.mix[1] / total, self.mix[2] / total)
        for name in ("chinese_share", "dup_rate", "malformed_rate", "late_rate", "edge_text_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.disorder_ms < 0 or self.late_by_ms < 0:
            raise ValueError("disorder_ms and late_by_ms must be >= 0")
        if self.id_prefix is None:
            self.id_prefix = f"s{self.seed}.{self.start_ms // 1000:x}."
        if not _SAFE_ID.fullmatch(self.id_prefix):
            raise ValueError(f"id_prefix must match {_SAFE_ID.pattern} (it is written into JSON unescaped)")


class SimMessage(NamedTuple):
    """One Kafka message as a publisher would send it, plus what the consumer should make of it.

    ``label`` is None for a valid event, ``"duplicate"`` for a re-sent copy (same bytes as an
    earlier message), ``"late"`` for a valid event stamped beyond window + grace, or the decoder's
    rejection reason (``invalid_json`` | ``schema`` | ``timestamp`` | ``oversized``).
    """

    topic: str  # logical: posts | reactions | rsvps
    key: bytes  # community id, UTF-8
    value: bytes
    label: str | None


class Scenario(Protocol):
    """Hook for labelled scenarios (atmosphere drop, topic surge, churn...): steers shared state.

    ``tick`` runs every :attr:`Simulator.tick_events` events with the current event time; it may
    change a :class:`Community`'s tables (tone, topics, members) and record ground truth.
    """

    def tick(self, sim: Simulator, ts: int) -> None: ...


