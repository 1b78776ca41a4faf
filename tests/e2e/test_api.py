"""The HTTP read API (``streams/api``) against a real Redis filled by the real worker.

One worker per module consumes a simulated stream from the session's broker; every answer of the
API is then compared with what Redis itself holds, not with hand-written expectations.  The
OpenAPI document is held to the routes, and schemathesis generates requests from it (valid and
invalid) against the live server on a free port: none may get a 5xx or break the documented
responses.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import redis
import schemathesis
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from infra.local_services import EmbeddedBroker, EmbeddedRedis, free_port
from streams.api.server import API_ROUTES, OPENAPI_PATH, create_app, serve_in_thread
from streams.config import Settings
from streams.publisher import Outgoing, Publisher
from streams.simulator import SimConfig, Simulator
from streams.sinks.redis_store import UPDATES_CHANNEL
from streams.topics import ensure_topics
from tests.pipelines import WINDOW_SECONDS, Pipeline, module_settings, reactions, running_pipeline
from tests.workers import isolated_settings, pulse, stop, wait_caught_up

pytestmark = pytest.mark.slow

T = TypeVar("T")

@pytest.fixture(scope="module")
def pipeline(
    broker: EmbeddedBroker, redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    settings = module_settings(broker, redis_server)
    with running_pipeline(settings, tmp_path_factory.mktemp("api") / "worker.log") as running:
        yield running


# --------------------------------------------------------------------------------------------------
# Calling the app
# --------------------------------------------------------------------------------------------------


def with_client(settings: Settings, body: Callable[[TestClient], Awaitable[T]], **app_kwargs: Any) -> T:
    """Run ``body`` against ``create_app(settings)`` served by aiohttp's test server."""

    async def main() -> T:
        async with TestClient(TestServer(create_app(settings, **app_kwargs))) as client:
            return await body(client)

    return asyncio.run(main())


def get_json(settings: Settings, *paths: str) -> list[tuple[int, Any]]:
    """(status, decoded JSON body) of GET ``path``, for each path."""

    async def body(client: TestClient) -> list[tuple[int, Any]]:
        out = []
        for path in paths:
            resp = await client.get(path)
            assert resp.content_type == "application/json", (path, resp.status, await resp.text())
            out.append((resp.status, orjson.loads(await resp.read())))
        return out

    return with_client(settings, body)


def s(value: bytes) -> str:
    return value.decode()


def window_starts(client: redis.Redis) -> list[int]:
    """Window starts with data, newest first (``pulse:windows:{size}s``)."""
    return [int(float(x)) for x in client.zrevrange(f"pulse:windows:{WINDOW_SECONDS}s", 0, -1)]


# --------------------------------------------------------------------------------------------------
# Leaderboards equal Redis
# --------------------------------------------------------------------------------------------------


def test_communities_leaderboard_equals_redis_sorted_set(pipeline: Pipeline) -> None:
    client = pipeline.client
    starts = window_starts(client)
    assert len(starts) >= 10, starts  # three hours of 10-minute windows
    asked = ["current", *map(str, starts[:3]), str(starts[1] + 123)]  # any second inside names the window
    answers = get_json(pipeline.settings, *(f"/api/communities?window={w}&limit=500" for w in asked))
    answers += get_json(pipeline.settings, "/api/communities", "/api/communities?limit=3")
    expected_windows = [starts[0], *starts[:3], starts[1], starts[0], starts[0]]
    for (status, doc), start in zip(answers, expected_windows, strict=True):
        assert status == 200, doc
        assert doc["window"] == start and doc["window_seconds"] == WINDOW_SECONDS
        key = f"pulse:lb:communities:{WINDOW_SECONDS}s:{start}"
        board = [(s(m), score) for m, score in client.zrevrange(key, 0, -1, withscores=True)]
        assert doc["total"] == len(board) >= 5
        shown = [(row["community"], row["score"]) for row in doc["communities"]]
        assert shown == board[: len(shown)]  # same names, same order, bit-identical scores
        assert [row["rank"] for row in doc["communities"]] == list(range(1, len(shown) + 1))
        for row in doc["communities"]:
            stored = client.hgetall(f"pulse:activity:{row['community']}:{WINDOW_SECONDS}s:{start}")
            for field in ("interactions", "participants", "posts"):
                assert row[field] == int(stored[field.encode()])
            assert float(stored[b"score"]) == row["score"]
            prev = client.zrevrank(
                f"pulse:lb:communities:{WINDOW_SECONDS}s:{start - WINDOW_SECONDS}", row["community"]
            )
            assert row["previous_rank"] == (prev + 1 if prev is not None else None)
    assert len(answers[0][1]["communities"]) == answers[0][1]["total"]  # limit=500 shows all
    assert len(answers[-2][1]["communities"]) == min(20, answers[-2][1]["total"])  # default limit
    assert len(answers[-1][1]["communities"]) == 3


