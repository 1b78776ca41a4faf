"""The docker-compose stack's own commands, run for real without a Docker engine.

``docker-compose.yml`` is parsed, and each Pulse service (worker, simulator, serve) runs as a native
process with exactly its ``command`` and ``environment`` (``pulse`` is the image's entrypoint);
only addresses are rewritten: the compose service names ``kafka:9092`` / ``redis:6379`` become an
embedded broker and a real ``redis-server`` started here, and published ports become free loopback
ports.  Debian's Prometheus and Alertmanager run with the compose services' own flags and load the
project's own files: ``alertmanager.yml`` as it is; ``prometheus.yml`` in a copy whose
container paths (the compose volume mounts) and targets point at the local processes — the
``pulse-worker`` DNS discovery becomes a static target at the worker's port — nothing else
(scrape and evaluation intervals are the project's).

What is asserted, in the order a platform would see it:

1. A quiet community (a day of steady chatter) raises no alert: nothing in Redis, every
   ``pulse:alerts_raised:10m`` at 0 after Prometheus scraped the worker, nothing in Alertmanager.
2. A scripted atmosphere drop (three days, then 70 % negative posts: the labelled scenario of
   ``pulse evaluate atmosphere``) reaches Alertmanager as ``PulseAtmosphereDrop``; Prometheus'
   ``pulse_alerts_total`` equals the alerts Redis holds.
3. The compose simulator's stream moves the leaderboard; the API answers (health, leaderboard,
   the alert read back); Prometheus scrapes every target of the project's config (up == 1); every
   query of the Grafana dashboard returns series.

The two scripted communities are published on partitions of their own before the simulator starts:
their events are from January 2026 and the simulator's from now, and a partition's watermark
decides lateness.  A platform publishing history and live traffic to one partition would see the
same dead letters.  The run is bounded (a few minutes) and stops everything it started.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import yaml
from confluent_kafka import Producer

from infra.local_services import EmbeddedBroker, EmbeddedRedis, free_port
from streams.cli import main as pulse_cli
from streams.config import Settings
from streams.evaluation.harness import encode
from streams.labelled.atmosphere import DropScenario, generate
from tests.workers import ROOT, installed, stop, wait_caught_up

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PULSE_SERVICES = ("pulse-worker", "pulse-simulator", "pulse-serve")

QUIET = DropScenario("steady", "en", 60.0, days=1.0, seed=0)
DROP = DropScenario("drop", "en", 60.0, days=(72 + 1.5) / 24, seed=0, severity="severe", change_h=72.0)


# --- fast checks of the compose file ---------------------------------------------------------------


@pytest.mark.parametrize("service", PULSE_SERVICES)
def test_compose_pulse_commands_are_valid(service: str) -> None:
    """Each Pulse service's command parses with the real CLI (a bad flag restarts a container for ever)."""
    name, *args = (str(c) for c in SERVICES[service]["command"])
    ctx = pulse_cli.make_context("pulse", [name, *args])
    command = pulse_cli.get_command(ctx, name)
    assert command is not None, name
    command.make_context(name, args, parent=ctx)  # raises click.UsageError on an unknown flag


def test_compose_worker_runs_every_operator() -> None:
    """The compose worker runs the operators the rules, the Alertmanager route and the dashboard need."""
    from streams.operators.registry import build_operators

    env = {k: str(v) for k, v in SERVICES["pulse-worker"]["environment"].items()}
    settings = Settings.model_validate({k.removeprefix("PULSE_").lower(): v for k, v in env.items()})
    names = {op.name for op in build_operators(settings)}
    assert {"atmosphere", "trends", "matching"} <= names
    assert names == {op.name for op in build_operators(Settings(_env_file=None, operators="all"))}


# --- the smoke run ---------------------------------------------------------------------------------


