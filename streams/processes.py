"""Pulse as child processes: the environment that carries Settings, start and stop a process
group, its CPU, RSS and children (``pulse bench``, ``pulse worker --processes``, the tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.config import Settings

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------------
# Subprocesses (the pattern of tests/workers.py, here because tests/ is not shipped)
# --------------------------------------------------------------------------------------------------


def settings_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that makes ``pulse`` use ``settings`` (and nothing from the caller's PULSE_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"PULSE_{name.upper()}"] = str(value)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def start_process(args: Sequence[str], env: dict[str, str], log: Path | None) -> subprocess.Popen[bytes]:
    """Start ``python ARGS`` in its own process group (so :func:`stop_process` reaches its children)."""
    from infra.local_services import _die_with_parent

    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, *args],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(),  # Linux: SIGTERM it if the bench dies without cleaning up
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def start_worker(settings: Settings, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``pulse worker`` as a child process configured by ``settings``."""
    return start_process(["-m", "streams.cli", "worker"], settings_env(settings), log)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM the process group, SIGKILL it after ``timeout`` s; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def peak_rss_bytes(pid: int) -> int | None:
    """``VmHWM`` (peak resident set) of a live process, or None where /proc is unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process, all its threads (``/proc/<pid>/stat``), or None.

    CPU per message is far steadier than events/s on a shared machine: time spent waiting for
    a core does not count, so it separates "Pulse got slower" from "the machine got busier"."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (a ``--processes`` supervisor's workers), from ``/proc``."""
    parents: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                parents.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += parents.get(current, [])
    return out


def _cpu_total(procs: Sequence[subprocess.Popen[bytes]]) -> float | None:
    """CPU of the processes and of their live children (a supervisor's workers)."""
    values = [cpu_seconds(pid) for p in procs for pid in process_tree(p.pid)]
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------------------------------
# Data: simulate, publish, remember the end offsets