def test_community_detail_and_members_equal_redis(pipeline: Pipeline) -> None:
    client = pipeline.client
    starts = window_starts(client)
    current = starts[0]
    top = s(client.zrevrange(f"pulse:lb:communities:{WINDOW_SECONDS}s:{current}", 0, 0)[0])
    path = f"/api/communities/{top}"
    (status, detail), (m_status, members), (old_status, old) = get_json(
        pipeline.settings,
        f"{path}?windows=12",
        f"{path}/members?limit=500",
        f"{path}?window={starts[3]}&limit=3",
    )
    assert status == m_status == old_status == 200
    assert detail["community"] == top and detail["window"] == current and detail["rank"] == 1
    assert [h["start"] for h in detail["history"]] == sorted(starts[:12])  # oldest first
    for point in detail["history"]:
        stored = client.hgetall(f"pulse:activity:{top}:{WINDOW_SECONDS}s:{point['start']}")
        assert point["score"] == float(stored.get(b"score", 0))
        assert point["interactions"] == int(stored.get(b"interactions", 0))
        assert point["participants"] == int(stored.get(b"participants", 0))
        assert point["posts"] == int(stored.get(b"posts", 0))
    assert detail["activity"] == {k: v for k, v in detail["history"][-1].items() if k != "start"}
    key = f"pulse:lb:members:{top}:{WINDOW_SECONDS}s:{current}"
    full = [(s(m), c) for m, c in client.zrevrange(key, 0, -1, withscores=True)]
    assert [(m["member"], m["contribution"]) for m in members["members"]] == full
    assert members["total"] == len(full) == detail["members_total"]
    assert [(m["member"], m["contribution"]) for m in detail["members"]] == full[:10]
    assert [m["rank"] for m in members["members"]] == list(range(1, len(full) + 1))
    old_key = f"pulse:lb:members:{top}:{WINDOW_SECONDS}s:{starts[3]}"
    assert [(m["member"], m["contribution"]) for m in old["members"]] == [
        (s(m), c) for m, c in client.zrevrange(old_key, 0, 2, withscores=True)
    ]
    rank = client.zrevrank(f"pulse:lb:communities:{WINDOW_SECONDS}s:{starts[3]}", top)
    assert old["window"] == starts[3] and old["rank"] == (rank + 1 if rank is not None else None)


def test_unknown_community_is_404_on_detail_and_empty_on_collections(pipeline: Pipeline) -> None:
    base = "/api/communities/no-such-community"
    answers = get_json(
        pipeline.settings,
        base,
        f"{base}/members",
        f"{base}/atmosphere",
        f"{base}/forecast",
        f"{base}/matches",
    )
    statuses = [status for status, _ in answers]
    assert statuses == [404, 200, 404, 404, 200]
    assert answers[0][1]["error"] == "not_found" and "no-such-community" in answers[0][1]["detail"]
    assert answers[1][1]["members"] == [] and answers[1][1]["total"] == 0
    assert answers[4][1] == {"community": "no-such-community", "complete": True, "posts": []}


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/communities?window=abc", "window"),
        ("/api/communities?window=-600", "window"),
        ("/api/communities?window=1.5", "window"),
        ("/api/communities?window=123456789012", "window"),  # beyond 11 digits
        ("/api/communities?limit=0", "limit"),
        ("/api/communities?limit=501", "limit"),
        ("/api/communities?limit=ten", "limit"),
        ("/api/communities?limit=" + "9" * 5000, "limit"),  # no int() of 5000 digits
        ("/api/communities?limit=1&limit=2", "limit"),
        ("/api/communities/x/members?window=now", "window"),
        ("/api/communities/x?windows=0", "windows"),
        ("/api/communities/x/matches?candidates=51", "candidates"),
        ("/api/alerts?limit=-1", "limit"),
        ("/api/communities/bad%00name", "community"),
        ("/api/communities/tab%09/members", "community"),
        ("/api/communities/c%C2%85/atmosphere", "community"),  # U+0085, a C1 control
        ("/api/communities/" + "c" * 257 + "/forecast", "community"),
    ],
)
def test_bad_parameters_are_400_with_a_json_reason(pipeline: Pipeline, path: str, parameter: str) -> None:
    [(status, doc)] = get_json(pipeline.settings, path)
    assert status == 400, doc
    assert doc["error"] == "bad_parameter" and doc["parameter"] == parameter
    assert parameter in doc["detail"] and len(doc["detail"]) < 200


def test_unknown_paths_and_methods_are_json_4xx(pipeline: Pipeline) -> None:
    async def body(client: TestClient) -> list[tuple[int, Any, str | None]]:
        out = []
        for method, path in [("GET", "/api/nope"), ("POST", "/api/communities"), ("DELETE", "/api/alerts")]:
            resp = await client.request(method, path)
            out.append((resp.status, orjson.loads(await resp.read()), resp.headers.get("Allow")))
        return out

    (s404, d404, _), (s405, d405, allow), (s405b, _, _) = with_client(pipeline.settings, body)
    assert (s404, d404["error"]) == (404, "not_found")
    assert (s405, s405b, d405["error"]) == (405, 405, "method_not_allowed") and "GET" in (allow or "")


