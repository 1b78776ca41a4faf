"""``pulse demo``: the whole product on one machine in under two minutes.

Starts an embedded broker and Redis when none is configured, runs the worker (batch engine,
in a thread) and the simulator (paced, so the leaderboards move), shows the live leaderboard
read back from Redis, then prints the final standings and a summary, and stops what it started.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams import queries
from streams.cli import leaderboard_table, wide_console
from streams.config import Settings
from streams.engines.batch import BatchEngine
from streams.publisher import Outgoing, Publisher
from streams.simulator import SimConfig, Simulator
from streams.topics import ensure_topics


def run_demo(
    settings: Settings,
    events: int = 60_000,
    rate: float = 2000,
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
    for key in sorted(client.scan_iter("pulse:forecast:*", count=500))[:limit]:
        h = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        when = time.strftime("%H:%M", time.gmtime(int(h.get("window") or 0)))
        fields = ("demand", "supply", "gap", "mae", "mae_last_value", "mae_seasonal")
        name = key.decode().removeprefix("pulse:forecast:")
        forecast.add_row(name, when, *(h.get(f) or "–" for f in fields))
    if forecast.row_count:
        tables.append(forecast)
    turnout = Table(title="Meetup turnout predictions")
    for col in ("meetup", "community", "going", "maybe", "predicted", "capacity", "fill", "state"):
        turnout.add_column(col, justify="left" if col in ("meetup", "community", "state") else "right")
    for key in sorted(client.scan_iter("pulse:meetup:*", count=500))[:limit]:
        h = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        fields = ("community", "going", "maybe", "predicted_turnout", "capacity", "predicted_fill", "state")
        turnout.add_row(key.decode().removeprefix("pulse:meetup:"), *(h.get(f) or "–" for f in fields))
    if turnout.row_count:
        tables.append(turnout)
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
    ensure_topics(settings)
    engine = BatchEngine(settings)
    worker = threading.Thread(target=engine.run, name="pulse-worker", daemon=True)
    worker.start()
    sim = Simulator(
        SimConfig(
            seed=7,
            events=events,
            communities=communities,
            members=members,
            dup_rate=0.01,
            malformed_rate=0.002,
        )
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
            live.update(Group(progress, Panel.fit(board, title="live from Redis", border_style="cyan")))
            if published["done"] and totals["messages"] >= published["n"]:
                break
            if not worker.is_alive():
                raise RuntimeError("the worker stopped unexpectedly; see the log above")
            time.sleep(refresh_seconds)
    engine.stop()
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
    summary = {"published": published["n"], **totals, "seconds": round(elapsed, 1), "window": start}
    console.print(
        f"[bold green]done[/] in {elapsed:.1f} s: {summary['published']} published,"
        f" {totals['applied']} applied,"
        f" {totals['duplicates']} duplicates skipped, {totals['dead_letters']} dead-lettered."
    )
    del engine, publisher, worker
    gc.collect()  # destroy the Kafka clients (callbacks make cycles) before their broker stops
    return summary
