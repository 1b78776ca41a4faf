"""The worker process caps glibc's malloc arenas before it starts any thread (peak memory, issue 14)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from streams.startup import limit_malloc_arenas
from tests.workers import ROOT

SPY = """
import json, os, sys
import streams.startup as startup

def spy(arenas):
    print(json.dumps({"arenas": arenas, "numpy": "numpy" in sys.modules,
                      "threads": len(os.listdir("/proc/self/task"))}))
    raise SystemExit(0)

startup.limit_malloc_arenas = spy
from streams.cli import main
main(["worker", "--metrics-port", "0"])
"""


def test_pulse_worker_caps_the_arenas_before_numpy_or_any_other_thread_starts():
    """Set after numpy's import (OpenBLAS starts threads), the cap measured a third of its saving."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    env["PULSE_MALLOC_ARENA_MAX"] = "3"
    out = subprocess.run(
        [sys.executable, "-c", SPY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"arenas": 3, "numpy": False, "threads": 1}


GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_the_cap_is_applied_on_glibc_unless_off_or_set_by_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas(0) is False
    assert limit_malloc_arenas(2) is True  # mallopt returned 1: glibc took it
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(2) is False  # the environment variable wins (glibc read it at start)


def test_every_data_file_the_models_read_ships_in_the_package():
    """The Docker image installs a built wheel (not the source tree): a data file that no
    ``package-data`` pattern names is missing there, and the worker fails at import."""
    import fnmatch
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = ROOT / "online_models"
    files = [p.relative_to(package).as_posix() for p in (package / "data").iterdir()]
    shipped = [f for f in files if any(fnmatch.fnmatch(f, pat) for pat in patterns["online_models"])]
    assert sorted(shipped) == sorted(f for f in files if f != "data/real")  # data/real: evaluation only
    assert "data/en_not_nouns.txt" in shipped and "data/zh_sentiment.json" in shipped