def test_unreachable_redis_is_503_json_and_the_page_still_loads() -> None:
    """No Redis behind the server: JSON 503s (health keeps its shape), the static page still loads."""
    settings = Settings(_env_file=None, redis_url=f"redis://127.0.0.1:{free_port()}/0")

    async def body(client: TestClient) -> list[tuple[int, Any]]:
        out: list[tuple[int, Any]] = []
        for path in ("/api/health", "/api/communities", "/api/communities/x", "/api/alerts"):
            resp = await client.get(path)
            out.append((resp.status, orjson.loads(await resp.read())))
        page = await client.get("/")
        out.append((page.status, (await page.text())[:15]))
        return out

    health, board, detail, alerts, page = with_client(settings, body)
    assert health[0] == 503 and health[1]["status"] == "unavailable" and health[1]["redis"] == "down"
    for status, doc in (board, detail, alerts):
        assert (status, doc["error"]) == (503, "redis_unavailable")
    assert page == (200, "<!doctype html>")


# --------------------------------------------------------------------------------------------------
# Optional signals: atmosphere, forecast, matches, alerts
# --------------------------------------------------------------------------------------------------


def test_atmosphere_forecast_matches_and_alerts(pipeline: Pipeline) -> None:
    """Keys in the documented layouts, written as the operators will, come back decoded and ordered.

    Made-up communities only: an operator that runs in the worker may write the real ones.
    """
    client = pipeline.client
    calm, tense = f"api-calm-{uuid.uuid4().hex[:6]}", f"api-tense-{uuid.uuid4().hex[:6]}"
    now_ms = int(time.time() * 1000)
    before = get_json(
        pipeline.settings, f"/api/communities/{calm}/atmosphere", f"/api/communities/{calm}/forecast"
    )
    assert [status for status, _ in before] == [404, 404]

    client.hset(
        f"pulse:atmosphere:{calm}", mapping={"index": "0.42", "label": "calm", "top": '["ai","hiring"]'}
    )
    client.hset(f"pulse:forecast:{calm}", mapping={"next_score": "131.5", "window": "1700000000"})
    alerts = [  # LPUSH order: the last pushed is the newest
        (
            calm,
            {"kind": "atmosphere_drop", "ts": now_ms - 60_000, "severity": "warning", "message": "mood dips"},
        ),
        (
            tense,
            {"kind": "atmosphere_drop", "ts": now_ms - 30_000, "severity": "critical", "message": "heated"},
        ),
        (calm, {"kind": "recovery", "ts": now_ms - 10_000, "severity": "info", "message": "calmer again"}),
    ]
    for community, alert in alerts:  # as Output.raise_alert writes them: the community's list and all
        client.lpush(f"pulse:alerts:{community}", orjson.dumps({**alert, "community": community}))
        client.lpush("pulse:alerts", orjson.dumps({**alert, "community": community}))
    client.lpush(f"pulse:alerts:{tense}", b"plain text from an old writer")  # not JSON: kept as message
    client.zadd(f"pulse:matches:{calm}:p1", {"p7": 0.61, "p9": 0.93, "p2": 0.2})
    client.zadd(f"pulse:matches:{calm}:p3", {"p4": 0.75})
    client.zadd(f"pulse:matches:{calm}", {"p1": now_ms, "p3": now_ms})  # the community's index of them
    client.zadd(f"pulse:matches:{calm}x:p5", {"p6": 0.99})  # another community sharing the prefix
    client.zadd(f"pulse:matches:{calm}x", {"p5": now_ms})
    try:
        answers = get_json(
            pipeline.settings,
            f"/api/communities/{calm}/atmosphere",
            f"/api/communities/{calm}/forecast",
            f"/api/communities/{calm}/matches?candidates=2",
            f"/api/communities/{calm}/matches?limit=1",
            f"/api/communities/{tense}/atmosphere?limit=1",
            "/api/alerts?limit=500",
            "/api/alerts?limit=2",
        )
        assert [status for status, _ in answers] == [200] * 7
        atmos, fc, m2, m1, tense_atmos, merged, two = (doc for _, doc in answers)
        assert atmos["atmosphere"] == {"index": 0.42, "label": "calm", "top": ["ai", "hiring"]}
        assert [a["message"] for a in atmos["alerts"]] == ["calmer again", "mood dips"]  # newest first
        assert all(a["community"] == calm for a in atmos["alerts"])
        assert fc == {"community": calm, "forecast": {"next_score": 131.5, "window": 1700000000.0}}
        assert [p["post"] for p in m2["posts"]] == ["p1", "p3"]  # best candidate first
        assert m2["posts"][0] == {
            "post": "p1",
            "best": 0.93,
            "total": 3,
            "candidates": [{"candidate": "p9", "score": 0.93}, {"candidate": "p7", "score": 0.61}],
        }
        assert [p["post"] for p in m1["posts"]] == ["p1"] and m1["complete"] is True
        assert tense_atmos["atmosphere"] is None
        assert tense_atmos["alerts"] == [{"community": tense, "message": "plain text from an old writer"}]
        mine = [a for a in merged["alerts"] if a["community"] in (calm, tense) and "kind" in a]
        assert [a["message"] for a in mine] == ["calmer again", "heated", "mood dips"]
        assert len(two["alerts"]) == 2
    finally:
        client.delete(
            f"pulse:atmosphere:{calm}",
            f"pulse:forecast:{calm}",
            f"pulse:alerts:{calm}",
            f"pulse:alerts:{tense}",
            "pulse:alerts",
            f"pulse:matches:{calm}:p1",
            f"pulse:matches:{calm}:p3",
            f"pulse:matches:{calm}x:p5",
            f"pulse:matches:{calm}",
            f"pulse:matches:{calm}x",
        )


