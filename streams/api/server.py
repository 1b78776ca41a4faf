"""``pulse serve``: the read-only HTTP API, server-sent updates and the live page.

Endpoints (all GET; the contract is ``streams/api/openapi.json``, served at ``/openapi.json``):

====================================================  ========================================================
``/api/health``                                       Redis reachable? subscribed to updates? current window
``/api/communities``                                  communities leaderboard of a window
``/api/communities/{c}``                              activity over the recent windows + members leaderboard
``/api/communities/{c}/members``                      members leaderboard of a window
``/api/communities/{c}/atmosphere``                   ``pulse:atmosphere:{c}`` + ``pulse:alerts:{c}``
``/api/communities/{c}/forecast``                     hash ``pulse:forecast:{c}``
``/api/communities/{c}/matches``                      sorted sets ``pulse:matches:{c}:{post}``
``/api/communities/{c}/trends``                       hot topics ``pulse:trends:{c}`` (+ topic hashes, themes)
``/api/communities/{c}/insights``                     ``pulse:members:at-risk:{c}``, ``…:rising:{c}``
``/api/communities/{c}/kpis``                         hash ``pulse:kpi:{c}:{size}s:{start}`` of a window
``/api/communities/{c}/members/{m}/recommendations``  sorted set ``pulse:recs:{c}:{m}``
``/api/alerts``                                       newest alerts of all communities, merged
``/api/events``                                       server-sent events: which communities changed
``/``                                                 the live page (``static/``)
====================================================  ========================================================

Why it is built this way:

- **Redis only, read only.**  The server never talks to Kafka, so any number of ``pulse serve``
  processes can run beside the workers without joining their consumer group or slowing them.
- **One subscription per server.**  A single Redis pub/sub connection on ``pulse:updates`` is fanned
  out to every browser through in-process queues: a wall of screens costs Redis one subscriber.
  A busy worker publishes after every batch (tens per second), so bursts are merged for
  ``coalesce_seconds`` into one ``update`` event listing every community that changed; a browser
  only needs to know *what* to re-read.  A quiet stream gets a comment every ``heartbeat_seconds``
  (15 s) so proxies and load balancers keep the connection open.
- **Bad input is a 4xx, never a 500.**  Parameters are checked before any Redis call: ``window``
  is ``current`` or an epoch second (rounded down to its window's start), ``limit`` an integer in
  1..500, a community (or member) 1-256 characters with no control characters; otherwise 400 with
  ``{"error": "bad_parameter", "parameter": ..., "detail": ...}``.  An unreachable Redis is a 503.
- **Absent optional data.**  Atmosphere, forecast and a window's KPIs are single documents: 404
  while their key is absent (the operator is not deployed, or has not scored the community yet).
  Alerts, matches, hot topics, member insights and recommendations are collections: 200 with empty
  lists.  A community with no activity in the recent windows is 404 on its detail endpoint; its
  members leaderboard of an empty window is simply empty.
- **Bounded key listings.**  Alerts and matches live under per-community/per-post keys, listed with
  ``SCAN ... COUNT`` capped in keys and round trips and cached until the next relayed update (at
  most a couple of seconds), so a crowd of clients costs Redis one bounded scan per update, not one
  per request; responses say ``complete: false`` when a cap cut the listing short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError, ResponseError

from streams import keys
from streams.api.layout import ReadLayout
from streams.config import Settings
from streams.sinks.cluster import cluster_mode, connect_async, plain_url

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
OPENAPI_PATH = HERE / "openapi.json"

MAX_LIMIT = 500
"""Upper bound of every ``limit``-like parameter: keeps one response and its Redis work small."""
MAX_COMMUNITY_CHARS = 256  # the event contract's maxLength for ``community``
MAX_WINDOW_START = 99_999_999_999  # epoch seconds, year 5138: 11 digits, far beyond any real window
MATCH_INDEX_READ = 1000  # at most this many posts of a community's match index per request

_LIMIT_RE = re.compile(r"[0-9]{1,4}")  # checked before int(): a 10,000-digit string never reaches it
_WINDOW_RE = re.compile(r"[0-9]{1,11}")
_BAD_COMMUNITY_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", aioredis.Redis)
LAYOUT = web.AppKey("layout", ReadLayout)
HEARTBEAT = web.AppKey("heartbeat_seconds", float)
COALESCE = web.AppKey("coalesce_seconds", float)
OPENAPI = web.AppKey("openapi", bytes)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------------------------------
# Keys of the read contract (README: "Redis read contract")
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# Errors and parameters
# --------------------------------------------------------------------------------------------------


class ApiError(Exception):
    """A client-facing error: rendered as ``{"error", "detail", "parameter"?}`` with ``status``."""

    def __init__(self, status: int, error: str, detail: str, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.parameter is not None:
            doc["parameter"] = self.parameter
        return doc


def _shown(value: str) -> str:
    """A client's value quoted for an error message, cut short (it may be megabytes)."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _single(request: web.Request, name: str) -> str | None:
    """The one value of query parameter ``name`` (a repeated one is ambiguous: rejected)."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise ApiError(400, "bad_parameter", f"{name} is given {len(values)} times; give it once", name)
    return values[0] if values else None


def int_param(request: web.Request, name: str, default: int, maximum: int = MAX_LIMIT) -> int:
    """An integer query parameter in 1..``maximum`` (``default`` when absent)."""
    raw = _single(request, name)
    if raw is None:
        return default
    if not _LIMIT_RE.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise ApiError(
            400, "bad_parameter", f"{name} must be an integer from 1 to {maximum}, got {_shown(raw)}", name
        )
    return int(raw)


def window_param(request: web.Request, size: int) -> int | None:
    """The requested window's start, or None for ``current`` (the newest window with data).

    Any epoch second inside a window names that window, so ``window=<now>`` works as well as the
    exact start.
    """
    raw = _single(request, "window")
    if raw is None or raw == "current":
        return None
    if not _WINDOW_RE.fullmatch(raw):
        raise ApiError(
            400,
            "bad_parameter",
            f"window must be 'current' or an epoch second from 0 to {MAX_WINDOW_START}, got {_shown(raw)}",
            "window",
        )
    start = int(raw)
    return start - start % size


def id_param(request: web.Request, name: str) -> str:
    """An id path segment (``community``, ``member``): 1-256 characters, none a control character."""
    value = request.match_info[name]
    if len(value) > MAX_COMMUNITY_CHARS:
        raise ApiError(
            400,
            "bad_parameter",
            f"{name} must be at most {MAX_COMMUNITY_CHARS} characters, got {len(value)}",
            name,
        )
    bad = _BAD_COMMUNITY_CHARS.search(value)
    if bad:
        raise ApiError(
            400,
            "bad_parameter",
            f"{name} must not contain control characters, found U+{ord(bad.group()):04X}",
            name,
        )
    return value


def community_param(request: web.Request) -> str:
    """The ``{community}`` path segment: 1-256 characters, none of them a control character."""
    return id_param(request, "community")


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------


def _number(value: str | None) -> float:
    """A stored number (17 significant digits, see README); 0 when absent or unreadable."""
    try:
        number = float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
    return number if math.isfinite(number) else 0.0


def _activity(raw: dict[str, str]) -> dict[str, Any]:
    """An activity hash as the API shows it: counts as integers, the score as the stored double."""
    return {
        "interactions": int(_number(raw.get("interactions"))),
        "participants": int(_number(raw.get("participants"))),
        "posts": int(_number(raw.get("posts"))),
        "score": _number(raw.get("score")),
    }


def _maybe(value: str | None) -> float | None:
    """A stored number that may be undefined: None when absent, empty ("" is an undefined rate),
    unreadable or not finite."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _maybe_int(value: str | None) -> int | None:
    number = _maybe(value)
    return int(number) if number is not None else None


