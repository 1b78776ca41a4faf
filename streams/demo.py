"""``pulse demo``: the whole product on one machine in under two minutes.

Starts an embedded broker and Redis when none is configured, runs the worker (batch engine,
in a thread) and the simulator (paced, so the leaderboards move), shows the live leaderboard
read back from Redis, then prints the final standings and a summary, and stops what it started.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams import keys, queries
from streams.config import Settings
from streams.engines.local import worker_in_thread
from streams.publisher import Outgoing, Publisher
from streams.render import leaderboard_table, wide_console
from streams.simulator import DemoStory, SimConfig, Simulator, StoryEvent

DEMO_SPAN_SECONDS = 36 * 3600
"""Event time the demo's stream covers: past the day the trend and drop detectors learn levels from."""


def run_demo(
    settings: Settings,
    events: int = 75_000,
    rate: float = 2500,
    communities: int = 30,
    members: int = 3000,
    port: int = 8080,
    linger: float = 0.0,
    console: Console | None = None,
    refresh_seconds: float = 0.5,
) -> dict[str, Any]:
    """Run the demo; returns the summary it prints.  The live page is served on ``port`` (another
    free port when it is taken) while the demo runs, and ``linger`` seconds after it."""
    from infra.local_services import ensure_services

    console = console or wide_console()
    if "operators" not in settings.model_fields_set and "PULSE_OPERATORS" not in os.environ:
        settings = settings.model_copy(update={"operators": "all"})  # the demo shows every signal
    settings, started = ensure_services(settings)
    try:
        with _serve(settings, port) as base:
            url = base.rstrip("/") + "/"
            console.print(f"[bold]live page[/]: {url}  · API {url}api/communities · {url}openapi.json")
            summary = _run(settings, events, rate, communities, members, console, refresh_seconds)
            if linger:
                console.print(f"serving {url} for {linger:g} s more (Ctrl-C ends the demo)")
                with contextlib.suppress(KeyboardInterrupt):
                    time.sleep(linger)
            return summary
    finally:
        for service in reversed(started):
            service.stop()


def signals_tables(client: Any, limit: int = 8) -> list[Table]:
    """What the stateful operators published: next-window forecasts and meetup turnout."""
    tables = []
    forecast = Table(title="Forecasts for the next window (online, river)")
    for col in ("community", "window", "needs", "offers", "gap", "MAE", "MAE last value", "MAE seasonal"):
        forecast.add_column(col, justify="left" if col == "community" else "right")
    for key in sorted(client.scan_iter(keys.pattern("forecast"), count=500))[:limit]:
        h = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        when = time.strftime("%H:%M", time.gmtime(int(h.get("window") or 0)))
        fields: tuple[str, ...] = ("demand", "supply", "gap", "mae", "mae_last_value", "mae_seasonal")
        name = keys.ids_of(key, "forecast")[0]
        forecast.add_row(name, when, *(h.get(f) or "–" for f in fields))
    if forecast.row_count:
        tables.append(forecast)
    turnout = Table(title="Meetup turnout predictions")
    for col in ("meetup", "community", "going", "maybe", "predicted", "capacity", "fill", "state"):
        turnout.add_column(col, justify="left" if col in ("meetup", "community", "state") else "right")
    for key in sorted(client.scan_iter(keys.pattern("meetup"), count=500))[:limit]:
        h = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        fields = ("community", "going", "maybe", "predicted_turnout", "capacity", "predicted_fill", "state")
        turnout.add_row(keys.ids_of(key, "meetup")[1], *(h.get(f) or "–" for f in fields))
    if turnout.row_count:
        tables.append(turnout)
    return tables


def _hash(client: Any, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(key).items()}


def _clock(ms: int | float) -> str:
    return time.strftime("%a %H:%M", time.gmtime(ms / 1000))


def recent_alerts(client: Any, limit: int) -> list[dict[str, Any]]:
    """The newest alerts of every community (the ``pulse:alerts`` list), newest first."""
    found = [orjson.loads(raw) for raw in client.lrange(keys.ALERTS_ALL, 0, limit - 1)]
    return sorted(found, key=lambda a: a.get("ts", 0), reverse=True)


