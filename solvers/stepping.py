"""Where a march lands: the frame times a dataset records are independent of the internal
step, and the march between two frames takes equal steps no longer than `dt`, exactly `dt`
where the frames lie on its multiples (to rounding), so that a scheme whose matrices or
coefficients were built for `dt` is handed that very step. One rule for every integrator:
pdegen's `TimeStepping` and `solvers.spectral` both follow it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: how close to a multiple of dt a frame interval must be to be stepped by dt itself
ON_GRID = 1e-9


@dataclass
class MarchSteps:
    """What an explicit march took over one frame interval, in the fields pdegen's per-sample
    statistics read from every solve result (`solvers.sequence.SolveResult`): `iterations`
    the internal steps, `step` their size; `residual` is 0, since no linear system is solved;
    `tail` a resolution indicator a family may fill (`pdegen.families.spectral`). The
    spectral integrators and the acoustic leapfrog report it."""

    iterations: int
    step: float
    converged: bool
    reason: str
    seconds: float
    residual: float = 0.0
    tail: float = math.nan


def substeps(start: float, end: float, dt: float) -> tuple[int, float]:
    """(steps, step) from frame time `start` to `end`: dt itself where the interval is a
    whole number of dt to rounding, else equal steps no longer than dt."""
    span = end - start
    whole = round(span / dt)
    if whole >= 1 and abs(whole * dt - span) <= ON_GRID * span:
        return whole, dt
    count = max(1, math.ceil(span / dt))
    return count, span / count
