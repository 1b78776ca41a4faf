"""Labelled event streams through the real pipeline: the engine room of ``pulse evaluate``.

The studies in ``studies/evaluate_*`` call the operators directly, which is quick and good
for choosing a model.  ``pulse evaluate`` judges what a user gets instead, so it takes the path
production takes: every event is encoded to JSON, published to Kafka (an embedded broker of its
own), decoded and validated by a worker (the batch engine, in a thread), applied by the
operators and written to Redis (an embedded ``redis-server``) in one transaction per batch.  The
evaluation then reads what a user would read: Redis keys and the ``alerts`` and
``match-candidates`` topics.

Streams are published in event-time slices (``checkpoint_ms``).  After each slice the harness
waits until the worker's stored offsets reach the slice's end and calls ``on_checkpoint`` with
the slice's end time, so an evaluation that judges a moment ("is the true offer in this need's
top 3 *now*?") reads Redis as it was then.  Fewer checkpoints are faster: each costs a round trip
through the broker and the worker's batch timeout.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from schemas.events import Event, Post, Reaction
from streams.config import Settings
from streams.publisher import Outgoing, TrackingPublisher
from streams.queries import applied_offsets

Checkpoint = Callable[[redis.Redis, int], None]
"""``on_checkpoint(client, until_ms)``: every event with ``ts < until_ms`` has been applied."""


def encode(ev: Event) -> Outgoing:
    """The JSON message a platform would publish for ``ev``, keyed by its community.

    >>> encode(Reaction("r1", "c1", "ann", 1_767_225_600_000, "p1", "like")).value
    b'{"id":"r1","community":"c1","member":"ann","ts":1767225600000,"post":"p1","reaction":"like"}'
    """
    doc: dict[str, Any] = {"id": ev.id, "community": ev.community, "member": ev.member, "ts": ev.ts}
    if isinstance(ev, Post):
        topic = "posts"
        doc.update(post=ev.post, text=ev.text, kind=ev.kind, tags=list(ev.tags))
        if ev.reply_to is not None:
            doc["reply_to"] = ev.reply_to
    elif isinstance(ev, Reaction):
        topic = "reactions"
        doc.update(post=ev.post, reaction=ev.reaction)
    else:
        topic = "rsvps"
        doc.update(meetup=ev.meetup, status=ev.status, meetup_tags=list(ev.meetup_tags))
        if ev.starts_at is not None:
            doc["starts_at"] = ev.starts_at
        if ev.capacity is not None:
            doc["capacity"] = ev.capacity
    return Outgoing(topic, ev.community.encode(), orjson.dumps(doc))


@dataclass
class PipelineRun:
    """A finished (or running) pass: the settings it used and a client of its Redis."""

    settings: Settings
    client: redis.Redis
    events: int = 0
    seconds: float = 0.0

    def topic_messages(self, logical: str, idle_seconds: float = 1.5) -> list[dict[str, Any]]:
        """Every JSON message on an output topic (``alerts``, ``match-candidates``), in partition order."""
        return read_topic(self.settings, logical, idle_seconds)


def read_topic(settings: Settings, logical: str, idle_seconds: float = 1.5) -> list[dict[str, Any]]:
    """Read a whole output topic from the beginning: until every partition reported its end and
    nothing arrived for ``idle_seconds`` (the embedded broker's end offsets are only lower bounds)."""
    name = settings.topic(logical)
    consumer = Consumer(
        {
            **settings.kafka_config(),
            "group.id": f"pulse-evaluate-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = sorted(consumer.list_topics(name, timeout=10).topics[name].partitions)
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        out: list[dict[str, Any]] = []
        last = time.monotonic()
        while len(at_end) < len(partitions) or time.monotonic() - last < idle_seconds:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    partition = msg.partition()
                    assert partition is not None  # an end-of-partition event names its partition
                    at_end.add(partition)
                continue
            value = msg.value()
            assert value is not None  # output topics carry JSON objects, never tombstones
            out.append(orjson.loads(value))
            last = time.monotonic()
        return out
    finally:
        consumer.close()


@contextlib.contextmanager
def pipeline_run(
    events: Sequence[Event],
    operators: str,
    *,
    checkpoint_ms: int | None = None,
    on_checkpoint: Checkpoint | None = None,
    label: str = "events",
    **overrides: Any,
) -> Iterator[PipelineRun]:
    """Publish ``events`` (sorted by ``ts``) through an embedded broker, a worker running
    ``operators`` and an embedded Redis; yields the finished run while the services still run.

    ``overrides`` are :class:`~streams.config.Settings` fields (``window_seconds``...).  The
    broker and Redis are always embedded and private to the run: an evaluation must never write
    into a platform's Redis.
    """
    from infra.local_services import EmbeddedBroker, EmbeddedRedis
    from streams.engines.local import worker_in_thread

    ordered = sorted(events, key=lambda e: e.ts)
    with tempfile.TemporaryDirectory(prefix="pulse-evaluate-") as workdir:
        broker = EmbeddedBroker(workdir=workdir).start()
        redis_server = EmbeddedRedis(workdir=workdir).start()
        settings = Settings(
            kafka_bootstrap=broker.bootstrap,
            redis_url=redis_server.url,
            operators=operators,
            topic_prefix="evaluate.",
            group_id="pulse-evaluate",
            metrics_port=0,
            session_timeout_ms=6000,
            **overrides,
        )
        client = redis.Redis.from_url(settings.redis_url)
        publisher = TrackingPublisher(settings)
        try:
            with worker_in_thread(settings, "pulse-evaluate-worker") as (_, worker):
                run = PipelineRun(settings, client)
                yield from _publish_and_wait(
                    ordered, operators, label, checkpoint_ms, on_checkpoint, publisher, run, worker
                )
        finally:
            publisher.close()
            client.close()
            redis_server.stop()
            broker.stop()


def _publish_and_wait(
    ordered: list[Event],
    operators: str,
    label: str,
    checkpoint_ms: int | None,
    on_checkpoint: Checkpoint | None,
    publisher: TrackingPublisher,
    run: PipelineRun,
    worker: threading.Thread,
) -> Iterator[PipelineRun]:
    """Publish slice by slice, each applied before the next (and checkpointed); yield the run."""
    started = time.perf_counter()
    with Progress(
        TextColumn(f"[bold]through the pipeline[/] ({operators})"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(label),
        TimeElapsedColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("publish", total=len(ordered))
        for until, chunk in _slices(ordered, checkpoint_ms):
            publisher.publish(encode(ev) for ev in chunk)
            _wait_applied(run.client, publisher, worker)
            progress.advance(task, len(chunk))
            if on_checkpoint is not None:
                on_checkpoint(run.client, until)
    run.events, run.seconds = len(ordered), time.perf_counter() - started
    yield run


def _slices(events: Sequence[Event], step_ms: int | None) -> Iterator[tuple[int, Sequence[Event]]]:
    """(end time, events before it) slices of ``step_ms`` event time; one slice without a step."""
    if not events:
        return
    if step_ms is None:
        yield events[-1].ts + 1, events
        return
    at = 0
    until = events[0].ts // step_ms * step_ms + step_ms
    while at < len(events):
        end = at
        while end < len(events) and events[end].ts < until:
            end += 1
        yield until, events[at:end]
        at, until = end, until + step_ms


def _wait_applied(
    client: redis.Redis, publisher: TrackingPublisher, worker: threading.Thread, timeout: float = 600
) -> None:
    """Block until the offsets stored with the state reach everything published so far."""
    ends = {f"{topic}:{partition}": end for (topic, partition), end in publisher.ends.items()}
    deadline = time.monotonic() + timeout
    while True:
        done = applied_offsets(client)
        if all(done.get(k, 0) >= v for k, v in ends.items()):
            return
        if not worker.is_alive():
            raise RuntimeError("the worker stopped before applying the published events; see its log")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker did not catch up within {timeout:g} s")
        time.sleep(0.02)


def mark(met: bool) -> str:
    """A target line's verdict."""
    return "✅" if met else "❌"
