"""Pulse on a real Redis Cluster (3 primaries, 3 replicas, formed by ``redis-cli --cluster create``)
with real worker processes: the spine's exactness, SIGKILLs during batches, a rebalance after a
killed worker, a primary stopped for 10 s mid-stream, and the HTTP API answering exactly what it
answers on single-node Redis for the same stream.  Every final state is compared with the
independent reference recompute (which reads the cluster layout and checks every key's tag)."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests

from streams.publisher import Outgoing, Publisher
from streams.topics import ensure_topics
from tests.workers import (
    applied,
    catch_up,
    check_exact,
    kill_one_of_two,
    kill_three_times,
    publish_sim,
    pulse,
    stop,
    wait_caught_up,
    wait_progress_changes,
)

pytestmark = pytest.mark.slow


def tags_in_use(client: redis.RedisCluster) -> dict[int, int]:
    """partition tag -> port of the primary holding its progress hash."""
    out = {}
    client.nodes_manager.initialize()
    for node in client.get_primaries():
        for key in client.get_redis_connection(node).scan_iter(match="pulse:{p*}:progress"):
            out[int(key.decode().split("{p")[1].split("}")[0])] = node.port
    return out


def test_exact_on_a_cluster_with_every_operator(make_settings, redis_cluster, cluster_client, tmp_path):
    """The spine on Redis Cluster: duplicates, malformed and late input, every operator on; the
    partitions' keys spread over the primaries, each under its partition's tag."""
    settings = make_settings(redis_url=redis_cluster.url, partitions=6, batch_max=2000, operators="all")
    ensure_topics(settings)
    publish_sim(settings, seed=11, events=20_000, communities=30, members=1500, dup_rate=0.02,
                malformed_rate=0.005)  # fmt: skip
    catch_up(cluster_client, settings, tmp_path / "worker.log", timeout=300)
    expected = check_exact(cluster_client, settings)
    assert expected.applied > 18_000
    placed = tags_in_use(cluster_client)
    assert sorted(placed) == list(range(6)) and len(set(placed.values())) >= 2, placed
    assert int(cluster_client.get("pulse:partitions")) == 6


def test_sigkill_during_batches_on_a_cluster(
    make_settings, redis_cluster, cluster_client, tmp_path, monkeypatch
):
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")  # a worker that stalls is asked for its stack (SIGABRT)
    settings = make_settings(redis_url=redis_cluster.url, partitions=4, batch_max=2000)
    ensure_topics(settings)
    publish_sim(settings, seed=5, events=60_000, communities=40, members=4000, dup_rate=0.02,
                malformed_rate=0.005)  # fmt: skip
    log = tmp_path / "worker.log"
    kill_three_times(cluster_client, settings, log)
    catch_up(cluster_client, settings, log, timeout=240)
    assert check_exact(cluster_client, settings).applied > 55_000


def test_rebalance_on_a_cluster_after_one_of_two_workers_is_killed(
    make_settings, redis_cluster, cluster_client, tmp_path
):
    settings = make_settings(redis_url=redis_cluster.url, partitions=4, batch_max=1000)
    ensure_topics(settings)
    publish_sim(settings, seed=7, events=40_000, communities=30, members=3000, dup_rate=0.01)
    kill_one_of_two(cluster_client, settings, tmp_path)
    check_exact(cluster_client, settings)


def test_a_primary_stopped_for_ten_seconds_mid_stream(make_settings, redis_cluster, cluster_client, tmp_path):
    """SIGSTOP one primary for 10 s while the worker writes: its replica is promoted (node timeout
    2 s), the worker retries against the new primary (a batch the old primary acknowledged but had not
    replicated is refused by the fence and re-read), the old primary rejoins as a replica."""
    settings = make_settings(redis_url=redis_cluster.url, partitions=4, batch_max=500)
    ensure_topics(settings)
    publish_sim(settings, seed=9, events=40_000, communities=30, members=3000, dup_rate=0.01)
    worker = pulse("worker", settings=settings, log=tmp_path / "worker.log")
    try:
        wait_progress_changes(cluster_client)
        ports = list(tags_in_use(cluster_client).values())
        victim = next(n for n in redis_cluster.nodes if n.port == max(set(ports), key=ports.count))
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGSTOP)
        try:
            time.sleep(10)
            assert worker.poll() is None, "the worker must survive a stopped primary"
        finally:
            os.kill(victim.pid, signal.SIGCONT)
        redis_cluster.wait_ok()
        wait_caught_up(cluster_client, settings, timeout=240, proc=worker)
    finally:
        stop(worker)
    assert victim not in redis_cluster.primaries(), "the stopped primary's replica took over"
    check_exact(cluster_client, settings)


# --- the HTTP API answers the same on both layouts ------------------------------------------------


@pytest.fixture
def api_pair(
    make_settings, redis_cluster, cluster_client, redis_client, tmp_path
) -> Iterator[dict[str, Any]]:
    """One stream processed twice, by a worker on single-node Redis and one on the cluster; an API
    server on each."""
    single = make_settings(partitions=4, operators="all")
    clustered = single.model_copy(update={"redis_url": redis_cluster.url, "group_id": single.group_id + "-c"})
    ensure_topics(single)
    publish_sim(single, seed=21, events=15_000, communities=25, members=1200, dup_rate=0.01)
    workers = [
        pulse("worker", settings=s, log=tmp_path / f"w{i}.log") for i, s in enumerate((single, clustered))
    ]
    try:
        wait_caught_up(redis_client, single, timeout=300, proc=workers[0])
        wait_caught_up(cluster_client, clustered, timeout=300, proc=workers[1])
    finally:
        for w in workers:
            stop(w)
    servers = []
    urls = []
    for i, s in enumerate((single, clustered)):
        port = _free_port()
        servers.append(pulse("serve", "--port", str(port), settings=s, log=tmp_path / f"api{i}.log"))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            _wait_http(url + "/api/health")
        yield {"single": urls[0], "cluster": urls[1], "applied": applied(redis_client)}
    finally:
        for server in servers:
            stop(server)


def _free_port() -> int:
    from infra.local_services import free_port

    return free_port()


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.2)


def test_the_api_answers_the_same_on_cluster_and_single_node(api_pair):
    def both(path: str) -> tuple[Any, Any]:
        a = requests.get(api_pair["single"] + path, timeout=10)
        b = requests.get(api_pair["cluster"] + path, timeout=10)
        assert a.status_code == b.status_code, (path, a.status_code, b.status_code, b.text[:300])
        return a.json(), b.json()

    single, clustered = both("/api/communities?limit=50")
    assert single["communities"] and single == clustered
    for window in (single["window"], single["window"] - 3600):
        one, two = both(f"/api/communities?limit=7&window={window}")
        assert one == two
    names = [row["community"] for row in single["communities"]]
    for name in [*names[:8], "no-such-community"]:
        for path in ("", "/members?limit=15", "/atmosphere", "/forecast", "/trends", "/members/insights",
                     "/kpis", "/matches"):  # fmt: skip
            one, two = both(f"/api/communities/{requests.utils.quote(name, safe='')}{path}")
            assert one == two, (name, path)
    one, two = both("/api/alerts?limit=500")
    key = lambda a: sorted(map(repr, a["alerts"]))  # noqa: E731  # order across partitions: see README
    assert key(one) == key(two) and len(one["alerts"]) == len(two["alerts"])
    h1, h2 = both("/api/health")
    assert h1["current_window"] == h2["current_window"]
    deadline = time.monotonic() + 10  # live updates: subscribed on the URL's node of the cluster
    while not requests.get(api_pair["cluster"] + "/api/health", timeout=5).json()["subscribed"]:
        assert time.monotonic() < deadline, "the cluster API never subscribed to pulse:updates"
        time.sleep(0.2)


def test_pulse_leaderboard_merges_the_partitions(make_settings, redis_cluster, cluster_client, redis_client):
    """``pulse leaderboard`` (streams.queries) on the cluster prints the single-node board."""
    from streams import queries
    from streams.sinks.cluster import connect

    single = make_settings(partitions=5)
    clustered = single.model_copy(update={"redis_url": redis_cluster.url, "group_id": single.group_id + "-c"})
    ensure_topics(single)
    publish_sim(single, seed=3, events=6000, communities=40, members=500)
    workers = [pulse("worker", settings=s) for s in (single, clustered)]
    try:
        wait_caught_up(redis_client, single, timeout=200, proc=workers[0])
        wait_caught_up(cluster_client, clustered, timeout=200, proc=workers[1])
    finally:
        for w in workers:
            stop(w)
    plain, tagged = connect(single), connect(clustered)
    size = single.window_seconds
    starts = queries.windows(plain, size)
    assert starts and starts == queries.windows(tagged, size)
    for start in starts[:3]:
        for limit in (1, 7, 100):
            assert queries.top_communities(plain, size, start, limit) == queries.top_communities(
                tagged, size, start, limit
            )
    assert queries.applied_offsets(plain) == queries.applied_offsets(tagged)


def test_the_bench_row_on_redis_cluster(make_settings, redis_client, tmp_path):
    """``pulse bench``'s Redis Cluster row (full runs only) times a worker through every partition's
    stored offsets on a cluster it starts and stops itself."""
    from rich.console import Console

    from streams.bench.cluster import measure_cluster
    from streams.bench.config import BenchConfig
    from streams.bench.data import publish_dataset, simulate
    from streams.bench.ui import Ui
    from streams.bench.workers import measure_workers

    ui = Ui(Console(file=open(os.devnull, "w")))  # noqa: SIM115
    settings = make_settings(partitions=3, batch_max=1000)
    messages, sim = simulate(6000, 20, 500, 1, 0.01)
    ds = publish_dataset(settings, "small", messages, sim, ui)
    cfg = BenchConfig.make(6000, quick=True)
    single = measure_workers(ds, redis_client, "single", cfg, tmp_path, ui)
    row = measure_cluster(ds, cfg, tmp_path, ui, single)
    assert row.events_per_s > 0 and 0 < row.messages <= ds.total and not row.capped
    assert row.extra["ratio_to_single_node"] == round(row.events_per_s / single.events_per_s, 3)
    assert "Redis Cluster of 3 primaries" in row.notes


def test_a_batch_over_two_partitions_is_two_atomic_commits(make_settings, redis_cluster, cluster_client):
    """The store commits partition 0, then partition 1's script refuses (a key of the wrong type
    planted in its slot): partition 0 is applied whole with its offsets, partition 1 not at all.  A
    restarted store resumes each partition from its own offsets, and the result is what one commit
    of everything gives (the in-memory store)."""
    from streams.pipeline import Message, Pipeline
    from streams.sinks.cluster import ClusterStore
    from streams.sinks.memory import MemoryStore
    from streams.sinks.redis_store import StoreRefused

    settings = make_settings(redis_url=redis_cluster.url)
    ts = 1_767_225_600_000
    doc = '{{"id":"e{p}-{i}","community":"c{p}","member":"m{m}","ts":{ts},"post":"p{i}","text":"hi"}}'
    messages = [
        Message("posts", p, i, f"c{p}".encode(), doc.format(p=p, i=i, m=i % 3, ts=ts + i).encode())
        for p in (0, 1) for i in range(5)
    ]  # fmt: skip
    planted = "pulse:{p1}:activity:c1:3600s:1767225600"
    cluster_client.set(planted, "not a hash")
    store = ClusterStore.connect(settings)
    result = Pipeline(settings).apply_batch(messages, {})
    store.observe(result)
    with pytest.raises(StoreRefused, match="activity:c1"):
        store.commit(result)
    stored = cluster_client.hgetall("pulse:{p0}:progress")
    offsets = {k.decode(): int(v) for k, v in stored.items() if k.startswith(b"o:")}
    assert offsets == {f"o:{settings.topic('posts')}:0": 5}
    assert cluster_client.hgetall("pulse:{p1}:progress") == {}
    assert cluster_client.hget("pulse:{p0}:activity:c0:3600s:1767225600", "posts") == b"5"
    assert cluster_client.zscore("pulse:{p0}:homes", "c0") is not None
    assert cluster_client.zscore("pulse:{p1}:homes", "c1") is None

    cluster_client.delete(planted)
    again = ClusterStore.connect(settings)
    progress_now = again.load_progress([("posts", 0), ("posts", 1)])
    retry = Pipeline(settings).apply_batch(messages, progress_now)
    assert len(retry.events) == 5  # partition 0's five were applied already
    again.observe(retry)
    again.commit(retry)
    memory = MemoryStore(settings)
    memory.commit(Pipeline(settings).apply_batch(messages, {}))
    for key, want in memory.hashes.items():
        community = key.split(":")[2]
        got = cluster_client.hgetall(f"pulse:{{p{community[1]}}}:{key.removeprefix('pulse:')}")
        assert {k.decode(): float(v) for k, v in got.items()} == {k: float(v) for k, v in want.items()}
    boards = [cluster_client.zrange(f"pulse:{{p{p}}}:lb:communities:3600s:1767225600", 0, -1) for p in (0, 1)]
    assert boards == [[b"c0"], [b"c1"]]


HOSTILE = ["{p1}", "{p0}x", "a:ai", "a", "x{y}z:%", "🚀 founders", "读书会", "*?[]\\", "c" * 256]


def test_hostile_ids_cannot_steer_a_key_into_another_slot(
    make_settings, redis_cluster, cluster_client, tmp_path
):
    """Community ids holding braces (``{p1}`` is a hash tag's shape), colons, globs, emoji and 256
    characters, every operator on: each community's keys land under its own partition's tag (the
    reference checks every key's tag), the state is exact, and the API finds every community."""
    settings = make_settings(redis_url=redis_cluster.url, partitions=4, operators="all")
    ensure_topics(settings)
    now = int(time.time() * 1000) - 60_000
    rng = random.Random(17)
    out = []
    for i in range(1500):
        c, m = rng.choice(HOSTILE), rng.choice(["m:1", "{m}", "ann", "b%20"])
        base = {"id": f"e{i}", "community": c, "member": m, "ts": now + i}
        kind = rng.random()
        if kind < 0.5:
            doc, topic = {**base, "post": f"p{i % 40}", "text": "hello meetup python"}, "posts"
        elif kind < 0.8:
            doc, topic = {**base, "post": f"p{i % 40}", "reaction": "like"}, "reactions"
        else:
            doc, topic = {**base, "meetup": f"mt:{i % 5}", "status": "going"}, "rsvps"
        out.append(Outgoing(topic, c.encode(), json.dumps(doc).encode()))
    Publisher(settings).publish(out)
    catch_up(cluster_client, settings, tmp_path / "worker.log", timeout=200)
    check_exact(cluster_client, settings)
    from streams import queries
    from streams.sinks.cluster import connect

    client = connect(settings)
    start = queries.current_window(client, settings.window_seconds)
    assert start is not None
    ranked = {r.name for r in queries.top_communities(client, settings.window_seconds, start, 100)}
    assert ranked == set(HOSTILE)
    for c in HOSTILE:
        assert queries.activity(client, c, settings.window_seconds, start), c


def test_updates_published_by_any_shard_reach_a_subscriber_on_one_node(
    make_settings, redis_cluster, cluster_client
):
    """The API subscribes to ``pulse:updates`` on the URL's node only: a batch committed on every
    other primary must still reach it (``PUBLISH`` inside the script is propagated cluster-wide)."""
    from streams.pipeline import Message, Pipeline
    from streams.sinks.cluster import ClusterStore

    settings = make_settings(redis_url=redis_cluster.url)
    first = redis_cluster.primaries()[0]
    listener = redis.Redis(host=first.host, port=first.port).pubsub(ignore_subscribe_messages=True)
    listener.subscribe("pulse:updates")
    store = ClusterStore.connect(settings)
    ports = {p: cluster_client.get_node_from_key(f"pulse:{{p{p}}}:progress").port for p in range(8)}
    elsewhere = [p for p, port in ports.items() if port != first.port][:2]
    assert elsewhere, ports
    doc = '{{"id":"e{p}","community":"c{p}","member":"m","ts":1767225600000,"post":"p","text":"hi"}}'
    messages = [Message("posts", p, 0, f"c{p}".encode(), doc.format(p=p).encode()) for p in elsewhere]
    result = Pipeline(settings).apply_batch(messages, {})
    store.observe(result)
    store.commit(result)
    got = []
    deadline = time.monotonic() + 5
    while len(got) < len(elsewhere) and time.monotonic() < deadline:
        message = listener.get_message(timeout=0.5)
        if message:
            got.append(json.loads(message["data"]))
    assert sorted(got) == sorted([[f"c{p}"] for p in elsewhere])