def _alert_text(alert: dict[str, Any]) -> str:
    kind = alert.get("kind")
    if kind == "atmosphere_drop":
        before, after = alert.get("index_before"), alert.get("index_after")
        return f"index {before} → {after} (baseline {alert.get('baseline')})"
    if kind == "topic_surge":
        return f"'{alert.get('topic')}' {alert.get('count')} mentions/h vs {alert.get('baseline')} usual"
    if kind == "supply_gap":
        return f"tag {alert.get('tag')}: demand {alert.get('demand')} vs supply {alert.get('supply')}"
    return ", ".join(f"{k} {v}" for k, v in alert.items() if k in ("expected", "observed", "recovers"))[:80]


def alerts_table(client: Any, limit: int) -> Table:
    """The alerts feed: what the atmosphere, trends and forecast operators raised."""
    table = Table(title="Alerts (newest first)")
    for col in ("event time", "kind", "community", "what"):
        table.add_column(col)
    for alert in recent_alerts(client, limit):
        table.add_row(
            _clock(alert.get("ts", 0)),
            alert.get("kind", "?"),
            alert.get("community", "?"),
            _alert_text(alert),
        )
    return table


def _caught_by(change: StoryEvent, alert: dict[str, Any]) -> bool:
    """The alert is the scripted change's: its kind, and for a surge its topic (the scripted topic
    or one of its tags, as the text stage spells topics), not any surge of that community."""
    if alert.get("kind") != change.kind or alert.get("ts", 0) < change.ts:
        return False
    if change.kind != "topic_surge":
        return True
    from online_models.text_stage import tag_topic
    from streams.simulator import TOPIC_NAMES, TOPIC_TAGS

    words = {change.detail}
    if change.detail in TOPIC_NAMES:
        words.update(TOPIC_TAGS[TOPIC_NAMES.index(change.detail)])
    return alert.get("topic") in {tag_topic(w) for w in words}


def story_table(client: Any, script: list[StoryEvent]) -> Table:
    """Each scripted change next to the first alert after it that is about it (issue 18: the AI
    surge row is not "caught" by a surge of some other word in that community)."""
    table = Table(title="Scripted into the stream → caught by Pulse (event time)")
    for col in ("scripted", "community", "at", "first alert", "after"):
        table.add_column(col, justify="right" if col == "after" else "left")
    for change in script:
        alerts = [orjson.loads(raw) for raw in client.lrange(keys.alerts(change.community), 0, -1)]
        hits = sorted(a["ts"] for a in alerts if _caught_by(change, a))
        first = _clock(hits[0]) if hits else "not (yet)"
        after = f"{(hits[0] - change.ts) / 60000:.0f} min" if hits else "–"
        table.add_row(f"{change.kind} ({change.detail})", change.community, _clock(change.ts), first, after)
    return table


def insight_tables(
    client: Any, script: list[StoryEvent], window_seconds: int, start: int | None, limit: int = 5
) -> list[Table]:
    """Hot topics, members at risk and rising, KPIs and live match candidates."""
    tables = []
    surge = next((c.community for c in script if c.kind == "topic_surge"), None)
    drop = next((c.community for c in script if c.kind == "atmosphere_drop"), None)
    if surge:
        trends = Table(title=f"Hot topics in {surge}")
        for col in ("topic", "trend score", "count this window", "forecast next", "growth"):
            trends.add_column(col, justify="left" if col == "topic" else "right")
        for topic, score in client.zrevrange(keys.trends(surge), 0, limit - 1, withscores=True):
            h = _hash(client, keys.trend_topic(surge, topic.decode()))
            trends.add_row(
                topic.decode(),
                f"{score:.2f}",
                h.get("count", "–"),
                h.get("forecast", "–"),
                h.get("growth", "–"),
            )
        tables.append(trends)
    if drop:
        members = Table(title=f"Members of {drop}: at risk of going quiet · rising")
        members.add_column("at risk")
        members.add_column("risk", justify="right")
        members.add_column("rising")
        members.add_column("score", justify="right")
        risk = client.zrevrange(keys.members_at_risk(drop), 0, limit - 1, withscores=True)
        rising = client.zrevrange(keys.members_rising(drop), 0, limit - 1, withscores=True)
        for i in range(max(len(risk), len(rising))):
            a = risk[i] if i < len(risk) else (b"", None)
            b = rising[i] if i < len(rising) else (b"", None)
            members.add_row(
                a[0].decode(),
                "" if a[1] is None else f"{a[1]:.2f}",
                b[0].decode(),
                "" if b[1] is None else f"{b[1]:.2f}",
            )
        tables.append(members)
        if start is not None and (kpi := _hash(client, keys.kpi(drop, window_seconds, start))):
            kpis = Table(title=f"Operations KPIs of {drop}, window from {_clock(start * 1000)}")
            kpis.add_column("KPI")
            kpis.add_column("value", justify="right")
            for name, value in kpi.items():
                kpis.add_row(name, value)
            tables.append(kpis)
    matches = Table(title="Live match candidates (need ↔ offer, best scores)")
    for col in ("community", "post", "candidate", "score"):
        matches.add_column(col, justify="right" if col == "score" else "left")
    best = []
    for key in client.scan_iter(keys.pattern("matches"), count=1000):
        ids = keys.ids_of(key, "matches")
        if len(ids) != 2:
            continue  # a community's index of its match sets
        top = client.zrevrange(key, 0, 0, withscores=True)
        if top:
            best.append((top[0][1], ids[0], ids[1], top[0][0].decode()))
    for score, community, post, candidate in sorted(best, reverse=True)[:limit]:
        matches.add_row(community, post, candidate, f"{score:.3f}")
    tables.append(matches)
    return tables


