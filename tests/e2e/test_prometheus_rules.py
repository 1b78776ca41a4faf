"""The Prometheus rules and the Prometheus/Alertmanager configs, checked by the real tools.

``promtool test rules`` runs infra/prometheus/tests/*.yml (first alert, counter already non-zero
when Prometheus starts, a 9-minute scrape gap, a worker restart, every other rule);
``promtool check config`` and ``amtool check-config`` load the compose stack's files.  Debian's
``prometheus`` and ``prometheus-alertmanager`` packages provide the tools (``make test`` installs
them); the tests skip only when they are not installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.workers import ROOT, installed

RULES = ROOT / "infra" / "prometheus" / "rules" / "pulse.yml"
RULE_TESTS = sorted((ROOT / "infra" / "prometheus" / "tests").glob("*.yml"))
PROMETHEUS_YML = ROOT / "infra" / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = ROOT / "infra" / "alertmanager" / "alertmanager.yml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_promtool_rule_unit_tests_pass() -> None:
    assert RULE_TESTS
    result = run(installed("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_has_a_unit_test() -> None:
    """Each alert is expected to fire somewhere, each recording rule is queried somewhere."""
    fired: set[str] = set()
    queried = ""
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            fired |= {t["alertname"] for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
            queried += " ".join(t["expr"] for t in case.get("promql_expr_test", [])) + " "
    alerts = {r["alert"] for r in rules() if "alert" in r}
    records = {r["record"] for r in rules() if "record" in r}
    assert alerts - fired == set()
    assert {r for r in records if not re.search(rf"(?<![\w:]){re.escape(r)}(?![\w:])", queried)} == set()


def test_rules_use_only_series_the_worker_exports() -> None:
    """Every metric name in a rule is one a freshly started worker process exposes."""
    exposed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import streams.metrics, prometheus_client as p; print(p.generate_latest().decode())",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    suffixes = {"counter": ("",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = {  # from the TYPE lines: a labelled gauge has no sample before its first set()
        name + suffix
        for _, _, name, kind in (line.split() for line in exposed.splitlines() if line.startswith("# TYPE"))
        for suffix in suffixes.get(kind, ("",))
    }
    used = {m for r in rules() for m in re.findall(r"\b(?:pulse|process)_[a-z_]+\b", r["expr"])}
    assert used - names == set(), f"not exposed by the worker: {used - names}"


def test_prometheus_config_loads_with_the_rules(tmp_path: Path) -> None:
    promtool = installed("promtool")
    result = run(promtool, "check", "config", str(PROMETHEUS_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    # The compose file mounts the rules at /etc/prometheus/rules; point the copy at the repository's.
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(RULES.parent / "*.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = run(promtool, "check", "config", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_alertmanager_config_is_valid() -> None:
    result = run(installed("amtool"), "check-config", str(ALERTMANAGER_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alertmanager_routes_pulse_alerts() -> None:
    """amtool's routing test: community alerts and critical pages reach the configured receiver."""
    amtool = installed("amtool")
    for labels in (
        ["alertname=PulseAtmosphereDrop", "severity=warning", "team=community", "kind=atmosphere_drop"],
        ["alertname=PulseWorkerDown", "severity=critical", "job=pulse-worker"],
    ):
        result = run(
            amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}",
            "--verify.receivers=default-webhook", *labels,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
