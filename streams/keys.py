"""Every Redis key Pulse writes or reads, built in this one module (the read contract).

Ids come from platforms and may hold anything: ``a:ai``, ``50%``, ``{x}``, ``*``, emoji.  Keys
join ids with ``:``, so an id is **percent-encoded** before it goes into a key: the characters
``% : { } * ? [ ] \\`` become ``%25 %3A %7B %7D %2A %3F %5B %5D %5C`` (upper-case hex, UTF-8),
everything else stays as written.  Encoding ``%`` and ``:`` makes keys unambiguous: two different
(community, member, topic, meetup, post) tuples can never build the same key (community ``a:ai``
is ``pulse:trends:a%3Aai``; community ``a`` with topic ``ai`` is ``pulse:trends:a:ai``).  The
glob characters keep ``SCAN MATCH`` patterns literal, and the braces keep Redis Cluster hash tags
in Pulse's hands.  Ordinary ids (letters, digits, ``-``, ``_``, ``.``, CJK) are unchanged.

Values inside a key (a sorted set's members, a hash's fields) are ids as written, not encoded.

>>> encode("a:ai"), encode("50%"), encode("{x}*"), encode("读书会")
('a%3Aai', '50%25', '%7Bx%7D%2A', '读书会')
>>> decode(encode("a:b%c{d}")) == "a:b%c{d}"
True
>>> trends("a:ai") != trend_topic("a", "ai")
True
>>> activity("x:y", 3600, 0), members_board("x", 3600, 0)
('pulse:activity:x%3Ay:3600s:0', 'pulse:lb:members:x:3600s:0')

Lifetimes (see README, *Redis read contract*): window keys live ``PULSE_RETENTION_SECONDS``
after their last write; per-community keys live ``PULSE_IDLE_TTL_SECONDS`` after the
community's last event (the batch script refreshes them); ``pulse:seen:*`` sets are deleted when
their window closes; ``PROGRESS`` and the global alert list are bounded by size.
"""

from __future__ import annotations

import re

PREFIX = "pulse"

_SPECIAL = "%:{}*?[]\\"
_TABLE = str.maketrans({c: f"%{ord(c):02X}" for c in _SPECIAL})
_ESCAPE = re.compile(r"%([0-9A-F]{2})")
_NEEDS_ESCAPE = re.compile("[" + re.escape(_SPECIAL) + "]")


def encode(identifier: str) -> str:
    """``identifier`` safe to stand between two ``:`` of a key (injective, see module doc).

    Most ids need no escape: a regex search says so ~3× faster than ``translate`` copies them
    (every operator encodes ids per event).

    >>> encode("austin-saas"), encode("a:b%{c}")
    ('austin-saas', 'a%3Ab%25%7Bc%7D')
    """
    if _NEEDS_ESCAPE.search(identifier) is None:
        return identifier
    return identifier.translate(_TABLE)


def decode(part: str) -> str:
    """The id that :func:`encode` turned into ``part``."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), part)


# --- Pulse's own bookkeeping ---------------------------------------------------------------------
PROGRESS = f"{PREFIX}:progress"
"""Hash: per input partition ``o:{topic}:{p}`` next offset, ``w:`` watermark, ``n:`` open windows."""
UPDATES = f"{PREFIX}:updates"
"""Pub/sub channel: after every batch that changed activity, a JSON list of those communities."""
ALERTS_ALL = f"{PREFIX}:alerts"
"""List: the newest alerts of every community (newest first, bounded), for readers of all of them."""


def seen(topic: str, partition: int, start: int) -> str:
    """Set of the event ids applied on one input partition in the open window ``start``."""
    return f"{PREFIX}:seen:{encode(topic)}:{partition}:{start}"


def state(community: str) -> str:
    """Hash of a community's operator snapshots: field = operator name, value = base64 pickle."""
    return f"{PREFIX}:state:{encode(community)}"


def log(community: str) -> str:
    """List of a community's event batches since its snapshots (one base64 pickle per batch)."""
    return f"{PREFIX}:log:{encode(community)}"