def _text(value: Any) -> str:
    """A reply as text: the clients decode responses, but redis-py's types still say bytes | str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _field(value: Any) -> Any:
    """A hash field written by an operator: a finite number, a JSON object/array, or the text."""
    value = _text(value)
    with contextlib.suppress(ValueError):
        number = float(value)
        if math.isfinite(number):
            return number
    if value[:1] in ("{", "["):
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(value)
    return value


def _alert(raw: str, community: str) -> dict[str, Any]:
    """One element of ``pulse:alerts:{community}``: a JSON object, tagged with its community.

    Anything else (plain text from an older writer) is kept as the alert's ``message``.
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        return {"community": community, "message": raw}
    doc.setdefault("community", community)
    return doc


def alert_time_ms(alert: dict[str, Any]) -> float:
    """When an alert was raised, in epoch ms, for merging lists; 0 when it does not say.

    ``ts`` may be epoch ms, epoch seconds (< 1e11) or an RFC 3339 string, as events' ``ts`` may.

    >>> alert_time_ms({"ts": 1_700_000_000_000}), alert_time_ms({"ts": 1_700_000_000})
    (1700000000000, 1700000000000)
    >>> alert_time_ms({"ts": "2023-11-14T22:13:20Z"}), alert_time_ms({})
    (1700000000000.0, 0)
    """
    ts = alert.get("ts")
    if isinstance(ts, bool):
        return 0
    if isinstance(ts, int | float) and math.isfinite(ts):
        return ts * 1000 if abs(ts) < 1e11 else ts
    if isinstance(ts, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000
    return 0


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """orjson-encoded JSON; never cached (every answer is a live read)."""
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


# --------------------------------------------------------------------------------------------------
# Bounded key listing and the updates hub
# --------------------------------------------------------------------------------------------------


Item = tuple[bytes, bytes] | None
"""What an SSE client's queue carries: (event name, data), or None to end the stream."""


class UpdateHub:
    """One Redis subscription to ``pulse:updates``, fanned out to every SSE client's queue.

    Each client has a small bounded queue; a client too slow to keep up loses its oldest events,
    which is harmless because every event only says "re-read these communities".
    """

    QUEUE_SIZE = 16
    POLL_SECONDS = 0.25
    """Longest read on the subscription before the relay looks at its stop flag.

    The relay is stopped by a flag, never cancelled: redis-py (8.1) can swallow a cancellation
    that lands while a pub/sub connection is being set up and then wait forever, which would hang
    the server's shutdown.
    """

    def __init__(
        self, client: aioredis.Redis, coalesce_seconds: float, on_update: Callable[[], None] | None = None
    ) -> None:
        self.client = client
        self.coalesce_seconds = coalesce_seconds
        self.on_update = on_update
        self.clients: set[asyncio.Queue[Item]] = set()
        self.subscribed = asyncio.Event()
        self.stopping = asyncio.Event()
        self.relayed = 0

    def connect(self) -> asyncio.Queue[Item]:
        queue: asyncio.Queue[Item] = asyncio.Queue(self.QUEUE_SIZE)
        self.clients.add(queue)
        return queue

    def disconnect(self, queue: asyncio.Queue[Item]) -> None:
        self.clients.discard(queue)

    def broadcast(self, item: Item) -> None:
        for queue in list(self.clients):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(item)

    def close(self) -> None:
        """End every client's stream (server shutdown): SSE handlers would otherwise never return."""
        self.broadcast(None)

    def stop(self) -> None:
        """Make :meth:`run` return within ``POLL_SECONDS``."""
        self.stopping.set()

    async def run(self) -> None:
        """Relay until :meth:`stop`; resubscribe with backoff when Redis goes away.

        After a resubscription clients get a ``resync`` event: updates published meanwhile were
        lost (pub/sub does not buffer), so they re-read everything.
        """
        backoff = 0.5
        first = True
        while not self.stopping.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.UPDATES)
                self.subscribed.set()
                if not first:
                    log.info("resubscribed to %s", keys.UPDATES)
                    self.broadcast((b"resync", b"{}"))
                first, backoff = False, 0.5
                while not self.stopping.is_set():
                    changed = await self._burst(pubsub)
                    if changed:
                        self.relayed += 1
                        if self.on_update is not None:
                            self.on_update()
                        self.broadcast((b"update", orjson.dumps(sorted(changed))))
            except (RedisError, OSError) as exc:
                log.warning("updates subscription lost (%s); retrying in %.1f s", exc, backoff)
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), backoff)
            backoff = min(backoff * 2, 10.0)

    async def _burst(self, pubsub: aioredis.client.PubSub) -> set[str]:
        """The communities of the next message and of all those within ``coalesce_seconds`` of it."""
        changed: set[str] = set()
        message = await pubsub.get_message(timeout=self.POLL_SECONDS)
        if message is None:
            return changed
        self._merge(changed, message)
        deadline = time.monotonic() + self.coalesce_seconds
        while (left := deadline - time.monotonic()) > 0:
            message = await pubsub.get_message(timeout=left)
            if message is not None:
                self._merge(changed, message)
        return changed

    @staticmethod
    def _merge(changed: set[str], message: dict[str, Any]) -> None:
        try:
            communities = orjson.loads(message.get("data") or b"")
        except orjson.JSONDecodeError:
            log.debug("ignoring a non-JSON message on %s", keys.UPDATES)
            return
        if isinstance(communities, list):
            changed.update(c for c in communities if isinstance(c, str))