# --------------------------------------------------------------------------------------------------
# Server-sent events
# --------------------------------------------------------------------------------------------------


async def next_event(resp: ClientResponse, timeout: float = 30) -> tuple[str, str]:
    """The next SSE event (name, data); a comment comes back as ("comment", text)."""
    name, data = "message", []
    deadline = time.monotonic() + timeout
    while True:
        line = await asyncio.wait_for(resp.content.readline(), max(0.01, deadline - time.monotonic()))
        if not line:
            raise AssertionError("event stream ended")
        text = line.decode().rstrip("\n")
        if text.startswith(":"):
            return "comment", text[1:].strip()
        if text.startswith("event:"):
            name = text[6:].strip()
        elif text.startswith("data:"):
            data.append(text[5:].strip())
        elif text == "" and data:
            return name, "\n".join(data)


def test_events_relay_worker_updates_to_every_client_through_one_subscription(pipeline: Pipeline) -> None:
    """Three browsers, one Redis subscription; events published through the real pipeline reach all."""
    community = f"api-live-{uuid.uuid4().hex[:6]}"
    numsub = lambda: dict(pipeline.client.pubsub_numsub(UPDATES_CHANNEL))[UPDATES_CHANNEL.encode()]  # noqa: E731

    async def body(client: TestClient) -> None:
        await wait_for_subscription(client)
        baseline = numsub()
        streams = [await client.get("/api/events") for _ in range(3)]
        for resp in streams:
            assert resp.status == 200 and resp.content_type == "text/event-stream"
            name, data = await next_event(resp)
            assert name == "ready" and orjson.loads(data)["window_seconds"] == WINDOW_SECONDS
        assert numsub() == baseline  # clients share the server's one subscription
        health = await (await client.get("/api/health")).json()
        assert health["clients"] == 3 and health["subscribed"] is True
        await asyncio.to_thread(pipeline.publish, reactions(community, 5))
        for resp in streams:
            while True:
                name, data = await next_event(resp)
                if name == "update" and community in orjson.loads(data):
                    break
        # a quiet stream gets heartbeat comments
        names = [(await next_event(streams[0], timeout=5))[0] for _ in range(2)]
        assert "comment" in names
        for resp in streams:
            resp.close()

    with_client(pipeline.settings, body, heartbeat_seconds=0.3)


async def wait_for_subscription(client: TestClient, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not (await (await client.get("/api/health")).json())["subscribed"]:
        assert time.monotonic() < deadline, "the server never subscribed to pulse:updates"
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------------------------------
# The OpenAPI document and generated requests
# --------------------------------------------------------------------------------------------------


def test_openapi_document_describes_exactly_the_routes(pipeline: Pipeline) -> None:
    async def body(client: TestClient) -> tuple[bytes, list[str]]:
        resp = await client.get("/openapi.json")
        assert resp.status == 200 and resp.content_type == "application/json"
        routes = sorted(
            {r.resource.canonical for r in client.app.router.routes() if r.resource is not None}  # type: ignore[union-attr]
        )
        return await resp.read(), routes

    served, routes = with_client(pipeline.settings, body)
    doc = orjson.loads(served)
    assert served == OPENAPI_PATH.read_bytes()
    assert doc["openapi"].startswith("3.1")
    assert sorted(doc["paths"]) == sorted(p for p, _ in API_ROUTES)
    assert {r for r in routes if r.startswith("/api/")} == set(doc["paths"])
    assert all(list(item) == ["get"] for item in doc["paths"].values())


@pytest.fixture(scope="module")
def live_url(pipeline: Pipeline) -> Iterator[str]:
    """The API on a free loopback port, in a background thread, over the worker-filled Redis."""
    with serve_in_thread(pipeline.settings) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(live_url: str) -> Any:
    """The served OpenAPI document, loaded by schemathesis."""
    return schemathesis.openapi.from_url(f"{live_url}/openapi.json")


def test_generated_requests_get_documented_answers_and_never_a_5xx(live_url: str, tmp_path: Path) -> None:
    """schemathesis generates valid and invalid requests from the served document (coverage,
    fuzzing and stateful phases) against the live server: every check must hold — no 5xx, status
    codes and content types documented, bodies match their schemas, invalid input rejected.

    Its CLI rather than its pytest plugin: the plugin's lazy fixture loader reads a private pytest
    attribute that pytest 9 removed.  The seed is printed, so a failure can be replayed
    (``schemathesis run --seed N``).
    """
    args = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{live_url}/openapi.json",
        "--checks", "all", "--exclude-path", "/api/events", "--max-examples", "30",
        "--request-timeout", "10", "--max-failures", "5", "--no-color",
    ]  # fmt: skip
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    assert re.search(r"\d+ generated, \d+ passed", report), report[-3000:]