def http_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """``check()``'s first truthy result; exceptions count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as exc:  # a service still starting: connection refused, 503, ...
            last = exc
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


class Stack:
    """The processes of one smoke run, and how to reach them."""

    def __init__(self, tmp: Path, broker: EmbeddedBroker, redis_server: EmbeddedRedis) -> None:
        self.tmp = tmp
        self.ports = {
            name: free_port() for name in ("worker", "serve", "prometheus", "alertmanager", "cluster")
        }
        # compose address -> local address
        self.addresses = {
            "kafka:9092": broker.bootstrap,
            "redis:6379": f"127.0.0.1:{redis_server.port}",
            "pulse-worker:9100": f"127.0.0.1:{self.ports['worker']}",
            "alertmanager:9093": f"127.0.0.1:{self.ports['alertmanager']}",
            "localhost:9090": f"127.0.0.1:{self.ports['prometheus']}",
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def rewrite(self, text: str) -> str:
        for compose, local in self.addresses.items():
            text = text.replace(compose, local)
        return text

    def volume_paths(self, service: str) -> dict[str, str]:
        """Container path -> host path, from the service's compose volumes (named ones: temp dirs)."""
        paths = {}
        for volume in SERVICES[service].get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                paths[target] = str((ROOT / source).resolve())
            else:
                paths[target] = str(self.tmp / source)
                (self.tmp / source).mkdir(exist_ok=True)
        return paths

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_pulse(self, service: str, port_flag: str | None = None) -> None:
        """``pulse <command>`` with the service's environment, addresses rewritten."""
        spec = SERVICES[service]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
        env |= {k: self.rewrite(str(v)) for k, v in spec["environment"].items()}
        env["PYTHONPATH"] = str(ROOT)
        if env.get("PULSE_METRICS_PORT") == "9100":
            env["PULSE_METRICS_PORT"] = str(self.ports["worker"])
        command = [str(c) for c in spec["command"]]
        if port_flag is not None:  # a published port: --port 8080 -> a free one
            command[command.index("--port") + 1] = str(self.ports[port_flag])
        self.start(service, [sys.executable, "-m", "streams.cli", *command], env)

    def start_alertmanager(self) -> None:
        paths = self.volume_paths("alertmanager")
        flags = [_mapped(flag, paths) for flag in SERVICES["alertmanager"]["command"]]
        assert f"--config.file={ROOT / 'infra/alertmanager/alertmanager.yml'}" in flags  # the project's file
        listen = [
            f"--web.listen-address={self.addresses['alertmanager:9093']}",
            f"--cluster.listen-address=127.0.0.1:{self.ports['cluster']}",
        ]
        self.start("alertmanager", [installed("prometheus-alertmanager"), *flags, *listen])

    def start_prometheus(self) -> None:
        paths = self.volume_paths("prometheus")
        config = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
        config["rule_files"] = [_mapped_path(p, paths) for p in config["rule_files"]]
        for job in config["scrape_configs"]:
            for sd in job.pop("dns_sd_configs", []):  # no DNS here: the names' targets, statically
                job.setdefault("static_configs", []).append(
                    {"targets": [f"{name}:{sd['port']}" for name in sd["names"]]}
                )
        copy = self.tmp / "prometheus.yml"
        copy.write_text(self.rewrite(yaml.safe_dump(config)))
        paths["/etc/prometheus/prometheus.yml"] = str(copy)
        flags = [_mapped(flag, paths) for flag in SERVICES["prometheus"]["command"]]
        listen = f"--web.listen-address={self.addresses['localhost:9090']}"
        self.start("prometheus", [installed("prometheus"), *flags, listen])

    def stop_all(self) -> None:
        for proc in reversed(self.procs.values()):
            stop(proc)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp.glob("*.log")
        )

    # --- queries -------------------------------------------------------------------------------------
    def promql(self, query: str) -> list[dict[str, Any]]:
        url = f"http://{self.addresses['localhost:9090']}/api/v1/query?" + urllib.parse.urlencode(
            {"query": query}
        )
        body = http_json(url)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def am_alerts(self, alertname: str | None = None) -> list[dict[str, Any]]:
        query = "?" + urllib.parse.urlencode({"filter": f'alertname="{alertname}"'}) if alertname else ""
        return list(http_json(f"http://{self.addresses['alertmanager:9093']}/api/v2/alerts{query}"))

    def api(self, path: str) -> Any:
        return http_json(f"http://127.0.0.1:{self.ports['serve']}{path}")