HUB = web.AppKey("hub", UpdateHub)


# --------------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------------


async def _current_window(layout: ReadLayout, size: int) -> int | None:
    latest = await layout.windows(size, 1)
    return latest[0] if latest else None


async def health(request: web.Request) -> web.Response:
    """Liveness for load balancers: 200 while Redis answers, 503 (same shape) when it does not."""
    app = request.app
    size = app[SETTINGS].window_seconds
    doc: dict[str, Any] = {
        "status": "ok",
        "redis": "up",
        "subscribed": app[HUB].subscribed.is_set(),
        "clients": len(app[HUB].clients),
        "window_seconds": size,
        "current_window": None,
    }
    try:
        doc["current_window"] = await _current_window(app[LAYOUT], size)
    except (RedisError, OSError):
        doc.update(status="unavailable", redis="down")
        return json_response(doc, status=503)
    return json_response(doc)


async def communities(request: web.Request) -> web.Response:
    """The communities leaderboard of one window, with each community's activity and last rank."""
    app = request.app
    size = app[SETTINGS].window_seconds
    limit = int_param(request, "limit", 20)
    requested = window_param(request, size)
    client, layout = app[REDIS], app[LAYOUT]
    start = requested if requested is not None else await _current_window(layout, size)
    doc: dict[str, Any] = {"window_seconds": size, "window": start, "total": 0, "communities": []}
    if start is None:
        return json_response(doc)
    top, doc["total"] = await layout.board(keys.communities_board(size, start), limit)
    if not top:
        return json_response(doc)
    previous = keys.communities_board(size, start - size)
    async with client.pipeline(transaction=False) as pipe:
        for name, _, partition in top:  # partition: the board it came from (cluster), its home
            pipe.hgetall(keys.tagged(keys.activity(name, size, start), partition))
            if not layout.cluster:
                pipe.zrevrank(previous, name)
        details = await pipe.execute()
    if layout.cluster:
        ranks = [await layout.rank(previous, name) for name, _, _ in top]
        details = [x for pair in zip(details, ranks, strict=True) for x in pair]
    for i, (name, score, _) in enumerate(top):
        act, prev_rank = details[2 * i], details[2 * i + 1]
        doc["communities"].append(
            {
                "rank": i + 1,
                "community": name,
                **_activity(act),
                "score": score,
                "previous_rank": prev_rank + 1 if prev_rank is not None else None,
            }
        )
    return json_response(doc)


