"""The scheduler: :class:`Simulator` walks event time and hands each slot to a producer."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence

from streams.simulator.base import HOUR_MS, Scenario, SimConfig, SimMessage
from streams.simulator.phrases import EN, TOPIC_NAMES, ZH, _phrasebank
from streams.simulator.producers import (
    _LateProducer,
    _MalformedProducer,
    _new,
    _PostProducer,
    _ReactionProducer,
    _RsvpProducer,
)
from streams.simulator.world import (
    COMMUNITY_TABLE_MAX_BITS,
    EN_CITIES,
    EN_OFFSETS,
    THEMES,
    ZH_CITIES,
    ZH_OFFSETS,
    Community,
    _table,
    _TsFormatter,
)

# --------------------------------------------------------------------------------------------------
# The scheduler
# --------------------------------------------------------------------------------------------------


def _gap(rnd: Callable[[], float], p: float) -> int:
    """Events to skip before the next one that has probability ``p`` (geometric; -1: never).

    >>> _gap(lambda: 0.5, 0.0), _gap(lambda: 0.5, 1.0), _gap(lambda: 0.5, 0.5)
    (-1, 0, 1)
    """
    if p <= 0.0:
        return -1
    if p >= 1.0:
        return 0
    return int(math.log(1.0 - rnd()) / math.log1p(-p))


class Simulator:
    """Generates the stream of one :class:`SimConfig`; see the module docstring.

    Construction builds the phrasebank and the world (communities, members); :meth:`messages`
    rebuilds the world and walks event time, so each call yields the same stream again.
    """

    tick_events = 1000
    """Scenarios tick every this many events (cheap enough to ignore, fine enough for surges)."""

    def __init__(self, config: SimConfig, scenarios: Sequence[Scenario] = ()) -> None:
        self.config = config
        self.scenarios = list(scenarios)
        self.id_prefix: str = config.id_prefix or ""
        self.start_ms: int = config.start_ms if config.start_ms is not None else 0
        self.span_ms = config.span_seconds * 1000
        self.phrasebank = _phrasebank(config.seed)
        self.fmt_ts = _TsFormatter()
        self._reset()

    # -- world ------------------------------------------------------------------------------------

    def _reset(self) -> None:
        self.rng = random.Random(self.config.seed)
        self.stats: Counter[str] = Counter()
        self.communities = self._make_communities(self.rng)
        self._assign_members(self.rng)
        # Community draw: >= 64 slots per community (max 65536), a power of two for a bit mask.
        size = 1 << max(10, min(COMMUNITY_TABLE_MAX_BITS, (64 * len(self.communities)).bit_length()))
        self.community_table: list[Community] = [
            self.communities[i] for i in _table([c.weight for c in self.communities], size)
        ]
        self.time_quantiles = self._activity_curve(self.rng)

    def _make_communities(self, rng: random.Random) -> list[Community]:
        cfg = self.config
        n = cfg.communities
        zh = set(rng.sample(range(n), round(cfg.chinese_share * n)))
        zipf = [1.0 / (rank + 1) ** 1.1 for rank in range(n)]
        rng.shuffle(zipf)  # the biggest community is not always the first, nor always English
        names: set[str] = set()
        out = []
        for i in range(n):
            lang = ZH if i in zh else EN
            name = f"{rng.choice(ZH_CITIES if lang == ZH else EN_CITIES)}-{rng.choice(THEMES)}"
            if name in names:
                name = f"{name}-{i}"
            names.add(name)
            offset, suffix = rng.choice(ZH_OFFSETS if lang == ZH else EN_OFFSETS)
            c = Community(
                id=name, key=name.encode(), lang=lang, weight=zipf[i], offset_ms=offset, suffix=suffix,
                ts_style=rng.choice((0, 0, 1, 1, 2)), omit_defaults=rng.random() < 0.3,
            )  # fmt: skip
            c.set_languages(*((0.03, 0.77, 0.20) if lang == ZH else (0.94, 0.02, 0.04)))
            c.set_topics([rng.paretovariate(1.5) for _ in TOPIC_NAMES])
            positive, negative = rng.uniform(0.3, 0.55), rng.uniform(0.05, 0.2)
            c.set_tone(positive, 1 - positive - negative, negative)
            out.append(c)
        return out

    def _assign_members(self, rng: random.Random) -> None:
        """Members: a Zipf-drawn home community, 20% join one or two more; activity is Pareto."""
        cfg = self.config
        comms = self.communities
        index = range(len(comms))
        weights = [c.weight for c in comms]
        for m in range(cfg.members):
            member = f"u{m:05d}"
            activity = rng.paretovariate(1.2)  # heavy tail: a few members do most of the talking
            home = rng.choices(index, weights=weights)[0]
            comms[home].members.append(member)
            comms[home].member_weights.append(activity)
            if rng.random() < 0.2:
                for other in sorted(set(rng.choices(index, weights=weights, k=rng.randint(1, 2))) - {home}):
                    comms[other].members.append(member)
                    comms[other].member_weights.append(activity * 0.3)
        for i, c in enumerate(comms):
            if not c.members:  # tiny community with no one drawn: give it a founder
                c.members.append(f"u{cfg.members + i:05d}")
                c.member_weights.append(1.0)
            c.rebuild_member_table(rng)

    def _activity_curve(self, rng: random.Random, segments: int = 1024) -> list[int]:
        """Event-time quantiles of a daily rhythm with noise: event i sits at quantile i/n.

        Returns ``segments + 1`` times from start to start+span; interpolating between them maps
        event rank to event time, so busy hours get dense and nights sparse, monotonically.
        """
        fine = 4 * segments
        start, span = self.start_ms, self.span_ms
        rates = []
        for j in range(fine):
            hour = ((start + span * (j + 0.5) / fine) / HOUR_MS) % 24
            rates.append(max(0.1, 1 + 0.6 * math.sin(2 * math.pi * (hour - 9) / 24) + rng.uniform(-0.2, 0.2)))
        cum = list(itertools.accumulate(rates))
        total = cum[-1]
        quantiles = [start]
        j = 0
        for q in range(1, segments):
            target = total * q / segments
            while cum[j] < target:
                j += 1
            prev = cum[j - 1] if j else 0.0
            quantiles.append(start + int(span * (j + (target - prev) / (cum[j] - prev)) / fine))
        quantiles.append(start + span)
        return quantiles

    # -- scheduler --------------------------------------------------------------------------------

    def messages(self) -> Iterator[SimMessage]:
        """The whole stream, in emission order (event time ascending up to ``disorder_ms`` jitter).

        :attr:`stats` counts what was emitted: ``posts``/``reactions``/``rsvps`` (valid events),
        ``late``, ``duplicate``, ``oversized`` and ``malformed:<category>``.
        """
        self._reset()
        cfg = self.config
        rng = self.rng
        getrandbits, rnd = rng.getrandbits, rng.random
        stats = self.stats
        n = cfg.events
        start = self.start_ms
        quantiles = self.time_quantiles
        segments = len(quantiles) - 1
        # Jitter back in time, skewed to small delays (most events arrive promptly).
        jitter = [cfg.disorder_ms * j * j // 4096 for j in range(64)]
        t_posts = round(cfg.mix[0] * 1024)
        t_reactions = round((cfg.mix[0] + cfg.mix[1]) * 1024)
        table = self.community_table
        mask = len(table) - 1
        post, react = _PostProducer(self).produce, _ReactionProducer(self).produce
        rsvp, late = _RsvpProducer(self).produce, _LateProducer(self).produce
        bad = _MalformedProducer(self)
        extra_rate = cfg.dup_rate + cfg.malformed_rate
        dup_share = cfg.dup_rate / extra_rate if extra_rate else 0.0
        # Rare things (late events, extra messages, scenario ticks) are scheduled by index, so an
        # ordinary event pays one comparison for each instead of a random draw.
        next_late = _gap(rnd, cfg.late_rate)
        next_extra = _gap(rnd, extra_rate)
        oversized = sorted(rng.sample(range(n), min(cfg.oversized_count, n))) if cfg.oversized_bytes else []
        next_oversized = oversized.pop(0) if oversized else -1
        scenarios, tick = self.scenarios, self.tick_events
        next_tick = 0 if scenarios else -1
        prefix = self.id_prefix
        ring: deque[SimMessage] = deque(maxlen=64)  # recent valid messages: what retries re-send
        n_posts = n_reactions = n_rsvps = 0

        try:
            for seg in range(segments):
                # Events of one activity segment are spread evenly over its event-time interval.
                i0, i1 = seg * n // segments, (seg + 1) * n // segments
                q0, dq, cnt = quantiles[seg], quantiles[seg + 1] - quantiles[seg], i1 - i0
                for i in range(i0, i1):
                    base = q0 + dq * (i - i0) // cnt
                    if i == next_tick:
                        for scenario in scenarios:
                            scenario.tick(self, base)
                        next_tick += tick
                    bits = getrandbits(30)  # 0-13 community, 14-19 jitter, 20-29 event type
                    c = table[bits & mask]
                    eid = f"{prefix}{i}"
                    msg = None
                    if i == next_late:
                        next_late += 1 + _gap(rnd, cfg.late_rate)
                        msg = late(c, eid, i)  # None until the community has a recent event
                        if msg is not None:
                            stats["late"] += 1
                    if msg is None:
                        ts = base - jitter[(bits >> 14) & 63]
                        if ts < start:
                            ts = start
                        r = bits >> 20
                        if r < t_posts:
                            msg = post(c, ts, eid, i)
                            n_posts += 1
                        elif r < t_reactions:
                            msg = react(c, ts, eid, i)
                            if msg is None:  # nothing to react to yet: the community's first post instead
                                msg = post(c, ts, eid, i)
                                n_posts += 1
                            else:
                                n_reactions += 1
                        else:
                            msg = rsvp(c, ts, eid, i)
                            n_rsvps += 1
                        if ts > c.last_ts:
                            c.last_ts = ts
                        ring.append(msg)
                    yield msg
                    if i == next_extra:
                        next_extra += 1 + _gap(rnd, extra_rate)
                        if rnd() < dup_share:
                            orig = ring[int(rnd() * len(ring))]
                            stats["duplicate"] += 1
                            yield _new(SimMessage, (orig.topic, orig.key, orig.value, "duplicate"))
                        else:
                            yield bad.produce(c, base, f"{prefix}x{i}", i)
                    if i == next_oversized:
                        next_oversized = oversized.pop(0) if oversized else -1
                        stats["oversized"] += 1
                        yield bad.oversized(c, base, f"{prefix}o{i}", i, cfg.oversized_bytes or 0)
        finally:  # also when the consumer stops early
            stats.update(posts=n_posts, reactions=n_reactions, rsvps=n_rsvps)

    def iter_batches(self, size: int) -> Iterator[list[SimMessage]]:
        """:meth:`messages` in lists of up to ``size``, for producers that send in batches."""
        it = self.messages()
        while batch := list(itertools.islice(it, size)):
            yield batch


