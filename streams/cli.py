"""``pulse``: the command line.  Every subcommand takes the settings as flags (``--redis-url``)
that override the ``PULSE_*`` environment variables; see :mod:`streams.config`."""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console

from streams import queries
from streams.config import INPUT_TOPICS, Settings
from streams.publisher import Outgoing, Publisher
from streams.render import leaderboard_table, wide_console

console = Console(stderr=True)


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add one ``--flag`` per Settings field (default: the environment's value)."""
    for name, field in reversed(list(Settings.model_fields.items())):
        flag = "--" + name.replace("_", "-")
        func = click.option(flag, name, default=None, help=field.description, show_default=False)(func)
    return func


def make_settings(flags: dict[str, Any]) -> Settings:
    return Settings(**{k: v for k, v in flags.items() if v is not None and k in Settings.model_fields})


def _split(kwargs: dict[str, Any]) -> tuple[Settings, dict[str, Any]]:
    own = {k: v for k, v in kwargs.items() if k not in Settings.model_fields}
    return make_settings(kwargs), own


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Pulse: live activity, atmosphere, forecasts and matches for community platforms."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@settings_options
@click.option(
    "--processes",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Worker processes in one group (a supervisor restarts any that dies; child i serves"
    " metrics on PULSE_METRICS_PORT + i). See streams/engines/supervisor.py.",
)
def worker(processes: int = 1, **kwargs: Any) -> None:
    """Consume the input topics and keep Redis up to date (until SIGTERM/SIGINT)."""
    settings, _ = _split(kwargs)
    if processes > 1:
        from streams.engines.supervisor import Supervisor
        from streams.processes import settings_env

        sys.exit(Supervisor(processes, settings_env(settings), settings.metrics_port).run())
    from streams.startup import StartupError, limit_malloc_arenas, wait_for_services

    limit_malloc_arenas(settings.malloc_arena_max)  # before any thread: numpy's, /metrics', Kafka's
    from streams.metrics import serve

    logging.getLogger(__name__).info(
        "pulse worker: engine=%s kafka=%s redis=%s prefix=%r operators=%s",
        settings.engine,
        settings.kafka_bootstrap,
        settings.redis_url_redacted(),
        settings.topic_prefix,
        settings.operators,
    )
    # /metrics first: Prometheus sees a worker that waits (pulse_redis_up says whether Redis answers).
    serve(settings.metrics_host, settings.metrics_port)
    try:
        wait_for_services(settings)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    if settings.engine == "faust":
        from streams.engines.faust_app import run_worker

        run_worker(settings)
        return
    import signal

    from streams.engines.batch import BatchEngine

    engine = BatchEngine(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: engine.stop())
    engine.run()


def read_envelopes(path: Path | None, topic: str | None) -> Iterator[Outgoing]:
    """Messages from a file (``-``: stdin).

    With ``topic``: each line is one message value, sent as is (key = its ``community`` when the
    line is a JSON object).  Without: each line is an envelope ``{"topic", "key", "value"}`` where
    ``value`` is any JSON (sent encoded) or ``value_b64`` carries arbitrary bytes.
    """
    stream = sys.stdin.buffer if path is None else path.open("rb")
    with stream:
        for line in stream:
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            if topic:
                key = None
                try:
                    doc = orjson.loads(line)
                    if isinstance(doc, dict) and isinstance(doc.get("community"), str):
                        key = doc["community"].encode()
                except orjson.JSONDecodeError:
                    pass
                yield Outgoing(topic, key, line)
                continue
            env = orjson.loads(line)
            if env.get("topic") not in INPUT_TOPICS:
                raise click.BadParameter(
                    f"envelope topic must be one of {INPUT_TOPICS}: {env.get('topic')!r}"
                )
            value = base64.b64decode(env["value_b64"]) if "value_b64" in env else orjson.dumps(env["value"])
            key = env.get("key")
            yield Outgoing(env["topic"], key.encode() if isinstance(key, str) else None, value)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option(
    "--topic", "to_topic", type=click.Choice(INPUT_TOPICS), help="Raw mode: one message value a line."
)
@click.option("--rate", type=float, default=None, help="Messages per second (default: as fast as possible).")
@settings_options
def publish(file: Path | None, to_topic: str | None, rate: float | None, **kwargs: Any) -> None:
    """Publish messages from FILE (or stdin) to the input topics."""
    settings, _ = _split(kwargs)
    source = None if file is None or str(file) == "-" else file
    sent = Publisher(settings).publish(read_envelopes(source, to_topic), rate=rate)
    console.print(f"published {sent} messages to {settings.kafka_bootstrap}")


@main.command()
@click.option("--events", type=int, default=100_000, show_default=True)
@click.option("--communities", type=int, default=20, show_default=True)
@click.option("--members", type=int, default=2000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--rate", type=float, default=None, help="Messages per second (default: as fast as possible).")
@click.option("--malformed-rate", type=float, default=0.0, show_default=True)
@click.option("--dup-rate", type=float, default=0.0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write envelopes here instead.")
@click.option(
    "--forever",
    is_flag=True,
    help="Keep publishing (until SIGTERM) in rounds of one minute at --rate (at most --events each),"
    " stamped at the wall clock: the steady traffic of a platform.  Needs --rate.",
)
@settings_options
def simulate(out: Path | None, rate: float | None, forever: bool, **kwargs: Any) -> None:
    """Generate a realistic community stream and publish it (or write it to --out)."""
    from streams.simulator import SimConfig, Simulator

    settings, own = _split(kwargs)
    if forever:
        if rate is None or rate <= 0 or out is not None:
            raise click.UsageError("--forever needs --rate (event times follow the wall clock) and no --out")
        simulate_forever(settings, own, rate)
        return
    sim = Simulator(SimConfig(**own))
    if out is not None:
        with out.open("wb") as f:
            for m in sim.messages():
                env = {"topic": m.topic, "key": m.key.decode() if m.key else None}
                env["value_b64"] = base64.b64encode(m.value or b"").decode()
                f.write(orjson.dumps(env) + b"\n")
        console.print(f"wrote {out}")
        return
    from rich.progress import Progress

    with Progress(console=console) as progress:
        task = progress.add_task("publishing", total=own["events"])
        sent = Publisher(settings).publish(
            (Outgoing(m.topic, m.key, m.value) for m in sim.messages()),
            rate=rate,
            on_progress=lambda n: progress.update(task, completed=n),
        )
    console.print(f"published {sent} messages")


def simulate_forever(settings: Settings, own: dict[str, Any], rate: float, rounds: int | None = None) -> int:
    """Publish rounds of ``min(events, rate * 60)`` events whose times start at the wall clock and
    span the round's duration, so event time keeps pace with publishing (never in the decoder's
    future by more than the round's jitter).  Same seed every round: the same communities and
    members; ids differ (the simulator derives them from the start time).  Returns messages sent."""
    import signal
    import time

    from streams.simulator import SimConfig, Simulator

    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    per_round = max(1, min(int(own["events"]), int(rate * 60)))
    publisher = Publisher(settings)
    total = done = 0
    log = logging.getLogger(__name__)
    while not stopping and (rounds is None or done < rounds):
        config = SimConfig(
            **{**own, "events": per_round},
            start_ms=int(time.time() * 1000),
            span_seconds=max(1, round(per_round / rate)),
        )
        messages = (Outgoing(m.topic, m.key, m.value) for m in Simulator(config).messages())
        total += publisher.publish(messages, rate=rate, stop=lambda: bool(stopping))
        done += 1
        log.info("simulate: round %d published, %d messages in all", done, total)
    return total


@main.command()
@click.option("--window", "start", type=int, default=None, help="Window start (epoch s); default: newest.")
@click.option("--community", default=None, help="Show this community's members instead.")
@click.option("--limit", type=int, default=10, show_default=True)
@settings_options
def leaderboard(start: int | None, community: str | None, limit: int, **kwargs: Any) -> None:
    """Print the communities (or one community's members) leaderboard from Redis."""
    settings, _ = _split(kwargs)
    from streams.sinks.redis_store import RedisStore

    client = RedisStore.connect(settings).client
    start = start if start is not None else queries.current_window(client, settings.window_seconds)
    if start is None:
        console.print("no windows in Redis yet")
        return
    wide_console().print(leaderboard_table(client, settings, start, community, limit))


@main.command()
@click.option("--events", type=int, default=75_000, show_default=True, help="Events the simulator publishes.")
@click.option("--rate", type=float, default=2500, show_default=True, help="Events per second.")
@click.option("--communities", type=int, default=30, show_default=True)
@click.option("--members", type=int, default=3000, show_default=True)
@click.option("--port", type=int, default=8080, show_default=True, help="Port of the live page (0: any).")
@click.option("--linger", type=float, default=0, show_default=True, help="Seconds to keep serving after.")
@settings_options
def demo(**kwargs: Any) -> None:
    """Start what is missing (broker, Redis), run worker + simulator, show live leaderboards."""
    from streams.demo import run_demo

    if logging.getLogger().level > logging.DEBUG:  # the live table, not a wall of logs
        logging.getLogger().setLevel(logging.WARNING)
    settings, own = _split(kwargs)
    run_demo(settings, **own)


@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Bind address of the API and page (0.0.0.0: all)."
)
@click.option("--port", type=int, default=8080, show_default=True)
@settings_options
def serve(host: str, port: int, **kwargs: Any) -> None:
    """Serve the read-only HTTP API and the live page (reads Redis only, never Kafka)."""
    settings, _ = _split(kwargs)
    from streams.api.server import run

    run(settings, host, port)


@main.command()
@click.option("--events", type=int, default=200_000, show_default=True, help="Events per throughput run.")
@click.option(
    "--quick", is_flag=True, help="A small smoke run (seconds, not minutes); figures are not meaningful."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench/results"),
    show_default=True,
)
@settings_options
def bench(**kwargs: Any) -> None:
    """Measure raw consumer vs idiomatic Faust vs Pulse on the same data; write JSON + markdown."""
    from streams.bench import run_bench

    settings, own = _split(kwargs)
    run_bench(settings, **own)


@main.command()
@click.argument("texts", nargs=-1)
@click.option("--max-chars", type=int, default=None, help="Characters analysed (PULSE_TEXT_MAX_CHARS).")
def analyze(texts: tuple[str, ...], max_chars: int | None) -> None:
    """What the text stage sees in each text: one JSON object per line (language, topics, terms,
    sentiment).  TEXTS as arguments, or one per line on stdin."""
    from online_models.text_stage import analyze as run

    limit = max_chars if max_chars is not None else make_settings({}).text_max_chars
    lines = texts or (line.rstrip("\r\n") for line in click.get_text_stream("stdin"))
    out = click.get_binary_stream("stdout")
    for text in lines:
        doc = {"text": text, **run(text, limit).as_dict()}
        out.write(orjson.dumps(doc) + b"\n")
    out.flush()


@main.group()
def evaluate() -> None:
    """Labelled simulator scenarios through the real pipeline, scored against the issues' targets.

    Each runs on its own embedded broker and Redis (never a platform's), publishes the stream as
    JSON, lets a worker apply it and scores what Redis and the output topics then hold.
    """
    if logging.getLogger().level > logging.DEBUG:  # the report, not a wall of logs
        logging.getLogger().setLevel(logging.WARNING)


@evaluate.command("atmosphere")
@click.option("--seeds", type=int, default=1, show_default=True, help="Streams per scenario, language, rate.")
def evaluate_atmosphere(seeds: int) -> None:
    """Atmosphere drops, spikes, steady and quiet communities: alert delays and false alarms."""
    from streams.evaluation.atmosphere import evaluate_atmosphere as run

    run(seeds)


@evaluate.command("models")
@click.option("--days", type=int, default=14, show_default=True, help="Simulated days.")
@click.option("--communities", type=int, default=12, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--warmup-days", type=float, default=2.0, show_default=True, help="Not scored.")
def evaluate_models(days: int, communities: int, seed: int, warmup_days: float) -> None:
    """Demand/supply forecasts vs naive baselines, and meetup turnout predictions."""
    from streams.evaluation.models import evaluate_models as run

    run(days, communities, seed, warmup_days)


@evaluate.command("matching")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--days", type=int, default=30, show_default=True, help="Simulated days of needs and offers.")
def evaluate_matching(seed: int, days: int) -> None:
    """Need/offer match candidates: precision@3 and recall@10 of what Redis shows, once a day."""
    from streams.evaluation.matching import evaluate_matching as run

    run(seed, days)


@evaluate.command("trends")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=int, default=6, show_default=True, help="Simulated days (the first is warm-up).")
@click.option(
    "--communities", type=int, default=6, show_default=True, help="With surges (as many steady ones too)."
)
@click.option(
    "--checkpoint-minutes", type=int, default=5, show_default=True, help="Read the top 3 this often."
)
def evaluate_trends(seed: int, days: int, communities: int, checkpoint_minutes: int) -> None:
    """Hot topics: surging topics' time to the top 3 (English, Chinese, mixed), false surge alerts."""
    from streams.evaluation.insights import evaluate_trends as run

    run(days=days, communities=communities, seed=seed, checkpoint_minutes=checkpoint_minutes)


@evaluate.command("realtext")
def evaluate_realtext() -> None:
    """The text stage on real public posts (Hacker News, Weibo, VADER's rated tweets): hot-topic
    junk at every checkpoint, sentiment ROC AUC, neutral titles given a strong tone."""
    from streams.evaluation.realtext import evaluate_realtext as run

    run()


@evaluate.command("members")
@click.option("--seed", type=int, default=11, show_default=True)
@click.option("--days", type=int, default=120, show_default=True, help="Simulated days.")
@click.option("--communities", type=int, default=3, show_default=True)
@click.option("--members", type=int, default=400, show_default=True, help="Members per community.")
def evaluate_members(seed: int, days: int, communities: int, members: int) -> None:
    """Member risk: progressive-validation ROC AUC vs the recency-only baseline, at-risk lists."""
    from streams.evaluation.insights import evaluate_members as run

    run(days=days, communities=communities, members=members, seed=seed)


if __name__ == "__main__":
    main()