def _serve(settings: Settings, port: int) -> contextlib.AbstractContextManager[str]:
    from streams.api.server import serve_in_thread

    try:
        with socket.create_server(("127.0.0.1", port)):
            pass
    except OSError:
        port = 0  # taken: let the OS pick
    return serve_in_thread(settings, host="127.0.0.1", port=port)


def _run(
    settings: Settings,
    events: int,
    rate: float,
    communities: int,
    members: int,
    console: Console,
    refresh_seconds: float,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    console.print(
        f"[bold]Pulse demo[/] · Kafka {settings.kafka_bootstrap} · Redis {settings.redis_url_redacted()}"
    )
    with worker_in_thread(settings) as (engine, worker):
        story = DemoStory(drop_at=0.85, surge_at=0.8)
        sim = Simulator(
            SimConfig(
                seed=7,
                events=events,
                communities=communities,
                members=members,
                span_seconds=DEMO_SPAN_SECONDS,
                dup_rate=0.01,
                malformed_rate=0.002,
            ),
            [story],
        )
        published = {"n": 0, "done": False}

        def publish() -> None:
            published["n"] = Publisher(settings).publish(
                (Outgoing(m.topic, m.key, m.value) for m in sim.messages()),
                rate=rate,
                on_progress=lambda n: published.__setitem__("n", n),
            )
            published["done"] = True

        publisher = threading.Thread(target=publish, name="pulse-simulator", daemon=True)
        publisher.start()
        progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        sent_task = progress.add_task("published", total=None)
        done_task = progress.add_task("applied", total=None)
        client = engine.store.client
        totals = engine.applier.totals
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while True:
                progress.update(
                    sent_task, completed=published["n"], total=published["n"] if published["done"] else None
                )
                progress.update(done_task, completed=totals["messages"], total=published["n"] or None)
                start = queries.current_window(client, settings.window_seconds)
                board = (
                    leaderboard_table(client, settings, start, None, 8)
                    if start is not None
                    else "waiting for data…"
                )
                live.update(
                    Group(
                        progress,
                        Panel.fit(board, title="live from Redis", border_style="cyan"),
                        alerts_table(client, 5),
                    )
                )
                if published["done"] and totals["messages"] >= published["n"]:
                    break
                if not worker.is_alive():
                    raise RuntimeError("the worker stopped unexpectedly; see the log above")
                time.sleep(refresh_seconds)
        engine.stop()  # everything is applied: the tables below read a still Redis
        worker.join(timeout=30)
        elapsed = time.perf_counter() - t0
        start = queries.current_window(client, settings.window_seconds)
        if start is not None:
            console.print(leaderboard_table(client, settings, start, None, 10))
            top = queries.top_communities(client, settings.window_seconds, start, 1)
            if top:
                console.print(leaderboard_table(client, settings, start, top[0].name, 10))
        for table in signals_tables(client):
            console.print(table)
        caught = story_table(client, story.script)
        console.print(caught)
        for table in insight_tables(client, story.script, settings.window_seconds, start):
            console.print(table)
        console.print(alerts_table(client, 10))
        summary = {"published": published["n"], **totals, "seconds": round(elapsed, 1), "window": start}
        console.print(
            f"[bold green]done[/] in {elapsed:.1f} s: {summary['published']} published,"
            f" {totals['applied']} applied,"
            f" {totals['duplicates']} duplicates skipped, {totals['dead_letters']} dead-lettered."
        )
        return summary
