"""Linear advection u_t + beta u_x = 0 on the periodic interval (0, L), PDEBench's 1D
advection set (beta in {0.1, 0.2, 0.4, 1, 2, 4}, 1024 points, frames every 0.01 to t = 2).

The solution is the initial state translated, u(x, t) = u0(x - beta t), and pdegen stores it
exactly: in Fourier space each mode turns by exp(-i beta k t), integrated without error by
the exponential (ETDRK4 with no nonlinear part reduces to it, one step per frame). PDEBench's
own finite-volume scheme (upwind flux with a limiter) smears the tanh-windowed states and
their kinks; pdegen's frames are the exact translates of the initial state's Fourier
interpolant (tested against u0(x - beta t) for its sine modes).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pdegen.families.declarations import FieldAxes
from pdegen.families.spectral import SpectralFamily, SpectralMarch
from pdegen.specs import PeriodicFieldSpec, RangeSpec, nested, rule
from solvers import spectral


@dataclasses.dataclass(frozen=True)
class AdvectionProblem(SpectralMarch):
    initial: PeriodicFieldSpec = nested(PeriodicFieldSpec, law="sines")
    speed: RangeSpec = dataclasses.field(default_factory=lambda: RangeSpec(1.0, 1.0))
    t_end: float = rule(2.0, gt=0.0)
    frames: int = rule(200, ge=1, le=100000)


class Advection(SpectralFamily):
    name = "advection"
    discretisation = (
        "Fourier pseudo-spectral on the periodic interval: each mode turned by its exact "
        "phase exp(-i beta k t)"
    )
    Problem = AdvectionProblem
    inputs = {"initial": FieldAxes(dims=(1,))}
    outputs = {"solution": FieldAxes(time=True, dims=(1,))}
    params = ("speed",)

    def draw(self, rng: np.random.Generator):
        u0 = self.field(rng, self.problem.initial)
        return {"initial": u0}, {"speed": self.problem.speed.draw(rng)}

    def equation(self, inputs, params) -> spectral.ETDRK4:
        return spectral.advection(self.grid, params["speed"])

    def linear_key(self, params) -> float:
        return params["speed"]

    def step_rate(self, u_hat: np.ndarray, params) -> float:
        return 0.0  # linear and exact: one step per frame interval
