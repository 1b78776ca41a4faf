"""Real traffic never breaks a worker (issue 13): input shapes a platform sends that the project's
own generators never did — one message per batch, retries seconds apart, hostile ids, a backlog
of 10,000-character posts, a key of the wrong type planted in Redis, abandoned communities.

Real broker, real Redis, real ``pulse worker`` processes; Redis is compared with the independent
recompute (:mod:`tests.reference`), never with the implementation's own idea of it.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Producer

from streams import keys
from streams.api.server import API_ROUTES, serve_in_thread
from streams.config import Settings
from streams.topics import ensure_topics
from tests.workers import (
    ROOT,
    applied,
    catch_up,
    check_exact,
    pulse,
    stop,
    wait_caught_up,
    wait_progress_changes,
)

pytestmark = pytest.mark.slow

NOW_MS = int(time.time() * 1000)
HOUR_MS = 3_600_000


def _post(
    eid: str, community: str, member: str, ts: int, text: str = "hello", **extra: Any
) -> dict[str, Any]:
    return {
        "id": eid,
        "community": community,
        "member": member,
        "ts": ts,
        "post": f"p-{eid}",
        "text": text,
        **extra,
    }


def _send(
    producer: Producer, settings: Settings, topic: str, value: bytes | dict[str, Any], key: str
) -> None:
    raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    producer.produce(settings.topic(topic), value=raw, key=key.encode())
    producer.flush(10)


def _producer(settings: Settings) -> Producer:
    return Producer({**settings.kafka_config(), "message.max.bytes": 8_000_000, "linger.ms": 0})


def _get(base: str, path: str) -> int:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_a_quiet_platform_one_message_per_batch_never_stops_the_worker(make_settings, redis_client, tmp_path):
    """Each message arrives alone, seconds apart: a post, its retry, a broken message, a late one,
    an oversized one, an empty text, a lone reaction and RSVP.  Batches that apply no event used
    to send the script a JSON null that Lua's cjson makes truthy, which killed the worker."""
    settings = make_settings(partitions=1, operators="all", max_message_bytes=4096)
    ensure_topics(settings)
    worker = pulse("worker", settings=settings, log=tmp_path / "worker.log")
    producer = _producer(settings)
    c = "quiet"
    valid = _post("e1", c, "ann", NOW_MS - 60_000, "Anyone here running Postgres on Kubernetes?")
    like = {
        "id": "e6",
        "community": c,
        "member": "bob",
        "ts": NOW_MS - 10_000,
        "post": "p-e1",
        "reaction": "like",
    }
    singles: list[tuple[str, bytes | dict[str, Any]]] = [
        ("posts", valid),
        ("posts", valid),  # the platform's retry, alone in its batch
        ("posts", b'{"id": "e2", "community": "quiet", "member": '),  # cut off
        ("posts", _post("e3", c, "bob", NOW_MS - 3 * HOUR_MS)),  # late: its window closed long ago
        ("posts", _post("e4", c, "cy", NOW_MS - 30_000, "x" * 5000)),  # oversized (> 4096 bytes)
        ("posts", _post("e5", c, "dee", NOW_MS - 20_000, "")),  # empty text
        ("reactions", like),
        (
            "rsvps",
            {
                "id": "e7",
                "community": c,
                "member": "cy",
                "ts": NOW_MS - 5_000,
                "meetup": "m1",
                "status": "going",
            },
        ),
        ("reactions", like),  # a retried reaction
    ]
    try:
        for topic, value in singles:
            _send(producer, settings, topic, value, c)
            wait_progress_changes(redis_client, timeout=60)
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(1.0)  # seconds apart: every message is a batch of its own
        wait_caught_up(redis_client, settings, timeout=60, proc=worker)
        assert worker.poll() is None, "the worker process that started is the one still running"
    finally:
        stop(worker)
    expected = check_exact(redis_client, settings)
    assert expected.applied == 4 and expected.duplicates == 2
    assert sorted(expected.dead_letters.values()) == ["invalid_json", "late", "oversized"]


