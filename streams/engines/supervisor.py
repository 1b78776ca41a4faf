"""``pulse worker --processes N``: N worker processes in one consumer group, on one machine.

One CPython process runs the pipeline and the operators on one core.  The supervisor starts
``N`` ordinary ``pulse worker`` processes with the same settings — same group, so Kafka splits
the partitions between them, and each commits its own partitions' state to Redis with the usual
fenced script — and they share nothing else.  It

* restarts a child that exits while the supervisor is not stopping (crash, OOM kill), after a
  back-off that grows while children keep dying young (1 s, 2 s, ... 30 s);
* forwards SIGTERM and SIGINT to every child, waits for them to stop (SIGKILL after
  ``stop_timeout`` s) and exits 0;
* gives child ``i`` the metrics port ``PULSE_METRICS_PORT + i`` (0 stays 0: no endpoint);
* asks Linux to SIGTERM the children if the supervisor itself dies (``PR_SET_PDEATHSIG``).

Exactness does not depend on the supervisor: a child killed mid-batch is exactly a worker that
crashed, and its partitions resume from the offsets and states stored with its last commit
(``tests/e2e/test_supervisor.py`` kills one and compares with the reference recompute).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
YOUNG_SECONDS = 10.0
"""A child that dies younger than this makes the next restart wait longer (a crash loop)."""


@dataclass
class Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    restart_at: float = 0.0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    """Runs ``processes`` copies of ``python -m streams.cli worker`` until stopped."""

    def __init__(
        self,
        processes: int,
        env: dict[str, str] | None = None,
        metrics_port: int = 0,
        stop_timeout: float = 30.0,
        worker_args: Sequence[str] = ("-m", "streams.cli", "worker"),
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.children = [Child(i) for i in range(processes)]
        self.env = dict(os.environ if env is None else env)
        self.metrics_port = metrics_port
        self.stop_timeout = stop_timeout
        self.worker_args = list(worker_args)
        self.stopping = False

    def child_env(self, index: int) -> dict[str, str]:
        env = dict(self.env)
        env["PULSE_METRICS_PORT"] = str(self.metrics_port + index if self.metrics_port else 0)
        env["PULSE_WORKER_INDEX"] = str(index)  # informational, e.g. for log shippers
        return env

    def _start(self, child: Child) -> None:
        from infra.local_services import _die_with_parent

        child.proc = subprocess.Popen(
            [sys.executable, *self.worker_args],
            env=self.child_env(child.index),
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(),  # only a prctl between fork and exec
        )
        child.started = time.monotonic()
        log.info("supervisor: worker %d started (pid %d)", child.index, child.proc.pid)

    def stop(self, *_: object) -> None:
        """Ask every child to stop (SIGTERM); :meth:`run` then waits for them and returns."""
        self.stopping = True

    def _signal_children(self, sig: int) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(sig)

    def step(self, now: float) -> None:
        """One supervision pass: note exits, schedule and perform restarts."""
        for child in self.children:
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                code = proc.returncode
                child.exits.append(code)
                child.proc = None
                lived = now - child.started
                child.backoff = (
                    min(MAX_BACKOFF_SECONDS, max(1.0, child.backoff * 2)) if lived < YOUNG_SECONDS else 0.0
                )
                child.restart_at = now + child.backoff
                log.warning(
                    "supervisor: worker %d (pid %d) exited with %s after %.1f s; restarting in %.0f s",
                    child.index, proc.pid, code, lived, child.backoff,
                )  # fmt: skip
            if child.proc is None and now >= child.restart_at and not self.stopping:
                if child.exits:
                    child.restarts += 1
                self._start(child)

    def run(self, poll_seconds: float = 0.2) -> int:
        """Start the children and keep them running until SIGTERM/SIGINT; returns the exit code."""
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not self.stopping:
                self.step(time.monotonic())
                time.sleep(poll_seconds)
            return self._shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _shutdown(self) -> int:
        log.info("supervisor: stopping %d workers", len(self.children))
        self._signal_children(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("supervisor: worker %d did not stop in time; killing it", child.index)
                child.proc.kill()
                child.proc.wait()
        return 0
