"""The one Poisson sampler of the labelled streams, the studies and the tests.

Every seeded stream pins how much randomness each draw consumes, and the streams grew up with
variants that differ exactly there: for a mean ≤ 0, one draws a uniform and returns 0 (Knuth's
loop run as is), another returns 0 without drawing; one switches to a rounded normal for large
means.  The parameters keep each stream's draws, so every seed gives the stream it always gave.
"""

from __future__ import annotations

import math
import random


def poisson(
    rng: random.Random, lam: float, *, draw_at_zero: bool = True, normal_above: float = math.inf
) -> int:
    """A Poisson(``lam``) sample: Knuth's product of uniforms, or a rounded normal for means above
    ``normal_above`` (where Knuth's loop gets long).  A mean ≤ 0 gives 0, after drawing one
    uniform if ``draw_at_zero`` (as Knuth's loop does), without touching ``rng`` otherwise.

    >>> a, b = random.Random(1), random.Random(1)
    >>> poisson(a, 0.0), poisson(b, 0.0, draw_at_zero=False), a.random() == b.random()
    (0, 0, False)
    >>> poisson(random.Random(1), 4.0), poisson(random.Random(1), 400.0, normal_above=30)
    (4, 426)
    """
    if lam > normal_above:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    if lam <= 0:
        if draw_at_zero:
            rng.random()
        return 0
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