HOSTILE = [
    "a:ai",
    "a",
    "x",
    "x:y",
    "50%",
    "%3A",
    "*",
    "{tag}",
    "a b",
    "🚀 founders",
    "读书会:北京",
    "q?[x]\\",
    "z" * 256,
    ":" * 256,
]


def test_hostile_ids_never_collide_never_crash_and_every_endpoint_answers(
    make_settings, redis_client, tmp_path
):
    """Communities and members with ``:``, ``%``, ``*``, braces, spaces, emoji, 256 characters, and
    pairs built to collide under naive key joining; every operator on.  The worker never stops,
    Redis equals the recompute, each community keeps its own keys, every endpoint answers < 500."""
    settings = make_settings(partitions=2, operators="all")
    ensure_topics(settings)
    producer = _producer(settings)
    messages: list[tuple[str, dict[str, Any], str]] = []
    k = 0
    for n, community in enumerate(HOSTILE):
        for i in range(6):
            k += 1
            member = ["y:ann", "ann", "%", "b{1}", "🙂", "m" * 256][i]
            ts = NOW_MS - 50 * 60_000 + k * 1000
            kind = ("need", "offer", "post")[i % 3]
            text = "Looking for a Kubernetes and Postgres expert for our AI startup" if i < 2 else "ai ai ai"
            messages.append(
                (
                    "posts",
                    _post(f"{n}-{i}", community, member, ts, text, kind=kind, tags=["ai", "kubernetes"]),
                    community,
                )
            )
            messages.append(
                (
                    "reactions",
                    {
                        "id": f"r{n}-{i}",
                        "community": community,
                        "member": member,
                        "ts": ts + 1,
                        "post": f"p-{n}-{i}",
                        "reaction": "like",
                    },
                    community,
                )
            )
        # the same meetup id in every community: each keeps its own meetup
        messages.append(
            (
                "rsvps",
                {
                    "id": f"v{n}",
                    "community": community,
                    "member": "ann",
                    "ts": NOW_MS - 60_000,
                    "meetup": "meet1",
                    "status": "going",
                    "capacity": 10 + n,
                },
                community,
            )
        )
    for topic, value, key in messages:
        producer.produce(
            settings.topic(topic), value=json.dumps(value, ensure_ascii=False).encode(), key=key.encode()
        )
    producer.flush(30)
    worker = pulse("worker", settings=settings, log=tmp_path / "worker.log")
    try:
        wait_caught_up(redis_client, settings, timeout=120, proc=worker)
        assert worker.poll() is None
    finally:
        stop(worker)
    check_exact(redis_client, settings)
    # each community's meetup hash is its own
    for n, community in enumerate(HOSTILE):
        meetup = {
            k.decode(): v.decode() for k, v in redis_client.hgetall(keys.meetup(community, "meet1")).items()
        }
        assert meetup["community"] == community and meetup["capacity"] == str(10 + n)
    # `a` with topic `ai` and community `a:ai` no longer share a key, and neither key has a wrong type
    for community in HOSTILE:
        assert redis_client.type(keys.trends(community)) in (b"zset", b"none")
    assert redis_client.type(keys.trend_topic("a", "ai")) in (b"hash", b"none")
    with serve_in_thread(settings) as base:
        statuses: dict[str, int] = {}
        for community in [*HOSTILE, "nobody-here"]:
            quoted = urllib.parse.quote(community, safe="")
            for path, _ in API_ROUTES:
                if path == "/api/events":
                    continue  # a stream that never ends; covered by tests/e2e/test_api.py
                url = path.replace("{community}", quoted).replace(
                    "{member}", urllib.parse.quote("y:ann", safe="")
                )
                statuses[url] = _get(base, url)
        # x's matches list only x's posts, never those of x:y
        with urllib.request.urlopen(f"{base}/api/communities/x/matches?limit=500", timeout=10) as resp:
            posts = {p["post"] for p in json.load(resp)["posts"]}
        assert posts and all(p.startswith("p-2-") for p in posts), posts  # "x" is HOSTILE[2]
    bad = {url: code for url, code in statuses.items() if code >= 500 or code not in (200, 404)}
    assert not bad, bad


