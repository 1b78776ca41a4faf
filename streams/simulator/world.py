"""The simulated world: cities, themes, time zones, meetups and communities (:class:`Community`),
the mutable state producers share and scenarios steer."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from streams.simulator.base import _SAFE_ID, HOUR_MS, _json

# --------------------------------------------------------------------------------------------------
# World state shared by producers (and, later, scenarios)
# --------------------------------------------------------------------------------------------------

EN_CITIES = (
    "sf",
    "nyc",
    "berlin",
    "london",
    "austin",
    "toronto",
    "lisbon",
    "singapore",
    "bangalore",
    "paris",
)
ZH_CITIES = ("shenzhen", "hangzhou", "shanghai", "beijing", "chengdu", "guangzhou")
THEMES = (
    "founders",
    "ai-builders",
    "devtools",
    "indie-hackers",
    "climate-tech",
    "saas",
    "hardware",
    "fintech",
)
EN_OFFSETS = (
    (0, "Z"),
    (0, "+00:00"),
    (-7 * HOUR_MS, "-07:00"),
    (-5 * HOUR_MS, "-05:00"),
    (HOUR_MS, "+01:00"),
    (19_800_000, "+05:30"),
)
ZH_OFFSETS = ((8 * HOUR_MS, "+08:00"), (0, "Z"))


TABLE_BITS = 7
TABLE_SIZE = 1 << TABLE_BITS
"""Size of the small sampling tables (language, topic, tone, reaction): 128 slots, 7 random bits."""
COMMUNITY_TABLE_MAX_BITS = 14  # 16384 slots: shares below 1/16384 round to zero


def _table(weights: Sequence[float], size: int = TABLE_SIZE) -> list[int]:
    """Sampling table: slot j holds the index whose weight quantile covers (j + ½) / size.

    Picking a uniform slot is then a weighted draw with one masked random number (no bisect,
    no ``random.choices`` call); resolution is 1/size, enough for shares and tones.

    >>> _table((3, 1), 8)
    [0, 0, 0, 0, 0, 0, 1, 1]
    """
    total = float(sum(weights))
    cum = list(itertools.accumulate(w / total for w in weights))
    last = len(weights) - 1
    return [min(bisect.bisect_right(cum, (j + 0.5) / size), last) for j in range(size)]


# Reaction names per tone of the target post, in percent; a negative post draws sad/angry/report.
REACTION_MIX: tuple[dict[str, int], ...] = (
    {"like": 40, "love": 20, "thanks": 15, "insightful": 15, "laugh": 8, "sad": 1, "angry": 1},
    {"like": 45, "insightful": 20, "thanks": 15, "love": 5, "laugh": 10, "sad": 2, "angry": 2, "report": 1},
    {"like": 15, "sad": 30, "angry": 20, "insightful": 10, "thanks": 5, "laugh": 5, "report": 15},
)
REACTIONS_BY_TONE: tuple[tuple[str, ...], ...] = tuple(
    tuple(list(mix)[i] for i in _table(list(mix.values()))) for mix in REACTION_MIX
)


@dataclass(slots=True, eq=False)
class Meetup:
    """A meetup of one community: RSVPs before ``starts_at``, ``attended`` check-ins after it."""

    id: str
    starts_at: int
    capacity: int | None
    tags: list[str]
    json_tail: str  # ,"meetup_tags":[...],"starts_at":...,"capacity":...} as the publisher writes it
    status: dict[str, str] = field(default_factory=dict)
    going: list[str] = field(default_factory=list)  # check-in candidates (may hold stale entries)


@dataclass(slots=True, eq=False)
class Community:
    """Per-community state; the ``*_table`` lists are sampling tables (uniform pick = weighted draw).

    Scenarios steer a community through the ``set_*`` methods (an atmosphere drop is
    ``set_tone(0.1, 0.4, 0.5)``, a topic surge a heavier topic weight, drifting members lower
    ``member_weights`` then :meth:`rebuild_member_table`).
    """

    id: str
    key: bytes
    lang: int  # EN or ZH: the community's main language
    weight: float  # share of events (Zipf)
    offset_ms: int  # publisher's UTC offset for RFC 3339 timestamps
    suffix: str  # "Z", "+08:00", ...
    ts_style: int  # 0: integer ms, 1: RFC 3339 with ms, 2: RFC 3339 whole seconds
    omit_defaults: bool  # publisher leaves out kind=post / empty tags
    json_head: str = ""  # ,"community":"<id>","member":"  (pre-encoded; set in __post_init__)
    members: list[str] = field(default_factory=list)
    member_weights: list[float] = field(default_factory=list)
    member_table: list[str] = field(default_factory=list)
    member_mask: int = 0  # len(member_table) - 1; the table size is a power of two
    lang_table: list[int] = field(default_factory=list)
    topic_table: list[int] = field(default_factory=list)
    tone_table: list[int] = field(default_factory=list)
    recent: list[tuple[str, int, int]] = field(default_factory=list)  # (post id, topic, tone), oldest first
    open_needs: list[tuple[str, int]] = field(default_factory=list)  # (post id, topic)
    meetups: list[Meetup] = field(default_factory=list)  # sorted by starts_at
    last_ts: int = -1  # newest event time emitted for this community (late events are placed behind it)

    def __post_init__(self) -> None:
        self.json_head = f',"community":{_json(self.id)},"member":"'

    def set_tone(self, positive: float, neutral: float, negative: float) -> None:
        """Share of positive / neutral / negative posts from now on."""
        self.tone_table = _table((positive, neutral, negative))

    def set_topics(self, weights: Sequence[float]) -> None:
        """Relative weight of each of :data:`TOPIC_NAMES` for new posts, needs and offers."""
        self.topic_table = _table(weights)

    def set_languages(self, en: float, zh: float, mixed: float) -> None:
        """Share of English, Chinese and code-switched posts."""
        self.lang_table = _table((en, zh, mixed))

    def rebuild_member_table(self, rng: random.Random) -> None:
        """Resample the member table from ``members`` and ``member_weights`` (after a change).

        The size is a power of two (≥ 8 slots per member, 256..65536) so a pick is a bit mask.
        """
        unsafe = [m for m in self.members if not _SAFE_ID.fullmatch(m)]
        if unsafe:
            raise ValueError(f"member ids are written into JSON unescaped; not safe: {unsafe[:3]}")
        size = 1 << max(8, min(16, (8 * len(self.members) - 1).bit_length()))
        self.member_table = rng.choices(self.members, weights=self.member_weights, k=size)
        self.member_mask = size - 1


_EPOCH = date(1970, 1, 1)
_SS = tuple(f"{s:02d}" for s in range(60))
_HM = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_HMS = tuple(hm + ss for hm in _HM for ss in _SS)  # "HH:MM:SS" by second of the day
_MS3 = tuple(f".{ms:03d}" for ms in range(1000))


class _TsFormatter:
    """RFC 3339 from epoch ms by table lookups: format specs cost ~0.4 µs each, lookups ~30 ns."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}  # day number -> "YYYY-MM-DDT"

    def _day(self, day: int) -> str:
        text = self._days[day] = f"{(_EPOCH + timedelta(days=day)).isoformat()}T"
        return text

    def __call__(self, ts: int, c: Community) -> int | str:
        """The ``ts`` value as ``c``'s publisher writes it: epoch ms or an RFC 3339 string."""
        if not c.ts_style:
            return ts
        day, rem = divmod(ts + c.offset_ms, 86_400_000)
        d = self._days.get(day) or self._day(day)
        if c.ts_style == 1:
            return f"{d}{_HMS[rem // 1000]}{_MS3[rem % 1000]}{c.suffix}"
        return f"{d}{_HMS[rem // 1000]}{c.suffix}"

    def json(self, ts: int, c: Community) -> int | str:
        """The same value as a JSON token (a quoted string or the integer), for f-string messages."""
        return f'"{self(ts, c)}"' if c.ts_style else ts