# --- activity windows ----------------------------------------------------------------------------
def windows(size: int) -> str:
    """Sorted set of window starts that have data (score = start): the newest is "current"."""
    return f"{PREFIX}:windows:{size}s"


def activity(community: str, size: int, start: int) -> str:
    """Hash ``interactions``, ``participants``, ``posts``, ``score`` of one community window."""
    return f"{PREFIX}:activity:{encode(community)}:{size}s:{start}"


def communities_board(size: int, start: int) -> str:
    """Sorted set community → activity score of one window."""
    return f"{PREFIX}:lb:communities:{size}s:{start}"


def members_board(community: str, size: int, start: int) -> str:
    """Sorted set member → contribution of one community window."""
    return f"{PREFIX}:lb:members:{encode(community)}:{size}s:{start}"


# --- operator outputs (one community each) -------------------------------------------------------
def alerts(community: str) -> str:
    """List of the community's alerts (JSON, newest first)."""
    return f"{PREFIX}:alerts:{encode(community)}"


def atmosphere(community: str) -> str:
    return f"{PREFIX}:atmosphere:{encode(community)}"


def forecast(community: str) -> str:
    return f"{PREFIX}:forecast:{encode(community)}"


def turnout(community: str) -> str:
    return f"{PREFIX}:turnout:{encode(community)}"


def meetup(community: str, meetup_id: str) -> str:
    """Hash of one meetup of one community (going, maybe, capacity, prediction ...)."""
    return f"{PREFIX}:meetup:{encode(community)}:{encode(meetup_id)}"


def meetups(community: str) -> str:
    """Sorted set meetup id → last update (ms) of the community's meetups: readers list them here."""
    return f"{PREFIX}:meetups:{encode(community)}"


def matches(community: str, post: str) -> str:
    """Sorted set candidate post → score for one need or offer."""
    return f"{PREFIX}:matches:{encode(community)}:{encode(post)}"


def match_index(community: str) -> str:
    """Sorted set post → expiry (epoch s) of the community's posts that have a match set."""
    return f"{PREFIX}:matches:{encode(community)}"


def trends(community: str) -> str:
    """Sorted set topic → hotness of the community's hot topics."""
    return f"{PREFIX}:trends:{encode(community)}"


def trend_topic(community: str, topic: str) -> str:
    """Hash of one hot topic's figures."""
    return f"{PREFIX}:trends:{encode(community)}:{encode(topic)}"


def themes(community: str) -> str:
    return f"{PREFIX}:themes:{encode(community)}"


def kpi(community: str, size: int, start: int) -> str:
    return f"{PREFIX}:kpi:{encode(community)}:{size}s:{start}"


def members_at_risk(community: str) -> str:
    return f"{PREFIX}:members:at-risk:{encode(community)}"


def members_rising(community: str) -> str:
    return f"{PREFIX}:members:rising:{encode(community)}"


def members_model(community: str) -> str:
    return f"{PREFIX}:members:model:{encode(community)}"


def recs(community: str, member: str) -> str:
    """Sorted set meetup → score: recommendations for one member of one community."""
    return f"{PREFIX}:recs:{encode(community)}:{encode(member)}"


def pattern(kind: str) -> str:
    """``SCAN MATCH`` pattern of every per-community key of ``kind`` (tools and studies, never the
    worker or the API: they build keys).  ``kind`` is the segment after ``pulse:``."""
    return f"{PREFIX}:{kind}:*"


def ids_of(key: str | bytes, kind: str) -> list[str]:
    """The ids in a key of ``kind``, decoded: ``ids_of(meetup("a:b", "m1"), "meetup") == ["a:b", "m1"]``.

    >>> ids_of(meetup("a:b", "m1"), "meetup"), ids_of(matches("x", "p:1"), "matches")
    (['a:b', 'm1'], ['x', 'p:1'])
    """
    text = key.decode() if isinstance(key, bytes) else key
    return [decode(part) for part in text.removeprefix(f"{PREFIX}:{kind}:").split(":")]