def _dump_all(client: redis.Redis) -> dict[bytes, bytes | None]:
    return {key: client.dump(key) for key in client.scan_iter(count=1000)}


def test_a_wrong_type_key_planted_mid_batch_leaves_redis_exactly_as_before(
    make_settings, redis_client, tmp_path
):
    """A key the batch writes late in its script (an operator's) has the wrong type.  Before, the
    activity deltas and seen-ids were written and the offsets were not: the restart counted them
    twice.  Now the script checks every key first: Redis stays byte for byte as it was, and the
    worker stops with one clear line; removing the key lets it carry on, exactly."""
    settings = make_settings(partitions=1, operators="all")
    ensure_topics(settings)
    producer = _producer(settings)
    for i in range(20):
        _send(producer, settings, "posts", _post(f"e{i}", "alpha", f"m{i % 4}", NOW_MS - 60_000 + i), "alpha")
    redis_client.set(keys.atmosphere("alpha"), "planted by the test")
    before = _dump_all(redis_client)
    log = tmp_path / "worker.log"
    worker = pulse("worker", settings=settings, log=log)
    try:
        worker.wait(90)
    finally:
        stop(worker)
    assert worker.returncode not in (0, None)
    assert _dump_all(redis_client) == before
    text = log.read_text()
    assert "nothing applied" in text and keys.atmosphere("alpha") in text and "Traceback" not in text
    redis_client.delete(keys.atmosphere("alpha"))
    catch_up(redis_client, settings, log, timeout=60)
    check_exact(redis_client, settings)
    assert redis_client.type(keys.atmosphere("alpha")) == b"hash"


def test_non_finite_weights_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="finite"):
        Settings(_env_file=None, w_posts=float("nan"))
    with pytest.raises(ValueError, match="finite"):
        Settings(_env_file=None, member_post_weight=float("inf"))


def test_one_off_communities_expire_and_redis_memory_returns_to_baseline(
    make_settings, redis_client, tmp_path
):
    """10,000 communities post once and go silent.  With a short idle TTL (and retention) every key
    they caused disappears, and Redis's memory returns to where it was before them."""
    settings = make_settings(partitions=2, operators="all", idle_ttl_seconds=4, retention_seconds=4)
    ensure_topics(settings)
    producer = _producer(settings)
    _send(producer, settings, "posts", _post("warm", "warmup", "ann", NOW_MS - 1000), "warmup")
    worker = pulse("worker", settings=settings, log=tmp_path / "worker.log")
    try:
        wait_caught_up(redis_client, settings, timeout=60, proc=worker)
        time.sleep(6)
        list(redis_client.scan_iter(count=1000))  # SCAN expires what it meets
        baseline = int(redis_client.info("memory")["used_memory"])
        baseline_keys = set(redis_client.scan_iter(count=1000))
        for i in range(10_000):
            value = _post(
                f"o{i}",
                f"one-off-{i}",
                f"m{i}",
                NOW_MS - 1000,
                "need a designer",
                kind="need",
                tags=["design"],
            )
            producer.produce(
                settings.topic("posts"), value=json.dumps(value).encode(), key=f"one-off-{i}".encode()
            )
        producer.flush(30)
        wait_caught_up(redis_client, settings, timeout=180, proc=worker)
        assert redis_client.dbsize() > 10_000  # their keys were there
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            list(redis_client.scan_iter(count=1000))
            left = [k for k in redis_client.scan_iter(match="*one-off*", count=1000)]
            if not left:
                break
            time.sleep(1)
        assert not left, left[:10]
        assert worker.poll() is None
    finally:
        stop(worker)
    after_keys = set(redis_client.scan_iter(count=1000))
    assert after_keys <= baseline_keys | {
        keys.PROGRESS.encode(),
        keys.windows(settings.window_seconds).encode(),
    }
    used = int(redis_client.info("memory")["used_memory"])
    assert used <= baseline + 256 * 1024, (baseline, used)


CHINESE = "大模型创业团队寻找后端工程师，熟悉分布式系统和数据库优化。"
ENGLISH = "Looking for a founding engineer who knows Kafka, Redis and Postgres well. "


