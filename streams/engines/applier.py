"""What every engine does with a batch: pipeline → dead letters → one atomic Redis commit.

Engines differ only in how messages arrive (a confluent-kafka batch consumer, or Faust
agents); both hand :class:`BatchApplier` engine-neutral :class:`~streams.pipeline.Message`
lists, so the same input gives the same Redis state whichever engine runs.

Order of effects for a batch, and why a crash anywhere is safe:

1. the pipeline updates in-memory progress (lost in a crash; restored from Redis);
2. dead letters are produced and flushed (at-least-once: a replay may send one again; each
   carries its source topic/partition/offset, so consumers can de-duplicate);
3. one Lua script applies state + offsets (all or nothing; fenced on the stored offsets);
4. Kafka's committed offset is advanced asynchronously (only informational: Pulse resumes
   from Redis).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import orjson
from confluent_kafka import Producer

from online_models import text_stage
from streams import metrics
from streams.config import Settings
from streams.operators.base import Output
from streams.operators.registry import build_operators
from streams.operators.runner import OperatorRunner
from streams.pipeline import BatchResult, Message, PartitionProgress, Pipeline, TopicPartition
from streams.sinks.cluster import UNAVAILABLE
from streams.sinks.redis_store import Fenced, RedisStore

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 5.0
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a worker: move everything alive after start-up
    (modules, models) out of its reach and run it every 20,000 allocations instead of 700.  A batch
    keeps its ~20,000 decoded events alive until it is applied, and with the default thresholds
    the collector kept traversing them: measured 32.5 → 24.9 µs per message for the pipeline
    (decode, alignment, de-duplication, activity) on this machine's benchmark stream.
    """
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
R = TypeVar("R")  # what a call retried by BatchApplier.with_redis returns


class WorkerStopped(Exception):
    """Raised out of a Redis retry loop when the worker was asked to stop meanwhile."""


