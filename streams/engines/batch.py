"""The fast engine: a confluent-kafka consumer that hands whole batches to the pipeline.

librdkafka fetches in the background and ``consume(n)`` returns up to ``n`` messages in one
call, so the per-message cost left in Python is the pipeline's own.  On every assignment
the consumer starts each partition at the offset stored in Redis with the state (or at the
beginning when nothing is stored), never at Kafka's committed offset.

A batch's Redis script runs while the next batch is read and computed (one commit in flight, in
a helper thread; the script runs in Redis's own process, so the two overlap on two cores).  The
next batch is committed only after the previous one landed; if it did not (fenced, Redis away
past one attempt, a rebalance meanwhile), the batch computed on top of it is dropped and both
are re-read from the offsets Redis holds — its alerts and dead letters may then be sent twice
(at least once, as after a crash).  A batch that must load a community from Redis waits for the
commit in flight first, so the load sees that commit's snapshots and logs.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage

from streams import metrics
from streams.config import Settings
from streams.engines.applier import BatchApplier, WorkerStopped, tune_gc
from streams.operators.base import Output
from streams.pipeline import BatchResult, Message
from streams.sinks.cluster import UNAVAILABLE
from streams.sinks.redis_store import Fenced, RedisStore, StoreRefused
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def consumer_config(settings: Settings) -> dict[str, object]:
    return {
        **settings.kafka_config(),
        "group.id": settings.group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range",  # same partition numbers of every topic together
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": max(100, settings.session_timeout_ms // 4),
        "fetch.wait.max.ms": min(100, settings.batch_timeout_ms),
        # librdkafka's prefetch queue: 64 MB keeps a backlog of long posts from filling memory
        "queued.max.messages.kbytes": 65536,
        "enable.partition.eof": False,  # ends come from the watermarks (see BatchEngine._at_end)
    }


def producer_config(settings: Settings) -> dict[str, object]:
    return {
        **settings.kafka_config(),
        "linger.ms": 5,
        "message.timeout.ms": 0,  # never give up on a dead letter or alert: flush() waits for Kafka
        "message.max.bytes": max(settings.max_message_bytes * 16, 16 * 1024 * 1024),
        "queue.buffering.max.messages": 1_000_000,
    }


@dataclass
class _InFlight:
    """A batch whose Redis script runs in the commit thread."""

    result: BatchResult
    output: Output
    generation: int  # the engine's rebalance count when it was computed
    started: float  # perf_counter when its processing began
    future: Future[None]  # done when the commit ended; holds its exception if it failed


class BatchEngine:
    """Runs until :meth:`stop` (or ``stop_event``) — one consumer, and a thread for the commit in flight."""

    def __init__(self, settings: Settings, store: RedisStore | None = None) -> None:
        self.settings = settings
        self.store = store or RedisStore.connect(settings)
        self.producer = Producer(producer_config(settings))
        self.stop_event = threading.Event()
        self.applier = BatchApplier(settings, self.store, self.producer)
        self.applier.stopping = self.stop_event.is_set
        self.applier.pipeline.aligner.expect_ends()  # _at_end reports them
        self.applier.before_load = self._await_inflight
        self.overlap = self.store.overlaps_commits
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="pulse-commit") if self.overlap else None
        self.inflight: _InFlight | None = None
        self.paused: set[tuple[str, int]] = set()  # ran ahead in event time: not fetched for now
        self.positions: dict[tuple[str, int], int] = {}  # next offset to read, per assigned partition
        self.logical = {settings.topic(t): t for t in ("posts", "reactions", "rsvps")}
        self.consumer: Consumer | None = None
        self.assignment: list[TopicPartition] = []
        self.generation = 0  # bumped by every rebalance callback
        self.batches = 0
        self.mean_bytes = 512.0  # running mean message size: how many messages fit batch_max_bytes

    def stop(self) -> None:
        self.stop_event.set()

    # --- rebalance callbacks (run inside consume()) ----------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._await_inflight()  # the restore below must read what it wrote (settled by the loop)
        tps = [(self.logical[p.topic], p.partition) for p in partitions]
        self.applier.restore(tps)
        self.positions = {}
        for p, tp in zip(partitions, tps, strict=True):
            stored = self.applier.progress[tp].next_offset
            p.offset = stored if stored >= 0 else OFFSET_BEGINNING
            if stored >= 0:
                self.positions[tp] = stored
        self.assignment = partitions
        self.paused.clear()
        self.generation += 1
        consumer.assign(partitions)
        # librdkafka keeps a partition's pause across a rebalance: one paused by _pace before it
        # (ahead in event time) would never be fetched again, and alignment would wait for it forever
        consumer.resume(partitions)
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]@{p.offset}" for p in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._await_inflight()
        self.applier.revoke()
        self.assignment = []
        self.paused.clear()
        self.generation += 1
        consumer.unassign()

    def _seek_to_stored(self, consumer: Consumer) -> None:
        """After a refused batch: reload progress and rewind to what Redis holds."""
        tps = [(self.logical[p.topic], p.partition) for p in self.assignment]
        self.applier.restore(tps)
        self.positions = {}
        for p, tp in zip(self.assignment, tps, strict=True):
            stored = self.applier.progress[tp].next_offset
            if stored >= 0:
                self.positions[tp] = stored
            consumer.seek(TopicPartition(p.topic, p.partition, stored if stored >= 0 else OFFSET_BEGINNING))

    # --- main loop -------------------------------------------------------------------------------
    def run(self, max_batches: int | None = None) -> None:
        counts = ensure_topics(self.settings)
        note_partitions = getattr(self.store, "write_partition_count", None)
        if note_partitions is not None:  # Redis Cluster: readers merge this many partitions' boards
            count = max(counts.get(t, 0) for t in self.settings.input_topics)
            self.applier.with_redis(lambda: note_partitions(count), time.sleep)
        tune_gc()
        consumer = self.consumer = Consumer(consumer_config(self.settings))
        consumer.subscribe(list(self.logical), on_assign=self._on_assign, on_revoke=self._on_revoke)
        batch_max = self.settings.batch_max
        timeout = self.settings.batch_timeout_ms / 1000
        logical = self.logical
        try:
            while not self.stop_event.is_set() and (max_batches is None or self.batches < max_batches):
                raw = self._consume(consumer, batch_max, timeout)
                if not raw and not self.applier.held:
                    if self.inflight is not None:
                        self._settle(consumer)  # nothing else to do meanwhile
                    continue
                started = time.perf_counter()
                generation = self.generation
                messages = []
                positions = self.positions
                for m in raw:
                    err = m.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            self._on_error(err)
                        continue
                    topic, partition, offset = m.topic(), m.partition(), m.offset()
                    # only error events may lack these; a consumed record always has them
                    assert topic is not None and partition is not None and offset is not None
                    msg = Message(logical[topic], partition, offset, m.key(), m.value())
                    messages.append(msg)
                    positions[(msg.topic, msg.partition)] = msg.offset + 1
                result = self.applier.process(messages, self._at_end(consumer))
                output = self.applier.take_output()
                self._pace(consumer)
                if self.inflight is not None and not self._settle(consumer):
                    continue  # the batch before did not land: this one, computed on top of it, neither
                if not result.messages:
                    continue  # everything read is held back by event-time alignment, for now
                if generation != self.generation:  # defensive: never commit across a rebalance
                    self._seek_to_stored(consumer)
                    continue
                if self.overlap:
                    assert self._committer is not None
                    future = self._committer.submit(self._commit_once, result, output)
                    self.inflight = _InFlight(result, output, generation, started, future)
                    continue
                committed = self.applier.commit(result, self._wait_paused, output)
                if not committed or generation != self.generation:
                    # refused, or a rebalance ran while Redis was away: trust only what Redis holds
                    self._seek_to_stored(consumer)
                    continue
                self._landed(consumer, result, started)
            if self.inflight is not None:
                self._settle(consumer)  # stopping: let the last batch land (or be re-read later)
        except WorkerStopped:
            log.warning("stopped while Redis was unreachable; the uncommitted batch will be re-read")
        except StoreRefused as exc:
            log.error("Redis refused a batch before writing any of it (%s); stopping", exc)
            raise SystemExit(f"pulse worker: batch refused by Redis, nothing applied: {exc}") from None
        finally:
            self._await_inflight()
            if self._committer is not None:
                self._committer.shutdown(wait=True)
            consumer.close()
            self.producer.flush(10)

    # --- the commit in flight --------------------------------------------------------------------
    def _commit_once(self, result: BatchResult, output: Output) -> None:
        """In the commit thread: one attempt (retries, which poll the consumer, are the loop's);
        once it landed, its counts and gauges at once, so /metrics never lags what Redis shows."""
        started = time.perf_counter()
        self.store.commit(result)
        self.applier.committed(result, output, time.perf_counter() - started)

    def _await_inflight(self) -> None:
        """Wait until the commit in flight has ended, however it ended (:meth:`_settle` reads it)."""
        if self.inflight is not None:
            wait([self.inflight.future])

    def _settle(self, consumer: Consumer) -> bool:
        """Wait for the commit in flight; True when it landed and nothing moved meanwhile."""
        inflight, self.inflight = self.inflight, None
        assert inflight is not None
        landed = False
        try:
            inflight.future.result()  # counted and observed in the commit thread
            landed = True
        except Fenced as exc:
            self.applier.fenced(exc)
        except UNAVAILABLE:
            if inflight.generation == self.generation:  # Redis went away: retry as the serial path does
                landed = self.applier.commit(inflight.result, self._wait_paused, inflight.output)
        if not landed or inflight.generation != self.generation:
            self._seek_to_stored(consumer)  # trust only what Redis holds
            return False
        self._landed(consumer, inflight.result, inflight.started)
        return True

    def _landed(self, consumer: Consumer, result: BatchResult, started: float) -> None:
        self.batches += 1
        self._commit_kafka(consumer, result)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    def _consume(self, consumer: Consumer, most: int, timeout: float) -> list[KafkaMessage]:
        """Up to ``most`` messages and about ``batch_max_bytes`` of them (one message may pass
        it): taken in slices sized by the running mean message size, so a backlog of long posts
        makes small batches and Redis is never handed a huge script argument."""
        budget = self.settings.batch_max_bytes
        out: list[KafkaMessage] = []
        size = 0
        wait = timeout
        while len(out) < most and size < budget:
            want = max(1, min(most - len(out), int((budget - size) / self.mean_bytes)))
            got = consumer.consume(want, wait)
            if not got:
                break
            got_bytes = sum(len(m.value() or b"") for m in got)
            self.mean_bytes = 0.8 * self.mean_bytes + 0.2 * max(1.0, got_bytes / len(got))
            out += got
            size += got_bytes
            wait = 0  # the first call waited for data; the rest take what is already fetched
            if len(got) < want:
                break
        return out

    def _at_end(self, consumer: Consumer) -> list[tuple[str, int]]:
        """Assigned partitions read to the end of what the broker had at the last fetch.

        Compared with the fetch's high watermark rather than waiting for librdkafka's
        ``_PARTITION_EOF``: that event needs the position to *equal* the watermark, which never
        happens on brokers whose watermark lags the last batch (the embedded Tansu).
        """
        out = []
        for p in self.assignment:
            tp = (self.logical[p.topic], p.partition)
            low, high = consumer.get_watermark_offsets(TopicPartition(p.topic, p.partition), cached=True)
            if high >= 0 and self.positions.get(tp, low) >= high:
                out.append(tp)
        return out

    def _pace(self, consumer: Consumer) -> None:
        """Stop fetching a partition whose messages wait for the rest of its task (it ran ahead in
        event time); fetch it again once they have mostly been applied."""
        if not self.assignment:
            return
        high = max(1000, self.settings.align_max_held // 16)  # see Settings.align_max_held
        high_bytes = 8 * self.settings.batch_max_bytes  # long posts: pause on bytes held too
        changed = False
        for p in self.assignment:
            tp = (self.logical[p.topic], p.partition)
            held = self.applier.held_of(tp)
            held_bytes = self.applier.held_bytes_of(tp)
            if tp not in self.paused and (held > high or held_bytes > high_bytes):
                consumer.pause([TopicPartition(p.topic, p.partition)])
                self.paused.add(tp)
                changed = True
            elif tp in self.paused and held < high // 4 and held_bytes < high_bytes // 4:
                consumer.resume([TopicPartition(p.topic, p.partition)])
                self.paused.discard(tp)
                changed = True
        if changed:
            log.debug("paused (ahead in event time): %s", sorted(self.paused))

    def _wait_paused(self, seconds: float) -> None:
        """Wait for Redis without fetching more, while the consumer keeps its group membership."""
        consumer = self.consumer
        assert consumer is not None
        if self.assignment:
            consumer.pause(self.assignment)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            consumer.consume(1, max(0.0, min(0.2, deadline - time.monotonic())))
        if self.assignment:
            ahead = self.paused
            consumer.resume([p for p in self.assignment if (self.logical[p.topic], p.partition) not in ahead])

    def _commit_kafka(self, consumer: Consumer, result: object) -> None:
        offsets = []
        for (topic, partition), change in result.partitions.items():  # type: ignore[attr-defined]
            full = self.settings.topic(topic)
            offsets.append(TopicPartition(full, partition, change.next_offset))
            _, high = consumer.get_watermark_offsets(TopicPartition(full, partition), cached=True)
            if high >= 0:
                metrics.CONSUMER_LAG.labels(topic, str(partition)).set(max(0, high - change.next_offset))
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=True)
            except Exception as exc:  # informational only: Redis holds the real offsets
                metrics.KAFKA_ERRORS.labels("commit").inc()
                log.debug("kafka commit failed: %s", exc)

    def _on_error(self, err: KafkaError) -> None:
        metrics.KAFKA_ERRORS.labels(err.name().lower()[:40]).inc()
        log.warning("kafka: %s", err)