def _ranked_members(rows: list[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"rank": i + 1, "member": m, "contribution": s} for i, (m, s) in enumerate(rows)]


async def community(request: web.Request) -> web.Response:
    """One community: its activity over the newest ``windows`` windows and a members leaderboard."""
    app = request.app
    size = app[SETTINGS].window_seconds
    name = community_param(request)
    limit = int_param(request, "limit", 10)
    history_len = int_param(request, "windows", 24)
    requested = window_param(request, size)
    client, layout = app[REDIS], app[LAYOUT]
    starts = await layout.windows(size, history_len)
    starts.reverse()  # oldest first: the order a chart draws
    start = requested if requested is not None else (starts[-1] if starts else None)
    k = await layout.keys_of(name)
    async with client.pipeline(transaction=False) as pipe:
        for s in starts:
            pipe.hgetall(k(keys.activity(name, size, s)))
        if start is not None:
            pipe.hgetall(k(keys.activity(name, size, start)))
            pipe.zrevrange(k(keys.members_board(name, size, start)), 0, limit - 1, withscores=True)
            pipe.zcard(k(keys.members_board(name, size, start)))
            if not layout.cluster:
                pipe.zrevrank(keys.communities_board(size, start), name)
        replies = await pipe.execute()
    if layout.cluster and start is not None:
        replies.append(await layout.rank(keys.communities_board(size, start), name))
    history = replies[: len(starts)]
    current, member_rows, members_total, rank = replies[len(starts) :] or ({}, [], 0, None)
    if not current and not member_rows and not any(history):
        raise ApiError(
            404, "not_found", f"no activity for community {_shown(name)} in the newest {history_len} windows"
        )
    return json_response(
        {
            "community": name,
            "window_seconds": size,
            "window": start,
            "rank": rank + 1 if rank is not None else None,
            "activity": _activity(current),
            "history": [{"start": s, **_activity(h)} for s, h in zip(starts, history, strict=True)],
            "members_total": members_total,
            "members": _ranked_members(member_rows),
        }
    )