def _vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def test_a_backlog_of_long_posts_drains_with_bounded_batches_memory_and_redis_calls(
    make_settings, redis_client, tmp_path
):
    """600 MB of valid 10,000-character posts (Chinese and English) waiting before the worker
    starts, every operator on.  Before, the second batch's script argument passed Redis's 512 MB
    limit and the worker retried it for ever.  Now batches are bounded by bytes: the worker drains
    it, its peak RSS stays under 1.5 GB, no Redis call takes 250 ms, and the counts are exact."""
    settings = make_settings(partitions=4, operators="all")
    ensure_topics(settings)
    producer = Producer({**settings.kafka_config(), "linger.ms": 20, "queue.buffering.max.kbytes": 512_000})
    zh = (CHINESE * 400)[:10_000]
    en = (ENGLISH * 200)[:10_000]
    sent = 0
    n = 0
    while sent < 600 * 1024 * 1024:
        community = f"c{n % 40}"
        text = zh if n % 2 else en
        value = json.dumps(
            _post(
                f"b{n}",
                community,
                f"m{n % 500}",
                NOW_MS - 3_000_000 + n * 100,
                text,
                kind=("post", "need", "offer")[n % 3],
            ),
            ensure_ascii=False,
        ).encode()
        while True:
            try:
                producer.produce(settings.topic("posts"), value=value, key=community.encode())
                break
            except BufferError:
                producer.poll(0.5)
        sent += len(value)
        n += 1
    assert producer.flush(120) == 0
    redis_client.config_set("slowlog-log-slower-than", 100_000)  # µs: log every call over 100 ms
    redis_client.slowlog_reset()
    worker = pulse("worker", settings=settings, log=tmp_path / "worker.log")
    try:
        drained = wait_caught_up(redis_client, settings, timeout=900, proc=worker)
        peak = _vm(worker.pid, "VmHWM")
    finally:
        stop(worker)
    slow = [(e["duration"], e["command"][:80]) for e in redis_client.slowlog_get(128)]
    figures = {
        "bytes": sent,
        "posts": n,
        "drained_seconds": round(drained, 1),
        "peak_rss_mb": peak >> 20,
        "redis_calls_over_100ms": len(slow),
        "longest_ms": max((d for d, _ in slow), default=0) // 1000,
    }
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "real-traffic-backlog.json").write_text(json.dumps(figures))  # for the notes
    assert all(duration < 250_000 for duration, _ in slow), slow
    assert 0 < peak < 1.5 * 1024**3, peak
    assert applied(redis_client)
    check_exact(redis_client, settings)


def test_the_api_caps_requests_in_flight_and_closes_idle_connections(make_settings, redis_client):
    """A crowd of live-page clients cannot exhaust ``pulse serve``: beyond ``api_max_requests``
    streams and requests in flight it answers 503 at once, and an idle keep-alive connection is
    closed after ``api_idle_seconds``."""
    import http.client
    import socket

    settings = make_settings(api_max_requests=3, api_idle_seconds=1.0)
    with serve_in_thread(settings, heartbeat_seconds=0.5) as base:  # a heartbeat notices closed streams
        host, port = urllib.parse.urlsplit(base).hostname, urllib.parse.urlsplit(base).port
        streams = []
        for _ in range(3):  # three live streams hold every slot
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", "/api/events")
            assert conn.getresponse().status == 200
            streams.append(conn)
        assert _get(base, "/api/health") == 503
        for conn in streams:
            conn.close()
        deadline = time.monotonic() + 10
        while _get(base, "/api/health") != 200:
            assert time.monotonic() < deadline, "slots were not released when the streams closed"
            time.sleep(0.1)
        idle = socket.create_connection((host, port), timeout=5)
        idle.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = idle.recv(65536)
        assert b" 200 " in first.split(b"\r\n", 1)[0]
        idle.settimeout(5)
        started = time.monotonic()
        rest = b"x"
        while rest:  # the server closes the kept-alive connection once it idles
            rest = idle.recv(65536)
        assert time.monotonic() - started < 4
        idle.close()