def test_real_answers_conform_to_the_document(pipeline: Pipeline, api_schema: Any) -> None:
    """Generated community ids rarely exist: hold real communities' answers to their schemas too."""
    client = pipeline.client
    start = window_starts(client)[0]
    top = s(client.zrevrange(f"pulse:lb:communities:{WINDOW_SECONDS}s:{start}", 0, 0)[0])
    client.hset(f"pulse:atmosphere:{top}-doc", mapping={"index": "-0.3"})
    client.lpush(
        f"pulse:alerts:{top}-doc", orjson.dumps({"kind": "atmosphere_drop", "ts": 1, "message": "x"})
    )
    client.zadd(f"pulse:matches:{top}-doc:p1", {"p2": 0.5})
    client.zadd(f"pulse:matches:{top}-doc", {"p1": 1})
    calls = [
        ("/api/health", {}, {}),
        ("/api/communities", {}, {"limit": 500}),
        ("/api/communities/{community}", {"community": top}, {"windows": 500}),
        ("/api/communities/{community}/members", {"community": top}, {"window": start}),
        ("/api/communities/{community}/atmosphere", {"community": f"{top}-doc"}, {}),
        ("/api/communities/{community}/matches", {"community": f"{top}-doc"}, {}),
        ("/api/alerts", {}, {}),
    ]
    # Written by the worker's own operators when they run (atmosphere, forecasts): real shapes too.
    for kind in ("atmosphere", "forecast"):
        if client.exists(f"pulse:{kind}:{top}"):
            calls.append((f"/api/communities/{{community}}/{kind}", {"community": top}, {}))
    try:
        for path, path_parameters, query in calls:
            case = api_schema[path]["GET"].Case(path_parameters=path_parameters, query=query)
            response = case.call_and_validate()
            assert response.status_code == 200, (path, response.text)
    finally:
        client.delete(
            f"pulse:atmosphere:{top}-doc",
            f"pulse:alerts:{top}-doc",
            f"pulse:matches:{top}-doc:p1",
            f"pulse:matches:{top}-doc",
        )


# --------------------------------------------------------------------------------------------------
# Issue #10 and #7: hot topics, member insights, KPIs and recommendations, from the real operators
# --------------------------------------------------------------------------------------------------

INSIGHT_WINDOW_SECONDS = 3600  # the kpis operator's windows are the pipeline's: hours, as deployed
INSIGHT_OPERATORS = "trends,members,kpis,recommendations"  # opt-in operators (not in ``default``)


def insight_sim() -> SimConfig:
    """A stream of the last 30 hours until a minute ago: the members operator writes its lists at a
    UTC-midnight checkpoint, so the stream must cross at least one (30 h always does).  The span is
    fixed: it used to run from 06:00 UTC two days ago (30-54 hours, by the time of day), and after
    ~18:00 UTC its 3,000 events were too thin for one community to rank any topic."""
    now_ms = int(time.time() * 1000)
    start_ms = now_ms - 30 * 3_600_000
    span_s = (now_ms - start_ms) // 1000 - 60
    return SimConfig(seed=11, events=3000, communities=3, members=150, start_ms=start_ms, span_seconds=span_s)


@dataclass
class InsightsPipeline:
    """A second worker that runs the insight operators, writing Redis database 1 (the module's
    ``pipeline`` owns database 0; ``running_pipeline`` flushes every database, this one only its own)."""

    settings: Settings
    client: redis.Redis
    communities: list[str]