async def members(request: web.Request) -> web.Response:
    """A community's members leaderboard of one window (empty when it had no events then)."""
    app = request.app
    size = app[SETTINGS].window_seconds
    name = community_param(request)
    limit = int_param(request, "limit", 20)
    requested = window_param(request, size)
    client, layout = app[REDIS], app[LAYOUT]
    start = requested if requested is not None else await _current_window(layout, size)
    doc: dict[str, Any] = {
        "community": name,
        "window_seconds": size,
        "window": start,
        "total": 0,
        "members": [],
    }
    if start is not None:
        key = (await layout.keys_of(name))(keys.members_board(name, size, start))
        async with client.pipeline(transaction=False) as pipe:
            pipe.zrevrange(key, 0, limit - 1, withscores=True)
            pipe.zcard(key)
            rows, doc["total"] = await pipe.execute()
        doc["members"] = _ranked_members(rows)
    return json_response(doc)


async def atmosphere(request: web.Request) -> web.Response:
    """The atmosphere hash and newest alerts of a community; 404 while neither exists."""
    name = community_param(request)
    limit = int_param(request, "limit", 20)
    client = request.app[REDIS]
    k = await request.app[LAYOUT].keys_of(name)
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(k(keys.atmosphere(name)))
        pipe.lrange(k(keys.alerts(name)), 0, limit - 1)
        fields, alerts = await pipe.execute()
    if not fields and not alerts:
        raise ApiError(404, "not_found", f"no atmosphere or alerts for community {_shown(name)} yet")
    return json_response(
        {
            "community": name,
            "atmosphere": {k: _field(v) for k, v in fields.items()} if fields else None,
            "alerts": [_alert(a, name) for a in alerts],
        }
    )


async def forecast(request: web.Request) -> web.Response:
    """The forecast hash of a community; 404 while it does not exist."""
    name = community_param(request)
    k = await request.app[LAYOUT].keys_of(name)
    fields = await request.app[REDIS].hgetall(k(keys.forecast(name)))
    if not fields:
        raise ApiError(404, "not_found", f"no forecast for community {_shown(name)} yet")
    return json_response({"community": name, "forecast": {k: _field(v) for k, v in fields.items()}})


async def matches(request: web.Request) -> web.Response:
    """Match candidates per post of a community, best first; an empty list when there are none.
    The community's posts come from its match index (no key scan per request)."""
    name = community_param(request)
    limit = int_param(request, "limit", 20)
    per_post = int_param(request, "candidates", 5, maximum=50)
    client = request.app[REDIS]
    k = await request.app[LAYOUT].keys_of(name)
    listed = [_text(p) for p in await client.zrevrange(k(keys.match_index(name)), 0, MATCH_INDEX_READ - 1)]
    posts: list[dict[str, Any]] = []
    if listed:
        async with client.pipeline(transaction=False) as pipe:
            for post in listed:
                key = k(keys.matches(name, post))
                pipe.zrevrange(key, 0, per_post - 1, withscores=True)
                pipe.zcard(key)
            replies = await pipe.execute(raise_on_error=False)
        for i, post in enumerate(listed):
            rows, total = replies[2 * i], replies[2 * i + 1]
            if isinstance(rows, Exception) or isinstance(total, Exception) or not rows:
                continue  # expired since it was listed, or not a sorted set: not a match list
            posts.append(
                {
                    "post": post,
                    "best": rows[0][1],
                    "total": total,
                    "candidates": [{"candidate": c, "score": s} for c, s in rows],
                }
            )
        posts.sort(key=lambda p: (-p["best"], p["post"]))
    complete = len(listed) < MATCH_INDEX_READ
    return json_response({"community": name, "complete": complete, "posts": posts[:limit]})


def _topic(raw: dict[str, str]) -> dict[str, Any]:
    """A topic hash ``pulse:trends:{c}:{topic}`` as the API shows it; null where a field is absent
    (the hash expires ``retention`` after its topic's last mention; the ranking keeps no TTL)."""
    return {
        "count": _maybe_int(raw.get("count")),
        "forecast": _maybe(raw.get("forecast")),
        "growth": _maybe(raw.get("growth")),
        "level": _maybe(raw.get("level")),
        "momentum": _maybe(raw.get("momentum")),
        "first_seen": _maybe_int(raw.get("first_seen")),
    }


