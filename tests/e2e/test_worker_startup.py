"""``pulse worker`` and ``pulse simulate`` as a deployment runs them: real processes, real broker and Redis.

- A worker's /metrics has every series known in advance at 0 before the first message, so
  Prometheus' ``increase()`` sees the first burst; the counts then match the simulator's labels.
- A worker started before Kafka (or Redis) says so in one line, waits, and runs once it answers;
  with ``PULSE_STARTUP_TIMEOUT_SECONDS`` it gives up with a one-line error, never a traceback.
- ``pulse simulate --rate R --forever`` (the compose simulator's command) keeps publishing events
  stamped at the wall clock until SIGTERM.
"""

from __future__ import annotations

import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from infra.local_services import EmbeddedBroker, EmbeddedRedis, free_port
from schemas.events import EventDecoder, Rejection
from streams.config import INPUT_TOPICS, Settings
from streams.publisher import Outgoing, Publisher
from streams.simulator import MALFORMED_KINDS, SimConfig, Simulator
from tests import reference
from tests.workers import pulse, stop, wait_caught_up

pytestmark = pytest.mark.slow

# Every reason a message can be dead-lettered for, from the simulator's labels (not from streams.metrics).
REASONS = sorted({*MALFORMED_KINDS.values(), "oversized", "late"})


def scrape(port: int, timeout: float = 30) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of a worker's /metrics as {(name, sorted labels): value}, once it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def wait_for_log(path: Path, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in {path} after {timeout} s:\n{path.read_text(errors='replace')}")