@pytest.fixture(scope="module")
def insights_pipeline(
    pipeline: Pipeline,  # created first: its FLUSHALL must not run after this fixture has filled db 1
    broker: EmbeddedBroker,
    redis_server: EmbeddedRedis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InsightsPipeline]:
    settings = isolated_settings(
        uuid.uuid4().hex[:12],
        kafka_bootstrap=broker.bootstrap,
        redis_url=f"redis://{redis_server.host}:{redis_server.port}/1",
        window_seconds=INSIGHT_WINDOW_SECONDS,
        grace_seconds=120,
        partitions=2,
        operators=INSIGHT_OPERATORS,
    )
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    ensure_topics(settings)
    worker = pulse("worker", settings=settings, log=tmp_path_factory.mktemp("api-insights") / "worker.log")
    try:
        messages = [Outgoing(m.topic, m.key, m.value) for m in Simulator(insight_sim()).messages()]
        Publisher(settings).publish(messages)
        wait_caught_up(client, settings, timeout=240, proc=worker)
        communities = sorted(
            {
                s(k).split(":")[2]
                for k in client.scan_iter(match="pulse:trends:*", count=500)
                if s(k).count(":") == 2
            }
        )
        yield InsightsPipeline(settings, client, communities)
    finally:
        stop(worker)
        client.close()


def _float_or_none(raw: bytes | None) -> float | None:
    return None if raw is None or raw == b"" else float(raw)


def test_trends_equal_the_trends_operators_redis_keys(insights_pipeline: InsightsPipeline) -> None:
    client = insights_pipeline.client
    communities = insights_pipeline.communities
    assert len(communities) == 3, communities  # the worker ran the trends operator on every community
    paths = [f"/api/communities/{c}/trends?limit={n}" for c in communities for n in (500, 3)]
    answers = get_json(insights_pipeline.settings, *paths, f"/api/communities/{communities[0]}/trends")
    default = answers.pop()
    for (status, doc), path in zip(answers, paths, strict=True):
        assert status == 200, doc
        community = path.split("/")[3]
        key = f"pulse:trends:{community}"
        ranking = [(s(t), score) for t, score in client.zrevrange(key, 0, -1, withscores=True)]
        assert doc["community"] == community and doc["total"] == len(ranking) > 0
        assert len(ranking) <= 50  # top_n
        shown = [(row["topic"], row["score"]) for row in doc["topics"]]
        assert shown == ranking[: len(shown)] and len(shown) == min(len(ranking), int(path.rsplit("=", 1)[1]))
        assert [row["rank"] for row in doc["topics"]] == list(range(1, len(shown) + 1))
        for row in doc["topics"]:
            stored = client.hgetall(f"{key}:{row['topic']}")
            assert stored, row  # every ranked topic has its hash (written in the same batch)
            assert row["count"] == int(stored[b"count"]) >= 0
            assert row["first_seen"] == int(stored[b"first_seen"])
            for field in ("forecast", "growth", "level", "momentum"):
                assert row[field] == float(stored[field.encode()]), (field, row)
        raw_themes = client.get(f"pulse:themes:{community}")
        assert doc["themes"] == (orjson.loads(raw_themes) if raw_themes else [])
    assert default[0] == 200 and len(default[1]["topics"]) == min(20, default[1]["total"])


def test_member_insights_equal_the_members_operators_sorted_sets(insights_pipeline: InsightsPipeline) -> None:
    client = insights_pipeline.client
    communities = insights_pipeline.communities
    paths = [f"/api/communities/{c}/insights{q}" for c in communities for q in ("?limit=500", "", "?limit=2")]
    answers = get_json(insights_pipeline.settings, *paths)
    non_empty = 0
    for (status, doc), path in zip(answers, paths, strict=True):
        assert status == 200, doc
        community = path.split("/")[3]
        limit = 500 if "500" in path else 2 if "limit=2" in path else 10
        assert doc["community"] == community and set(doc) == {"community", "at_risk", "rising"}
        for name, key in (("at_risk", "at-risk"), ("rising", "rising")):
            full = [
                (s(m), v)
                for m, v in client.zrevrange(f"pulse:members:{key}:{community}", 0, -1, withscores=True)
            ]
            assert doc[name]["total"] == len(full) <= 100
            rows = doc[name]["members"]
            assert [(r["member"], r["score"]) for r in rows] == full[:limit]
            assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
            non_empty += bool(full)
    assert non_empty >= 3, "the members operator passed a UTC-midnight checkpoint: lists must exist"
    at_risk = [r["score"] for _, doc in answers for r in doc["at_risk"]["members"]]
    assert all(0.0 <= x <= 1.0 for x in at_risk)  # 1 - P(active)


KPI_INTEGERS = (
    "posts", "replied", "needs_opened", "needs_resolved", "meetups", "capacity", "attended",
    "going", "no_shows", "new_members", "returned",
)  # fmt: skip
KPI_NUMBERS = (
    "reply_rate", "median_first_reply_s", "match_success_rate", "fill_rate", "no_show_rate", "return_rate"
)  # fmt: skip


def assert_kpis_equal(doc: dict[str, Any], stored: dict[bytes, bytes]) -> None:
    """Every field of the hash, the documented way: counts as integers, "" (undefined) as null."""
    assert set(doc["kpis"]) == {k.decode() for k in stored} - {"final"}
    for field in KPI_INTEGERS:
        assert doc["kpis"][field] == int(stored[field.encode()]), field
    for field in KPI_NUMBERS:
        assert doc["kpis"][field] == _float_or_none(stored[field.encode()]), field
    assert doc["final"] is (stored[b"final"] == b"1")


