"""Smoke test of ``pulse bench``: a quick run on the session's broker and Redis produces a complete,
self-consistent report.  Never asserts speed: the machine is shared and noisy, and a quick run's
figures are not meaningful anyway — only that every figure was measured and fits with the others."""

from __future__ import annotations

import orjson
import pytest

from streams.bench import run_bench

pytestmark = pytest.mark.slow


def test_quick_bench_reports_every_figure(make_settings, redis_client, tmp_path):
    # batch_max 1000 so even the small scale datasets take several commits: each rate is then
    # timed between commits, not from process start
    settings = make_settings(batch_max=1000)
    report = run_bench(settings, events=6000, quick=True, out=tmp_path)

    on_disk = orjson.loads((tmp_path / "bench.json").read_bytes())
    assert on_disk["summary"] == report["summary"]
    markdown = (tmp_path / "bench.md").read_text()
    assert "| raw consumer |" in markdown and "## Latency" in markdown and "## Scale" in markdown

    assert on_disk["dataset"]["messages"] >= 6000
    assert on_disk["machine"]["cpu_count"] and on_disk["machine"]["versions"]["confluent-kafka"]

    modes = on_disk["throughput"]
    pulse_modes = ("pulse_batch", "pulse_faust", "pulse_batch_core", "pulse_batch_2_processes")
    assert set(modes) == {"raw", "faust_baseline", *pulse_modes}
    for name, mode in modes.items():
        assert mode["events_per_s"] > 0, name
        assert mode["messages"] > 0 and mode["seconds"] > 0, name
        assert mode["ratio_to_raw"] == pytest.approx(
            mode["events_per_s"] / modes["raw"]["events_per_s"], abs=1e-4
        )
    assert modes["raw"]["ratio_to_raw"] == 1.0
    for name in pulse_modes:
        assert modes[name]["peak_rss_bytes"] > 10 * 2**20, name  # a Python worker holds more than 10 MB
    # the default is every operator (issue 14); core is the light comparison row
    assert modes["pulse_batch"]["extra"]["operators"] == modes["pulse_faust"]["extra"]["operators"] == "all"
    assert modes["pulse_batch_core"]["extra"]["operators"] == "core"
    assert modes["pulse_batch_2_processes"]["extra"]["processes"] == 2
    summary = on_disk["summary"]
    assert summary["pulse_vs_faust_baseline"] > 0 and summary["two_processes_speedup"] > 0
    assert summary["pulse_faust_engine_vs_faust_baseline"] > 0

    # each operator's cost per event, measured in-process on the same messages
    costs = on_disk["operator_costs"]
    assert set(costs["operators"]) == {
        "forecasts", "turnout", "trends", "members", "kpis", "atmosphere", "matching", "recommendations"
    }  # fmt: skip
    assert all(us > 0 for us in costs["operators"].values())
    assert costs["messages"] == on_disk["dataset"]["messages"]
    assert "## Cost per event" in markdown and "operator:trends" in markdown

    assert on_disk["latency"], "no latency figures"
    for row in on_disk["latency"]:
        assert row["messages"] > 0 and row["never_visible"] == 0
        assert 0 <= row["p50_ms"] <= row["p99_ms"] <= row["p999_ms"] <= row["max_ms"]

    assert len(on_disk["scale"]) == 3
    for row in on_disk["scale"]:
        assert row["events_per_s"] > 0 and row["ratio_to_raw"] > 0
        assert row["active_members"] > 0 and row["bytes_per_active_member"] > 0
        assert row["peak_rss_bytes"] > 0

    wanted = {"all operators: ≥ 50 % of the raw consumer's events/s",
              "Faust engine, all operators: ≥ 10× the idiomatic Faust baseline"}  # fmt: skip
    assert wanted <= set(on_disk["targets"])
    assert {row["operators"] for row in on_disk["latency"]} == {"all", "core"}