def test_known_series_start_at_zero_and_count_what_the_simulator_labelled(
    make_settings: Callable[..., Settings], redis_client: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    settings = make_settings(metrics_port=port, metrics_host="127.0.0.1")
    proc = pulse("worker", settings=settings, log=tmp_path / "worker.log")
    try:
        before = scrape(port)
        for topic in INPUT_TOPICS:
            for reason in REASONS:
                assert before[("pulse_dead_letters_total", (("reason", reason), ("topic", topic)))] == 0
            for outcome in ("applied", "dead_letter"):
                assert before[("pulse_events_total", (("outcome", outcome), ("topic", topic)))] == 0
            assert before[("pulse_late_events_total", (("topic", topic),))] == 0
        assert before[("pulse_events_total", (("outcome", "duplicate"), ("topic", "all")))] == 0
        for topic in ("alerts", "match-candidates"):
            assert before[("pulse_output_messages_total", (("topic", topic),))] == 0
        assert before[("pulse_alignment_forced_total", ())] == 0

        sim = Simulator(SimConfig(seed=5, events=3000, malformed_rate=0.05, late_rate=0.02, dup_rate=0.0))
        messages = list(sim.messages())
        Publisher(settings).publish(Outgoing(m.topic, m.key, m.value) for m in messages)
        wait_caught_up(redis_client, settings, proc=proc)
        after = scrape(port)
    finally:
        stop(proc)
    assert after[("pulse_alignment_forced_total", ())] == 0  # 3,000 events: far under the cap
    labelled = Counter((m.topic, m.label) for m in messages if m.label not in (None, "duplicate"))
    assert sum(labelled.values()) > 100 and {r for _, r in labelled} >= {"invalid_json", "schema", "late"}
    for topic in INPUT_TOPICS:
        for reason in REASONS:
            key = ("pulse_dead_letters_total", (("reason", reason), ("topic", topic)))
            assert after[key] == labelled[(topic, reason)], (topic, reason)
        valid = sum(m.topic == topic and m.label is None for m in messages)
        assert after[("pulse_events_total", (("outcome", "applied"), ("topic", topic)))] == valid
    assert after[("pulse_redis_up", ())] == 1


def test_worker_started_before_kafka_says_so_once_then_runs(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    kafka_port = free_port()
    settings = Settings(
        _env_file=None,
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
        redis_url=redis_server.url,
        topic_prefix="startup.",
        group_id="startup",
        metrics_port=0,
    )
    log = tmp_path / "worker.log"
    proc = pulse("worker", settings=settings, log=log)
    broker = None
    try:
        wait_for_log(log, "unreachable")
        time.sleep(6)  # several more failed probes: none of them may add a line
        waiting = log.read_text()
        assert proc.poll() is None
        lines = waiting.splitlines()
        assert [line for line in lines if "unreachable" in line] == [
            next(line for line in lines if "unreachable" in line)
        ]
        assert f"Kafka at 127.0.0.1:{kafka_port} unreachable" in waiting
        assert "Connection refused" in waiting and "waiting until it answers" in waiting
        assert len(lines) <= 3 and "Traceback" not in waiting and "%3|" not in waiting, waiting
        broker = EmbeddedBroker(port=kafka_port, workdir=tmp_path / "broker").start()
        wait_for_log(log, "assigned ", timeout=60)
        assert f"Kafka at 127.0.0.1:{kafka_port} answered after" in log.read_text()
        assert proc.poll() is None
    finally:
        rc = stop(proc)
        if broker is not None:
            broker.stop()
    assert rc == 0, log.read_text()


@pytest.mark.parametrize("missing", ["kafka", "redis"])
def test_worker_gives_up_after_the_startup_timeout_in_one_line(
    missing: str, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    dead = free_port()
    settings = Settings(
        _env_file=None,
        kafka_bootstrap=f"127.0.0.1:{dead}" if missing == "kafka" else broker.bootstrap,
        redis_url=f"redis://127.0.0.1:{dead}/0",
        topic_prefix="giveup.",
        metrics_port=0,
        startup_timeout_seconds=3,
    )
    log = tmp_path / "worker.log"
    started = time.monotonic()
    proc = pulse("worker", settings=settings, log=log)
    rc = proc.wait(60)
    elapsed = time.monotonic() - started
    out = log.read_text()
    name = {"kafka": f"Kafka at 127.0.0.1:{dead}", "redis": f"Redis at redis://127.0.0.1:{dead}/0"}[missing]
    assert rc == 1 and elapsed < 20, (rc, elapsed, out)
    errors = [line for line in out.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        f"Error: {name} did not answer within the start-up timeout of 3 s"
    ), out
    assert "Traceback" not in out and "%3|" not in out and len(out.splitlines()) <= 4, out


def test_simulate_forever_keeps_publishing_at_the_wall_clock_until_sigterm(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    log = tmp_path / "simulate.log"
    started_ms = time.time() * 1000
    proc = pulse("simulate", "--rate", "200", "--forever", settings=settings, log=log)
    time.sleep(8)
    assert proc.poll() is None, log.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, log.read_text()
    stopped_ms = time.time() * 1000
    records = [
        r for t in INPUT_TOPICS for r in reference.read_topic(settings.kafka_bootstrap, settings.topic(t))
    ]
    seconds = (stopped_ms - started_ms) / 1000
    assert 200 <= len(records) <= 200 * seconds + 1000, (len(records), seconds)  # paced at ~200/s
    decoder = EventDecoder(settings.max_message_bytes, settings.max_future_seconds * 1000)
    events = [decoder.decode(r.topic.removeprefix(settings.topic_prefix), r.value) for r in records]
    stamps = [ev.ts for ev in events if not isinstance(ev, Rejection)]
    assert len(stamps) == len(records)  # no dead letter: every message decodes
    # stamped at the wall clock: within the simulator's disorder (60 s) of the run, never ahead of it
    assert min(stamps) >= started_ms - 61_000 and max(stamps) <= stopped_ms + 1000, (
        min(stamps) - started_ms,
        max(stamps) - stopped_ms,
    )
    assert len({orjson.loads(r.value or b"{}")["community"] for r in records}) > 5


def test_simulate_forever_needs_a_rate(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    proc = pulse("simulate", "--forever", settings=make_settings(), log=tmp_path / "simulate.log")
    assert proc.wait(60) == 2
    assert "--forever needs --rate" in (tmp_path / "simulate.log").read_text()
