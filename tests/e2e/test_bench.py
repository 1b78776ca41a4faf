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
    pulse_modes = ("pulse_batch", "pulse_faust", "pulse_batch_2_workers", "pulse_batch_all_operators")
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
    assert modes["pulse_batch_all_operators"]["extra"]["operators"] == "all"
    summary = on_disk["summary"]
    assert summary["pulse_vs_faust_baseline"] > 0 and summary["two_workers_speedup"] > 0

    assert on_disk["latency"], "no latency figures"
    for row in on_disk["latency"]:
        assert row["messages"] > 0 and row["never_visible"] == 0
        assert 0 <= row["p50_ms"] <= row["p99_ms"] <= row["p999_ms"] <= row["max_ms"]

    assert len(on_disk["scale"]) == 3
    for row in on_disk["scale"]:
        assert row["events_per_s"] > 0 and row["ratio_to_raw"] > 0
        assert row["active_members"] > 0 and row["bytes_per_active_member"] > 0
        assert row["peak_rss_bytes"] > 0

    assert set(on_disk["targets"]) >= {"Pulse ≥ 50,000 events/s", "Pulse ≥ 10× the Faust baseline"}