def test_kpis_equal_the_kpis_operators_hash(insights_pipeline: InsightsPipeline) -> None:
    client = insights_pipeline.client
    size = INSIGHT_WINDOW_SECONDS
    starts = [int(float(x)) for x in client.zrevrange(f"pulse:windows:{size}s", 0, -1)]
    assert len(starts) >= 30, starts  # 30-54 hours of hourly windows
    for community in insights_pipeline.communities:
        with_kpis = [w for w in starts if client.exists(f"pulse:kpi:{community}:{size}s:{w}")]
        current, older = with_kpis[0], with_kpis[5]
        assert current >= starts[1]  # an active community's current KPIs are of the newest windows
        base = f"/api/communities/{community}/kpis"
        answers = get_json(
            insights_pipeline.settings,
            base,
            f"{base}?window=current",
            f"{base}?window={older}",
            f"{base}?window={older + 1234}",  # any second inside names the window
            f"{base}?window={starts[-1] - 7 * size}",  # before the stream: no KPIs
        )
        expected = [current, current, older, older]
        for (status, doc), start in zip(answers[:4], expected, strict=True):
            assert status == 200, doc
            assert (doc["community"], doc["window"], doc["window_seconds"]) == (community, start, size)
            assert_kpis_equal(doc, client.hgetall(f"pulse:kpi:{community}:{size}s:{start}"))
        assert answers[4][0] == 404 and answers[4][1]["error"] == "not_found"
    # Over the whole stream the rates are defined and in range (the simulator has needs, meetups ...)
    paths = [
        f"/api/communities/{c}/kpis?window={w}" for c in insights_pipeline.communities for w in starts[3:8]
    ]
    older_docs = [doc for _, doc in get_json(insights_pipeline.settings, *paths) if "kpis" in doc]
    assert older_docs and any(d["kpis"]["reply_rate"] is not None for d in older_docs)
    for d in older_docs:
        for field in ("reply_rate", "match_success_rate", "no_show_rate", "return_rate"):
            assert d["kpis"][field] is None or 0.0 <= d["kpis"][field] <= 1.0


def test_recommendations_equal_the_recommenders_sorted_sets(insights_pipeline: InsightsPipeline) -> None:
    client = insights_pipeline.client
    keys = sorted(s(k) for k in client.scan_iter(match="pulse:recs:*", count=1000))
    assert keys, "the recommendations operator wrote no list"
    checked = []
    for key in keys[:5]:
        _, _, community, member = key.split(":", 3)
        if ":" in community:
            continue
        checked.append((community, member))
    paths = [
        f"/api/communities/{c}/members/{m}/recommendations{q}" for c, m in checked for q in ("", "?limit=1")
    ]
    answers = get_json(insights_pipeline.settings, *paths)
    for (status, doc), path in zip(answers, paths, strict=True):
        assert status == 200, doc
        community, member = path.split("/")[3], path.split("/")[5]
        full = [
            (s(m), v) for m, v in client.zrevrange(f"pulse:recs:{community}:{member}", 0, -1, withscores=True)
        ]
        limit = 1 if path.endswith("limit=1") else 5
        assert (doc["community"], doc["member"], doc["total"]) == (community, member, len(full))
        assert [(r["meetup"], r["score"]) for r in doc["meetups"]] == full[:limit]
        assert [r["rank"] for r in doc["meetups"]] == list(range(1, len(doc["meetups"]) + 1))
    assert checked


def test_insight_endpoints_of_an_unknown_community(pipeline: Pipeline) -> None:
    """Collections are empty (200); a window's KPIs are a single document (404)."""
    base = "/api/communities/no-such-community"
    trends_doc, insights_doc, kpis_doc, kpis_window, recs = get_json(
        pipeline.settings,
        f"{base}/trends",
        f"{base}/insights",
        f"{base}/kpis",
        f"{base}/kpis?window=1700000000",
        f"{base}/members/nobody/recommendations",
    )
    assert trends_doc == (200, {"community": "no-such-community", "total": 0, "topics": [], "themes": []})
    empty = {"total": 0, "members": []}
    assert insights_doc == (200, {"community": "no-such-community", "at_risk": empty, "rising": empty})
    assert kpis_doc[0] == kpis_window[0] == 404
    assert kpis_doc[1]["error"] == "not_found" and "no-such-community" in kpis_doc[1]["detail"]
    assert "1699999800" in kpis_window[1]["detail"]  # rounded down to its 600 s window
    assert recs == (200, {"community": "no-such-community", "member": "nobody", "total": 0, "meetups": []})