class BatchApplier:
    """Owns the in-memory progress of the assigned partitions and applies batches to Redis."""

    def __init__(self, settings: Settings, store: RedisStore, producer: Producer) -> None:
        self.settings = settings
        self.store = store
        self.producer = producer
        self.pipeline = Pipeline(settings)
        self.progress: dict[TopicPartition, PartitionProgress] = {}
        self.operators = OperatorRunner(
            build_operators(settings),
            idle_ttl_seconds=settings.idle_ttl_seconds,
            text_max_chars=settings.text_max_chars,
        )
        if self.operators.reads_text:
            text_stage.warm_up()  # before tune_gc freezes what start-up allocated
        self.gauges = metrics.CommunityGauges(settings.metrics_communities)
        self.dead_letter_topic = settings.dead_letter_topic
        self.stopping: Callable[[], bool] = lambda: False  # the engine's stop flag
        self._pending_output = Output()
        # called before a batch loads communities from Redis: the engine waits there for a commit
        # still in flight (whose snapshots or log entries the load must see)
        self.before_load: Callable[[], None] = lambda: None
        self.totals = {"messages": 0, "applied": 0, "duplicates": 0, "dead_letters": 0}
        self.align = settings.align_idle_ms > 0
        self._forced_warned = float("-inf")  # monotonic time of the last "released early" warning

    # --- assignment ------------------------------------------------------------------------------
    def restore(self, partitions: list[TopicPartition], wait: Callable[[float], None] = time.sleep) -> None:
        """Forget everything in memory and load ``partitions``' progress from Redis (retrying)."""
        started = time.perf_counter()
        self.operators.clear()  # reloaded on demand from the snapshots that match the stored offsets
        self.progress = self.with_redis(lambda: self.store.load_progress(partitions), wait)
        self.pipeline.assign(partitions, time.monotonic())  # held messages are re-read
        elapsed = time.perf_counter() - started
        metrics.RESTORE_SECONDS.observe(elapsed)
        log.info("restored progress of %d partitions from Redis in %.3f s", len(partitions), elapsed)

    def with_redis(self, call: Callable[[], R], wait: Callable[[float], None]) -> R:
        """Run ``call`` until Redis answers, backing off; says so in a metric and the log."""
        backoff = 0.1
        while True:
            try:
                result = call()
            except UNAVAILABLE as exc:
                if self.stopping():
                    raise WorkerStopped from exc
                metrics.REDIS_UP.set(0)
                metrics.REDIS_RETRIES.inc()
                log.warning("Redis unavailable (%s); retrying in %.1f s", type(exc).__name__, backoff)
                wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            metrics.REDIS_UP.set(1)
            return result

    # --- batches ---------------------------------------------------------------------------------
    def revoke(self) -> None:
        """Partitions taken away: forget their progress and whatever alignment held of them."""
        self.progress.clear()
        self.pipeline.assign([], None)

    def held_of(self, tp: TopicPartition) -> int:
        return self.pipeline.aligner.held_of(tp)

    def held_bytes_of(self, tp: TopicPartition) -> int:
        """Input bytes of ``tp`` held back by alignment (a backlog of long posts is paused on this)."""
        return self.pipeline.held_bytes.get(tp, 0)

    @property
    def held(self) -> int:
        """Messages decoded but held back by event-time alignment (applied by a later batch)."""
        return self.pipeline.aligner.held()

    def process(self, messages: Sequence[Message], ends: Iterable[TopicPartition] = ()) -> BatchResult:
        """Run the pipeline and ship dead letters; the caller then commits the result.  ``ends``:
        partitions read to their end (they hold no other partition back in event time)."""
        now = time.monotonic() if self.align else None
        result = self.pipeline.apply_batch(messages, self.progress, now, ends)
        if forced := self.pipeline.aligner.take_forced():
            metrics.ALIGNMENT_FORCED.inc(forced)
            if now is not None and now - self._forced_warned >= 60:  # the counter has every one
                self._forced_warned = now
                log.warning("alignment held over PULSE_ALIGN_MAX_HELD: %d messages released early", forced)
        self.store.observe(result)
        output = self._run_operators(result)
        for dl in result.dead_letters:
            self._produce_dead_letter(dl.message, dl.reason, dl.detail)
        for out in output.messages:
            self._produce(
                self.settings.topic(out.topic), orjson.dumps(out.value), out.key.encode() if out.key else None
            )
        if result.dead_letters or output.messages:
            self._flush()
        self._pending_output = output
        return result

    def _flush(self) -> None:
        """Wait until Kafka has every dead letter and alert of the batch, however long it is away."""
        while (left := self.producer.flush(5)) > 0:
            metrics.KAFKA_ERRORS.labels("unavailable").inc()
            log.warning("Kafka unavailable: %d outgoing messages not yet delivered; waiting", left)

    def _run_operators(self, result: BatchResult) -> Output:
        runner = self.operators
        if not runner.operators:
            return Output()
        now = time.monotonic()
        # well before Redis expires an idle community's keys: never continue a history Redis dropped
        runner.forget_idle(now, self.settings.idle_ttl_seconds / 2)
        wanted = runner.missing(result.events)
        if wanted:
            self.before_load()
            names = [op.name for op in runner.operators]
            runner.load(self.with_redis(lambda: self.store.load_states(wanted, names), time.sleep))
        output, snapshots = runner.run(result.events, now)
        result.commands = output.commands + snapshots
        return output

    def take_output(self) -> Output:
        """The output of the batch :meth:`process` returned last (for :meth:`committed` later)."""
        output, self._pending_output = self._pending_output, Output()
        return output

    def commit(
        self, result: BatchResult, wait: Callable[[float], None] = time.sleep, output: Output | None = None
    ) -> bool:
        """Commit ``result`` to Redis, retrying while Redis is down.  False when fenced: the
        caller must then :meth:`restore` and re-read from the restored offsets.  Raises
        :class:`~streams.sinks.redis_store.StoreRefused` when the script refused the batch (nothing
        of it written): retrying cannot help, so the engine stops with that message.  ``output``:
        the batch's, when it is not the last one :meth:`process` returned."""
        started = time.perf_counter()
        try:
            self.with_redis(lambda: self.store.commit(result), wait)
        except Fenced as exc:
            self.fenced(exc)
            return False
        seconds = time.perf_counter() - started
        self.committed(result, self.take_output() if output is None else output, seconds)
        return True

    @staticmethod
    def fenced(exc: Fenced) -> None:
        metrics.FENCED.inc()
        log.warning("batch refused, partitions moved to another worker: %s", exc)

    def committed(self, result: BatchResult, output: Output, seconds: float) -> None:
        """What follows a batch in Redis (its commit took ``seconds``): counts, output metrics."""
        metrics.REDIS_WRITE_SECONDS.observe(seconds)
        self._count(result)
        for kind in output.alerts:
            metrics.ALERTS.labels(kind).inc()
        for out in output.messages:
            metrics.OUTPUTS.labels(out.topic).inc()
        for obs in output.observations:
            self.gauges.observe(obs.metric, obs.community, obs.value)

    def _count(self, result: BatchResult) -> None:
        totals = self.totals
        totals["messages"] += result.messages
        totals["applied"] += len(result.events)
        totals["duplicates"] += result.duplicates
        totals["dead_letters"] += len(result.dead_letters)
        metrics.BATCH_SIZE.observe(result.messages)
        by_topic: dict[str, int] = {}
        for ev in result.events:
            name = _TOPIC_OF[ev.__class__.__name__]
            by_topic[name] = by_topic.get(name, 0) + 1
        for topic, n in by_topic.items():
            metrics.EVENTS.labels(topic, "applied").inc(n)
        if result.duplicates:
            metrics.EVENTS.labels("all", "duplicate").inc(result.duplicates)
        for dl in result.dead_letters:
            metrics.EVENTS.labels(dl.message.topic, "dead_letter").inc()
            metrics.DEAD_LETTERS.labels(dl.message.topic, dl.reason).inc()
            if dl.reason == "late":
                metrics.LATE_EVENTS.labels(dl.message.topic).inc()

    def _produce_dead_letter(self, msg: Message, reason: str, detail: str) -> None:
        headers: list[tuple[str, str | bytes | None]] = [
            ("pulse.reason", reason.encode()),
            ("pulse.detail", detail.encode("utf-8", "replace")),
            ("pulse.topic", self.settings.topic(msg.topic).encode()),
            ("pulse.partition", str(msg.partition).encode()),
            ("pulse.offset", str(msg.offset).encode()),
        ]
        self._produce(self.dead_letter_topic, msg.value, msg.key, headers)

    def _produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, headers=headers)
                return
            except BufferError:
                self.producer.poll(0.1)  # local queue full: let deliveries drain


_TOPIC_OF = {"Post": "posts", "Reaction": "reactions", "Rsvp": "rsvps"}
