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
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError, ResponseError

from streams.api.handlers import API_ROUTES, index, openapi
from streams.api.hub import HUB, UpdateHub
from streams.api.layout import ReadLayout
from streams.api.params import (
    COALESCE,
    HEARTBEAT,
    LAYOUT,
    OPENAPI,
    OPENAPI_PATH,
    REDIS,
    SETTINGS,
    STATIC_DIR,
    ApiError,
    Handler,
)
from streams.api.values import json_response
from streams.config import Settings
from streams.sinks.cluster import cluster_mode, connect_async, plain_url

log = logging.getLogger(__name__)

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