def _mapped_path(path: str, paths: dict[str, str]) -> str:
    for container, host in sorted(paths.items(), key=lambda kv: -len(kv[0])):
        if path == container or path.startswith(container + "/"):
            return host + path[len(container) :]
    return path


def _mapped(flag: str, paths: dict[str, str]) -> str:
    name, eq, value = flag.partition("=")
    return f"{name}={_mapped_path(value, paths)}" if eq else flag


def publish_on_partition(bootstrap: str, scenario: DropScenario, partition: int) -> int:
    """The scenario's events as JSON (a platform's messages), all on ``partition`` of each topic."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "log_level": 3})
    events = generate(scenario)
    for ev in events:
        out = encode(ev)
        producer.produce(out.topic, value=out.value, key=out.key, partition=partition)
        producer.poll(0)
    assert producer.flush(60) == 0
    return len(events)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, redis.Redis, Settings]]:
    installed("prometheus")
    installed("prometheus-alertmanager")
    with (
        EmbeddedBroker(workdir=tmp_path / "broker") as broker,
        EmbeddedRedis(workdir=tmp_path / "redis") as redis_server,
    ):
        stack = Stack(tmp_path, broker, redis_server)
        client = redis.Redis.from_url(redis_server.url)
        settings = Settings(_env_file=None, kafka_bootstrap=broker.bootstrap, redis_url=redis_server.url)
        try:
            yield stack, client, settings
        finally:
            stack.stop_all()
            client.close()
            print(stack.logs())  # shown by pytest only when the test failed


@pytest.mark.slow
def test_compose_stack_end_to_end(stack: tuple[Stack, redis.Redis, Settings]) -> None:
    st, client, settings = stack
    assert SERVICES["pulse-worker"]["environment"]["PULSE_TOPIC_PREFIX"] == settings.topic_prefix == ""
    st.start_alertmanager()
    st.start_prometheus()
    st.start_pulse("pulse-worker")
    st.start_pulse("pulse-serve", port_flag="serve")
    wait_until("worker assigned", lambda: "assigned " in (st.tmp / "pulse-worker.log").read_text(), 90)
    wait_until("API health", lambda: st.api("/api/health")["status"] == "ok", 60)

    # 1. A quiet community raises nothing, up to Alertmanager.
    quiet = publish_on_partition(settings.kafka_bootstrap, QUIET, partition=0)
    print(f"quiet: {quiet} events")
    wait_caught_up(client, settings, timeout=120, proc=st.procs["pulse-worker"])
    seen = wait_until(
        "Prometheus scraped the quiet community's events",
        lambda: (
            (r := st.promql('sum(pulse_events_total{outcome="applied"})'))
            and float(r[0]["value"][1]) == quiet
            and r
        ),
        90,
    )
    scraped_at = float(seen[0]["value"][0])
    wait_until(  # a rule evaluation after that scrape
        "rules evaluated after the scrape",
        lambda: (
            (r := st.promql("timestamp(pulse:alerts_raised:10m)"))
            and all(float(x["value"][1]) > scraped_at for x in r)
        ),
        60,
    )
    raised = {r["metric"]["kind"]: float(r["value"][1]) for r in st.promql("pulse:alerts_raised:10m")}
    assert set(raised) >= {"atmosphere_drop", "activity_drop"} and set(raised.values()) == {0.0}, raised
    assert client.llen(f"pulse:alerts:{QUIET.community}") == 0
    assert st.promql('ALERTS{team="community"}') == []
    assert [a for a in st.am_alerts() if a["labels"].get("team") == "community"] == []

    # 2. A scripted atmosphere drop reaches Alertmanager as PulseAtmosphereDrop.
    published = time.monotonic()
    n_drop = publish_on_partition(settings.kafka_bootstrap, DROP, partition=1)
    wait_caught_up(client, settings, timeout=120, proc=st.procs["pulse-worker"])
    stored = [orjson.loads(a) for a in client.lrange(f"pulse:alerts:{DROP.community}", 0, -1)]
    drops = [a for a in stored if a["kind"] == "atmosphere_drop"]
    assert drops and drops[0]["ts"] >= DROP.change_ms, stored
    fired = wait_until(
        "PulseAtmosphereDrop in Alertmanager", lambda: st.am_alerts("PulseAtmosphereDrop"), 120
    )
    print(
        f"drop: {n_drop} events published -> PulseAtmosphereDrop in Alertmanager"
        f" in {time.monotonic() - published:.1f} s"
    )
    assert (
        fired[0]["labels"] | {"kind": "atmosphere_drop", "team": "community", "severity": "warning"}
        == fired[0]["labels"]
    )
    assert fired[0]["status"]["state"] in ("active", "suppressed")
    assert client.llen(f"pulse:alerts:{QUIET.community}") == 0  # still nothing from the quiet one
    counted = st.promql('sum(pulse_alerts_total{kind="atmosphere_drop"})')
    assert float(counted[0]["value"][1]) == len(drops)

    # 3. The compose simulator's stream; the leaderboard moves; the API answers; every target is up.
    scripted_window = st.api("/api/communities")["window"]  # the scripted streams' (January 2026)
    started = time.time()
    st.start_pulse("pulse-simulator")
    live_window = int(started) // settings.window_seconds * settings.window_seconds

    def board() -> tuple[int, float, int]:
        body = st.api("/api/communities?limit=100")
        return body["window"], sum(row["score"] for row in body["communities"]), body["total"]

    first = wait_until(  # the newest window is now the wall clock's: the simulator's traffic
        "simulator traffic on the leaderboard",
        lambda: (b := board())[0] >= live_window and b[2] > 5 and b,  # several communities, not the first
        60,
    )
    assert scripted_window < live_window and first[1] > 0 and first[2] > 5, (scripted_window, first)
    moved = wait_until("leaderboard moved", lambda: (b := board()) != first and b, 30)
    assert moved[0] > first[0] or moved[1] > first[1], (first, moved)  # more activity, or the next window
    assert st.procs["pulse-simulator"].poll() is None  # --forever: still publishing
    served = st.api("/api/alerts?limit=50")["alerts"]
    assert drops[0]["id"] in {a["id"] for a in served if a["community"] == DROP.community}

    jobs = {
        job["job_name"]
        for job in yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())["scrape_configs"]
    }

    def all_up() -> bool:
        targets = http_json(f"http://{st.addresses['localhost:9090']}/api/v1/targets")["data"][
            "activeTargets"
        ]
        return {t["labels"]["job"] for t in targets} == jobs and all(t["health"] == "up" for t in targets)

    wait_until("every scrape target up", all_up, 60)
    assert {r["metric"]["job"]: r["value"][1] for r in st.promql("up")} == {job: "1" for job in jobs}

    # Every query of the Grafana dashboard returns series (the new panels' metrics are real).
    dashboard = json.loads((ROOT / "infra/grafana/dashboards/pulse.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20

    def empty_queries() -> list[str]:
        concrete = [re.sub(r"\$__rate_interval", "1m", e.replace("$topic", ".*")) for e in exprs]
        return [e for e in concrete if not st.promql(e)]

    wait_until("every dashboard query returns series", lambda: not empty_queries(), 90, every=5)
    for name, proc in st.procs.items():
        assert proc.poll() is None, f"{name} exited with {proc.returncode}"
