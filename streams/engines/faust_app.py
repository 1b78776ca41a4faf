"""The Faust engine: a Faust app whose agent feeds ``take_events`` batches to the shared applier.

This is the standard Faust deployment (``faust`` worker lifecycle, aiokafka consumer group,
Faust's assignor).  The agent reads raw bytes and never touches a Faust Table: the state of
record is Redis, written atomically with the offsets, so the agent needs ``take_events``
(for offsets) rather than per-event table updates — that per-event machinery is what caps an
idiomatic Faust agent at a few thousand events/s here.

On every assignment the handler restores progress from Redis and seeks each partition to
its stored offset; the pipeline also skips any message below it, so a message redelivered
by Faust is never applied twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from confluent_kafka import Producer
from faust.types import TP

from streams.config import INPUT_TOPICS, Settings
from streams.engines.applier import BatchApplier, tune_gc
from streams.engines.batch import producer_config
from streams.pipeline import Message
from streams.sinks.redis_store import RedisStore
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app (one agent over the three input topics)."""
    app = faust.App(
        settings.group_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(0.1, settings.session_timeout_ms / 4000),
        web_enabled=False,
        store="memory://",
    )
    store = RedisStore.connect(settings)
    applier = BatchApplier(settings, store, Producer(producer_config(settings)))
    logical = {settings.topic(t): t for t in INPUT_TOPICS}
    lock = asyncio.Lock()
    assignment: set[TP] = set()
    topic = app.topic(*logical, value_serializer="raw", key_serializer="raw")

    @app.agent(topic, concurrency=1)
    async def apply_events(stream: faust.StreamT) -> None:
        # faust.Stream has take_events, but its StreamT interface does not declare it
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.batch_max, within=settings.batch_timeout_ms / 1000
        ):
            messages = [
                Message(logical[m.topic], m.partition, m.offset, m.key, m.value)
                for m in (e.message for e in events)
            ]
            async with lock:
                await _apply(messages)

    @app.timer(interval=max(0.05, settings.align_idle_ms / 2000))
    async def release_held() -> None:
        """A quiet stream brings no batch: release what event-time alignment held, once it may."""
        if applier.held:
            async with lock:
                await _apply([])

    async def _apply(messages: list[Message]) -> None:
        loop = asyncio.get_running_loop()
        result = applier.process(messages)
        if result.messages and not await loop.run_in_executor(None, applier.commit, result):
            await _restore(assignment)  # refused: rewind to what Redis holds

    async def _restore(assigned: set[TP]) -> None:
        loop = asyncio.get_running_loop()
        tps = [(logical[tp.topic], tp.partition) for tp in assigned if tp.topic in logical]
        await loop.run_in_executor(None, applier.restore, tps)
        for tp in assigned:
            if tp.topic not in logical:
                continue
            stored = applier.progress[(logical[tp.topic], tp.partition)].next_offset
            await app.consumer.seek(tp, max(stored, 0))

    # the documented receiver signature (sender, assigned, **kwargs); mode's SignalHandlerT
    # wrongly demands *args and a keyword-only ``signal`` parameter
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        async with lock:
            assignment.clear()
            assignment.update(assigned)
            await _restore(assigned)

    @app.task
    async def create_topics() -> None:
        ensure_topics(settings)

    app.pulse_applier = applier  # type: ignore[attr-defined]
    return app


def _credentials(settings: Settings) -> Any:
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username or "",
            password=password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=_ssl_context(settings) if settings.kafka_security_protocol == "SASL_SSL" else None,
        )
    if settings.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(_ssl_context(settings))
    return None


def _ssl_context(settings: Settings) -> Any:
    import ssl

    return ssl.create_default_context(cafile=settings.kafka_ssl_cafile)


def run_worker(settings: Settings) -> None:
    """Run the Faust worker in this process until it is stopped (SIGTERM/SIGINT)."""
    ensure_topics(settings)
    app = create_app(settings)
    tune_gc()
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()
