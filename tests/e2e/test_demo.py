"""``pulse demo`` itself, shortened: a fresh process with no PULSE_* configuration starts its own
broker and Redis, runs worker + simulator, prints the leaderboards and stops everything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.workers import ROOT

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end_on_embedded_services(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="120", PULSE_METRICS_PORT="0")
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--events", "4000", "--rate", "4000"],
        cwd=tmp_path, env=env, capture_output=True, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, out[-3000:]
    assert "Communities · window" in out and "Members of" in out
    summary = next(line for line in out.splitlines() if line.startswith("done in"))
    published = int(summary.split(": ")[1].split(" published")[0])
    applied = int(summary.split(", ")[1].split(" applied")[0])
    assert published >= 4000 and 3500 <= applied <= published