def test_insight_endpoints_read_odd_values_as_documented(pipeline: Pipeline) -> None:
    """Keys written the documented way with edge values (the operators do not run in ``pipeline``):
    a ranked topic whose hash expired has null fields, undefined rates ("") are null, a themes
    value that is not a JSON array reads as no themes."""
    client = pipeline.client
    community = f"api-odd-{uuid.uuid4().hex[:6]}"
    start = window_starts(client)[0]
    keys = [f"pulse:trends:{community}", f"pulse:trends:{community}:ai", f"pulse:themes:{community}"]
    kpi = f"pulse:kpi:{community}:{WINDOW_SECONDS}s:{start}"
    client.zadd(keys[0], {"ai": 2.5, "expired": 1.25})
    topic = {
        "count": 7,
        "forecast": "8.5",
        "growth": "1.9",
        "level": "3.0",
        "momentum": "4.7",
        "score": "2.5",
    }
    client.hset(keys[1], mapping={**topic, "first_seen": 1767571200000})
    client.set(keys[2], "not json")
    client.hset(kpi, mapping={
        "posts": 0, "replied": 0, "reply_rate": "", "median_first_reply_s": "", "needs_opened": 2,
        "needs_resolved": 1, "match_success_rate": "0.5", "meetups": 0, "capacity": 0, "attended": 0,
        "fill_rate": "", "going": 0, "no_shows": 0, "no_show_rate": "", "new_members": 3, "returned": 0,
        "return_rate": "0.0", "final": 0,
    })  # fmt: skip
    try:
        (t_status, trends_doc), (k_status, kpis_doc) = get_json(
            pipeline.settings, f"/api/communities/{community}/trends", f"/api/communities/{community}/kpis"
        )
        assert t_status == k_status == 200
        assert trends_doc["topics"] == [
            {"rank": 1, "topic": "ai", "score": 2.5, "count": 7, "forecast": 8.5, "growth": 1.9, "level": 3.0,
             "momentum": 4.7, "first_seen": 1767571200000},
            {"rank": 2, "topic": "expired", "score": 1.25, "count": None, "forecast": None, "growth": None,
             "level": None, "momentum": None, "first_seen": None},
        ]  # fmt: skip
        assert trends_doc["themes"] == []
        assert kpis_doc["window"] == start and kpis_doc["final"] is False
        assert_kpis_equal(kpis_doc, client.hgetall(kpi))
        assert kpis_doc["kpis"]["reply_rate"] is None and kpis_doc["kpis"]["return_rate"] == 0.0
    finally:
        client.delete(*keys, kpi)


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/communities/x/trends?limit=0", "limit"),
        ("/api/communities/x/trends?limit=501", "limit"),
        ("/api/communities/x/trends?limit=1&limit=2", "limit"),
        ("/api/communities/x/insights?limit=abc", "limit"),
        ("/api/communities/x/insights?limit=-5", "limit"),
        ("/api/communities/x/kpis?window=yesterday", "window"),
        ("/api/communities/x/kpis?window=-3600", "window"),
        ("/api/communities/x/kpis?window=1&window=2", "window"),
        ("/api/communities/bad%07bell/kpis", "community"),
        ("/api/communities/" + "c" * 257 + "/trends", "community"),
        ("/api/communities/x/members/m/recommendations?limit=51", "limit"),
        ("/api/communities/x/members/bad%0Aline/recommendations", "member"),
        ("/api/communities/x/members/" + "m" * 257 + "/recommendations", "member"),
    ],
)
def test_bad_insight_parameters_are_400_with_a_json_reason(
    pipeline: Pipeline, path: str, parameter: str
) -> None:
    [(status, doc)] = get_json(pipeline.settings, path)
    assert status == 400, doc
    assert doc["error"] == "bad_parameter" and doc["parameter"] == parameter
    assert parameter in doc["detail"] and len(doc["detail"]) < 200


def test_real_insight_answers_conform_to_the_document(insights_pipeline: InsightsPipeline) -> None:
    """The operators' real keys, served, validated against the OpenAPI document's schemas."""
    client = insights_pipeline.client
    recs = sorted(s(k) for k in client.scan_iter(match="pulse:recs:*", count=1000))
    with serve_in_thread(insights_pipeline.settings) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        calls: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        for c in insights_pipeline.communities:
            calls += [
                ("/api/communities/{community}/trends", {"community": c}, {"limit": 500}),
                ("/api/communities/{community}/insights", {"community": c}, {"limit": 500}),
                ("/api/communities/{community}/kpis", {"community": c}, {}),
            ]
        for key in recs[:3]:
            _, _, c, m = key.split(":", 3)
            calls.append(
                (
                    "/api/communities/{community}/members/{member}/recommendations",
                    {"community": c, "member": m},
                    {},
                )
            )
        for path, path_parameters, query in calls:
            case = schema[path]["GET"].Case(path_parameters=path_parameters, query=query)
            response = case.call_and_validate()
            assert response.status_code == 200, (path, response.text)
