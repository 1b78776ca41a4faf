"""Continue an operator from a pickled snapshot in another Python process (another hash seed),
as a restarted or rebalanced worker would."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

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
