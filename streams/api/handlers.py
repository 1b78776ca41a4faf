"""The API's handlers, one per path of ``openapi.json`` (:data:`API_ROUTES`)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from streams import keys
from streams.api.hub import HUB
from streams.api.layout import ReadLayout
from streams.api.params import (
    HEARTBEAT,
    LAYOUT,
    MATCH_INDEX_READ,
    OPENAPI,
    REDIS,
    SETTINGS,
    STATIC_DIR,
    ApiError,
    Handler,
    _shown,
    community_param,
    id_param,
    int_param,
    window_param,
)
from streams.api.values import (
    _activity,
    _alert,
    _field,
    _maybe,
    _maybe_int,
    _number,
    _text,
    alert_time_ms,
    json_response,
)

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

