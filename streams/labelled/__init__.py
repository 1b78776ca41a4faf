"""Labelled streams: synthetic communities whose truth is known, and their offline scoring.

Shared by ``pulse evaluate``, the studies (``studies/``) and the tests.
"""

from __future__ import annotations

import math
import random


def poisson(rng: random.Random, lam: float, normal_above: float = math.inf) -> int:
    """A Poisson sample (Knuth's product of uniforms; a rounded normal for means above
    ``normal_above``, where Knuth's loop gets long).  0 for a mean ≤ 0.

    >>> poisson(random.Random(1), 0.0), poisson(random.Random(1), 4.0)
    (0, 4)
    """
    if lam > normal_above:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
