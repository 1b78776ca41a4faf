"""Continue an operator from a pickled snapshot in another Python process (another hash seed),
as a restarted or rebalanced worker would."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from streams.operators.runner import run_locally

ROOT = Path(__file__).resolve().parent.parent


def outputs_in_another_process(
    operator: str, states: dict, rest: list, tmp_path: Path, hash_seed: str
) -> Any:
    """``run_locally(operator(), rest, 500, states=states)``'s outputs, run in a fresh interpreter."""
    module, _, cls = operator.rpartition(".")
    (tmp_path / "in.pkl").write_bytes(pickle.dumps((states, rest), protocol=5))
    script = (
        "import pickle, sys\n"
        f"from {module} import {cls}\n"
        "from streams.operators.runner import run_locally\n"
        "states, rest = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        f"open(sys.argv[2], 'wb').write(pickle.dumps(run_locally({cls}(), rest, 500, states=states)[0]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "in.pkl"), str(tmp_path / "out.pkl")],
        check=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    return pickle.loads((tmp_path / "out.pkl").read_bytes())


def assert_continues_after_snapshot(operator: Any, stream: list, batch: int = 500) -> list:
    """Run ``operator()`` over ``stream``'s first half, pickle its states, run the rest from them:
    the outputs must equal one uninterrupted run's.  Returns the uninterrupted outputs."""
    cut = len(stream) // 2 // batch * batch
    whole = run_locally(operator(), stream, batch)[0]
    states: dict = {}
    first = run_locally(operator(), stream[:cut], batch, states=states)[0]
    restored = pickle.loads(pickle.dumps(states, protocol=5))
    second = run_locally(operator(), stream[cut:], batch, states=restored)[0]
    assert first + second == whole
    return whole


def assert_continues_in_another_process(operator: Any, stream: list, tmp_path: Path, hash_seed: str) -> None:
    """The same, with the second half run by a fresh interpreter under another ``PYTHONHASHSEED``
    (another worker: set iteration order differs)."""
    cut = len(stream) // 2 // 500 * 500
    whole = run_locally(operator(), stream, 500)[0]
    states: dict = {}
    run_locally(operator(), stream[:cut], 500, states=states)
    path = f"{operator.__module__}.{operator.__name__}"
    assert outputs_in_another_process(path, states, stream[cut:], tmp_path, hash_seed) == whole[cut // 500 :]
