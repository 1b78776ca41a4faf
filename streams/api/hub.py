"""Live updates: one Redis subscription to ``pulse:updates``, fanned out to every SSE client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from streams import keys

log = logging.getLogger(__name__)

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