# --- Redis Cluster layout (PULSE_REDIS_CLUSTER=1 or a redis+cluster:// URL) -----------------------
# Single-node Redis uses the keys above as they are.  On Redis Cluster every key a batch writes
# must hash to one slot for the batch script to stay atomic, so each key moves into the slot of its
# input partition number p (the task posts[p], reactions[p], rsvps[p]) with a hash tag:
# ``pulse:X`` becomes ``pulse:{pN}:X``.  Ids are percent-encoded, so no id brings a brace of its own.
# The global boards (communities leaderboard, window starts, the all-communities alert list,
# progress) exist once per partition and readers merge them; a directory per partition says
# which communities live there (community → wall-clock ms of its last batch).

PARTITIONS = f"{PREFIX}:partitions"
"""String (cluster layout only): the input topics' partition count, written by every worker at start,
so readers know which partition tags to merge and look communities up in."""


def tag(partition: int) -> str:
    """The hash tag of input partition ``partition``: ``{p3}``."""
    return f"{{p{partition}}}"


def tagged(key: str, partition: int | None) -> str:
    """``key`` in the hash slot of ``partition`` (cluster layout); ``None``: single-node, unchanged.

    >>> tagged(activity("a:b", 3600, 0), 3), tagged(PROGRESS, 0), tagged(PROGRESS, None)
    ('pulse:{p3}:activity:a%3Ab:3600s:0', 'pulse:{p0}:progress', 'pulse:progress')
    """
    if partition is None:
        return key
    return f"{PREFIX}:{tag(partition)}:{key.removeprefix(PREFIX + ':')}"


def untagged(key: str) -> tuple[str, int | None]:
    """The single-node key and the partition of a (possibly) tagged key: inverse of :func:`tagged`.

    >>> untagged("pulse:{p12}:lb:communities:3600s:0"), untagged("pulse:progress")
    (('pulse:lb:communities:3600s:0', 12), ('pulse:progress', None))
    """
    head = f"{PREFIX}:{{p"
    if not key.startswith(head):
        return key, None
    close = key.index("}", len(head))
    return f"{PREFIX}:{key[close + 2 :]}", int(key[len(head) : close])


def homes(partition: int) -> str:
    """Sorted set (cluster layout) community → wall-clock ms of its last batch, of the communities
    whose keys carry ``partition``'s tag; entries idle longer than the idle TTL are trimmed."""
    return tagged(f"{PREFIX}:homes", partition)


_COMMUNITY_KINDS = (
    "lb:members", "members:at-risk", "members:rising", "members:model", "activity", "alerts",
    "atmosphere", "forecast", "turnout", "meetups", "meetup", "matches", "trends", "themes", "kpi",
    "recs", "state", "log",
)  # fmt: skip


def community_of(key: str) -> str | None:
    """The community a per-community key belongs to (``None`` for global and bookkeeping keys):
    the cluster store routes operators' writes to their community's partition with it.

    >>> c = "a:b{c}"
    >>> builders = [activity(c, 60, 0), members_board(c, 60, 0), alerts(c), atmosphere(c), forecast(c),
    ...     turnout(c), meetup(c, "m:1"), meetups(c), matches(c, "p"), match_index(c), trends(c),
    ...     trend_topic(c, "t"), themes(c), kpi(c, 60, 0), members_at_risk(c), members_rising(c),
    ...     members_model(c), recs(c, "m"), state(c), log(c)]
    >>> {community_of(k) for k in builders}
    {'a:b{c}'}
    >>> community_of(ALERTS_ALL), community_of(communities_board(60, 0)), community_of(PROGRESS)
    (None, None, None)
    """
    rest = key.removeprefix(PREFIX + ":")
    for kind in _COMMUNITY_KINDS:
        if rest.startswith(kind) and rest[len(kind) : len(kind) + 1] == ":":
            return decode(rest[len(kind) + 1 :].split(":", 1)[0])
    return None