def _themes(raw: str | None) -> list[dict[str, Any]]:
    """``pulse:themes:{c}``: a JSON array of theme objects; anything else reads as no themes."""
    if not raw:
        return []
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(doc, list):
        return []
    return [t for t in doc if isinstance(t, dict) and isinstance(t.get("topic"), str)]


async def trends(request: web.Request) -> web.Response:
    """Hot topics of a community, best trend score first, with each topic's hash and the meetup
    theme suggestions; empty lists when the trends operator has written nothing for it."""
    name = community_param(request)
    limit = int_param(request, "limit", 20)
    client = request.app[REDIS]
    k = await request.app[LAYOUT].keys_of(name)
    key = k(keys.trends(name))
    async with client.pipeline(transaction=False) as pipe:
        pipe.zrevrange(key, 0, limit - 1, withscores=True)
        pipe.zcard(key)
        pipe.get(k(keys.themes(name)))
        rows, total, themes = await pipe.execute()
    details: list[dict[str, str]] = []
    if rows:
        async with client.pipeline(transaction=False) as pipe:
            for topic, _ in rows:
                pipe.hgetall(k(keys.trend_topic(name, topic)))
            details = await pipe.execute()
    return json_response(
        {
            "community": name,
            "total": total,
            "topics": [
                {"rank": i + 1, "topic": topic, "score": score, **_topic(raw)}
                for i, ((topic, score), raw) in enumerate(zip(rows, details, strict=True))
            ],
            "themes": _themes(themes),
        }
    )


def _ranked(rows: list[tuple[str, float]], total: int) -> dict[str, Any]:
    return {
        "total": total,
        "members": [{"rank": i + 1, "member": m, "score": s} for i, (m, s) in enumerate(rows)],
    }


async def insights(request: web.Request) -> web.Response:
    """Members at risk of drifting away and rising members of a community (best first); empty
    lists until the members operator has passed its first checkpoint for the community."""
    name = community_param(request)
    limit = int_param(request, "limit", 10)
    client = request.app[REDIS]
    k = await request.app[LAYOUT].keys_of(name)
    at_risk, rising = k(keys.members_at_risk(name)), k(keys.members_rising(name))
    async with client.pipeline(transaction=False) as pipe:
        for key in (at_risk, rising):
            pipe.zrevrange(key, 0, limit - 1, withscores=True)
            pipe.zcard(key)
        risk_rows, risk_total, rising_rows, rising_total = await pipe.execute()
    return json_response(
        {
            "community": name,
            "at_risk": _ranked(risk_rows, risk_total),
            "rising": _ranked(rising_rows, rising_total),
        }
    )


KPI_COUNTS = (
    "posts", "replied", "needs_opened", "needs_resolved", "meetups", "capacity", "attended",
    "going", "no_shows", "new_members", "returned",
)  # fmt: skip
KPI_RATES = (
    "reply_rate", "median_first_reply_s", "match_success_rate", "fill_rate", "no_show_rate", "return_rate"
)  # fmt: skip
KPI_LOOKBACK = 48
"""Windows (newest first, ``pulse:windows:{size}s``) searched for a community's current KPIs."""


async def kpis(request: web.Request) -> web.Response:
    """The operations KPIs of one window of a community; 404 while that window has none.

    ``current`` is the newest of the newest ``KPI_LOOKBACK`` windows that has the community's
    KPI hash (a quiet community's current KPIs are those of its last active window).
    """
    app = request.app
    size = app[SETTINGS].window_seconds
    name = community_param(request)
    requested = window_param(request, size)
    client = app[REDIS]
    k = await app[LAYOUT].keys_of(name)
    start = requested
    if start is None:
        starts = await app[LAYOUT].windows(size, KPI_LOOKBACK)
        if starts:
            async with client.pipeline(transaction=False) as pipe:
                for s in starts:
                    pipe.exists(k(keys.kpi(name, size, s)))
                found = await pipe.execute()
            start = next((s for s, hit in zip(starts, found, strict=True) if hit), None)
        if start is None:
            raise ApiError(
                404, "not_found", f"no KPIs for community {_shown(name)} in the newest {KPI_LOOKBACK} windows"
            )
    # the client decodes responses (see _text): keys and values are str
    fields = cast("dict[str, str]", await client.hgetall(k(keys.kpi(name, size, start))))
    if not fields:
        raise ApiError(404, "not_found", f"no KPIs for community {_shown(name)} in window {start}")
    return json_response(
        {
            "community": name,
            "window_seconds": size,
            "window": start,
            "final": _number(fields.get("final")) == 1,
            "kpis": {
                **{k: int(_number(fields.get(k))) for k in KPI_COUNTS},
                **{k: _maybe(fields.get(k)) for k in KPI_RATES},
            },
        }
    )


