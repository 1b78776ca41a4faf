"""End to end with the real broker and a real Redis: ``pulse publish`` → ``pulse worker`` → Redis,
compared exactly with the independent reference recompute (tests/reference.py)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from streams.simulator import SimConfig, Simulator
from streams.topics import ensure_topics
from tests import reference
from tests.workers import ROOT, catch_up, settings_env

pytestmark = pytest.mark.slow


def write_envelopes(path: Path, config: SimConfig) -> dict[str | None, int]:
    labels: dict[str | None, int] = {}
    with path.open("wb") as f:
        for m in Simulator(config).messages():
            env = {"topic": m.topic, "key": m.key.decode() if m.key else None}
            env["value_b64"] = base64.b64encode(m.value or b"").decode()
            f.write(orjson.dumps(env) + b"\n")
            labels[m.label] = labels.get(m.label, 0) + 1
    return labels


def read_back(settings):
    records = []
    for name in settings.input_topics:
        records += reference.read_topic(settings.kafka_bootstrap, name)
    dead = reference.read_topic(settings.kafka_bootstrap, settings.dead_letter_topic)
    return records, dead


@pytest.mark.parametrize("engine", ["batch", "faust"])
def test_published_stream_lands_in_redis_exactly(engine, make_settings, redis_client, tmp_path):
    settings = make_settings(engine=engine, window_seconds=600, grace_seconds=120, partitions=3)
    ensure_topics(settings)
    envelopes = tmp_path / "events.jsonl"
    labels = write_envelopes(
        envelopes,
        SimConfig(seed=11, events=3000, communities=8, members=300, dup_rate=0.03, malformed_rate=0.02),
    )
    assert (
        labels.get("duplicate", 0) > 20
        and sum(v for k, v in labels.items() if k not in (None, "duplicate")) > 20
    )
    published = subprocess.run(
        [sys.executable, "-m", "streams.cli", "publish", str(envelopes)],
        env=settings_env(settings), cwd=ROOT, capture_output=True, timeout=120,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr.decode()[-2000:]

    catch_up(redis_client, settings, tmp_path / "worker.log", timeout=180)
    records, dead = read_back(settings)
    expected = reference.recompute(records, settings)
    assert expected.applied > 2500 and expected.duplicates > 20
    reference.assert_matches(redis_client, expected, dead)
    assert set(reference.dead_letters_from(dead).values()) >= {"invalid_json", "schema", "timestamp"}