async def recommendations(request: web.Request) -> web.Response:
    """Upcoming meetups recommended to a member, best first; empty when there are none (the
    recommendations operator writes a member's list after they RSVP or react, until it expires)."""
    name = community_param(request)
    member = id_param(request, "member")
    limit = int_param(request, "limit", 5, maximum=50)
    key = (await request.app[LAYOUT].keys_of(name))(keys.recs(name, member))
    async with request.app[REDIS].pipeline(transaction=False) as pipe:
        pipe.zrevrange(key, 0, limit - 1, withscores=True)
        pipe.zcard(key)
        rows, total = await pipe.execute()
    return json_response(
        {
            "community": name,
            "member": member,
            "total": total,
            "meetups": [{"rank": i + 1, "meetup": m, "score": s} for i, (m, s) in enumerate(rows)],
        }
    )


async def alerts(request: web.Request) -> web.Response:
    """The newest alerts of every community, newest first (the worker's ``pulse:alerts`` list)."""
    limit = int_param(request, "limit", 50)
    rows = await request.app[LAYOUT].alerts(limit, lambda raw: alert_time_ms(_alert(raw, "")))
    listed = [_alert(raw, "") for raw in rows]
    return json_response({"complete": True, "alerts": listed})


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``ready`` once, then ``update`` (JSON list of changed communities),
    ``resync`` after the server lost its Redis subscription, and ``: heartbeat`` comments."""
    app = request.app
    hub = app[HUB]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    await response.prepare(request)
    queue = hub.connect()
    heartbeat = app[HEARTBEAT]
    try:
        ready = orjson.dumps({"window_seconds": app[SETTINGS].window_seconds, "heartbeat_seconds": heartbeat})
        await response.write(b"retry: 3000\nevent: ready\ndata: " + ready + b"\n\n")
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if item is None:
                break
            event, data = item
            await response.write(b"event: " + event + b"\ndata: " + data + b"\n\n")
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        hub.disconnect(queue)
    return response


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


# --------------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------------

API_ROUTES: list[tuple[str, Handler]] = [
    ("/api/health", health),
    ("/api/communities", communities),
    ("/api/communities/{community}", community),
    ("/api/communities/{community}/members", members),
    ("/api/communities/{community}/atmosphere", atmosphere),
    ("/api/communities/{community}/forecast", forecast),
    ("/api/communities/{community}/matches", matches),
    ("/api/communities/{community}/trends", trends),
    ("/api/communities/{community}/insights", insights),
    ("/api/communities/{community}/kpis", kpis),
    ("/api/communities/{community}/members/{member}/recommendations", recommendations),
    ("/api/alerts", alerts),
    ("/api/events", events),
]
"""Every API path (all GET): exactly the paths of ``openapi.json`` (a test holds them equal)."""

_REASONS = {404: "not_found", 405: "method_not_allowed"}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API errors as JSON: 4xx with a reason for the client, 503 when Redis is unreachable."""
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        body = {"error": _REASONS.get(exc.status, "http_error"), "detail": f"{exc.reason}: {request.path}"}
        return json_response(body, status=exc.status, headers=headers)
    except ResponseError as exc:
        log.warning("Redis refused a read for %s: %s", request.path, exc)
        body = {
            "error": "redis_error",
            "detail": "Redis refused the read (a key does not have the documented type)",
        }
        return json_response(body, status=502)
    except (RedisError, OSError) as exc:
        log.warning("Redis unreachable for %s: %s", request.path, exc)
        return json_response(
            {"error": "redis_unavailable", "detail": "Redis is unreachable; retry later"}, status=503
        )


def _limit_in_flight(most: int) -> Any:
    """At most ``most`` requests served at once (server-sent event streams included); beyond that
    an immediate 503 with ``Retry-After``, so a crowd of clients cannot exhaust the server."""
    in_flight = 0

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if in_flight >= most:
            body = {"error": "busy", "detail": f"more than {most} requests in flight; retry later"}
            return json_response(body, status=503, headers={"Retry-After": "1"})
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    return limit


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Same-origin everything: the page loads nothing from elsewhere, so nothing else may run."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")


def _redis_client(settings: Settings, *, subscriber: bool = False, **kwargs: Any) -> aioredis.Redis:
    """The API's client: single node, or Redis Cluster.  On a cluster the subscriber is a plain
    client of the URL's node: ``PUBLISH`` reaches every node of a cluster."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "encoding_errors": "replace",  # a stray non-UTF-8 value must not fail a whole response
        "socket_connect_timeout": 5,
        **kwargs,
    }
    if subscriber and cluster_mode(settings):
        url = plain_url(settings.redis_url)
        plain = settings.model_copy(update={"redis_url": url, "redis_cluster": False})
        return connect_async(plain, health_check_interval=30, **options)  # type: ignore[return-value]
    if not cluster_mode(settings):
        options["health_check_interval"] = 30
    return connect_async(settings, **options)  # type: ignore[return-value]


async def _redis_context(app: web.Application) -> AsyncIterator[None]:
    """Redis clients and the updates relay for the app's lifetime."""
    settings = app[SETTINGS]
    client = _redis_client(settings, socket_timeout=10)
    subscriber = _redis_client(settings, subscriber=True)  # no read timeout: a quiet channel is normal
    hub = UpdateHub(subscriber, app[COALESCE])
    app[REDIS] = client
    app[LAYOUT] = ReadLayout(client, cluster_mode(settings))
    app[HUB] = hub
    relay = asyncio.create_task(hub.run(), name="pulse-updates-relay")
    try:
        yield
    finally:
        hub.stop()
        done, _ = await asyncio.wait({relay}, timeout=5)
        if not done:
            log.warning("the updates relay did not stop within 5 s; cancelling it")
            relay.cancel()
        await client.aclose()
        await subscriber.aclose()


async def _end_streams(app: web.Application) -> None:
    app[HUB].close()


def create_app(
    settings: Settings, *, heartbeat_seconds: float = 15.0, coalesce_seconds: float = 0.25
) -> web.Application:
    """The API + live page application for ``settings`` (Redis URL, credentials, window size)."""
    openapi_doc = OPENAPI_PATH.read_bytes()
    orjson.loads(openapi_doc)  # a broken committed document fails at start, not at the first request
    app = web.Application(middlewares=[_limit_in_flight(settings.api_max_requests), _errors])
    app[SETTINGS] = settings
    app[HEARTBEAT] = heartbeat_seconds
    app[COALESCE] = coalesce_seconds
    app[OPENAPI] = openapi_doc
    for path, handler in API_ROUTES:
        app.router.add_get(path, handler)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR)
    app.cleanup_ctx.append(_redis_context)
    app.on_shutdown.append(_end_streams)
    app.on_response_prepare.append(_security_headers)
    return app


def run(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until SIGINT/SIGTERM (``pulse serve``).  Loopback unless told otherwise: the API has
    no authentication of its own, so exposing it is a decision (``--host 0.0.0.0``)."""
    log.info("pulse serve: http://%s:%d/ redis=%s", host, port, settings.redis_url_redacted())
    web.run_app(
        create_app(settings),
        host=host,
        port=port,
        access_log=None,
        shutdown_timeout=5,
        print=None,
        keepalive_timeout=settings.api_idle_seconds,  # idle keep-alive connections are closed
        backlog=settings.api_max_requests,
    )


@contextlib.contextmanager
def serve_in_thread(
    settings: Settings, host: str = "127.0.0.1", port: int = 0, **app_kwargs: Any
) -> Iterator[str]:
    """Run the server on its own event loop in a background thread; yields its base URL.

    For synchronous callers that need a real listening server beside them (the browser and
    property tests, a demo).  ``port=0`` lets the OS pick a free port.
    """
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def start() -> web.AppRunner:
        runner = web.AppRunner(
            create_app(settings, **app_kwargs),
            access_log=None,
            shutdown_timeout=5,
            keepalive_timeout=settings.api_idle_seconds,
        )
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        return runner

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["runner"] = loop.run_until_complete(start())
        except BaseException as exc:
            box["error"] = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(box["runner"].cleanup())
            loop.close()

    thread = threading.Thread(target=main, name="pulse-serve", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("pulse serve did not start within 30 s")
    if "error" in box:
        raise box["error"]
    bound_host, bound_port = box["runner"].addresses[0][:2]
    try:
        yield f"http://{bound_host}:{bound_port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
