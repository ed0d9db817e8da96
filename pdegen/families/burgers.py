"""Viscous Burgers u_t + (u^2 / 2)_x = nu u_xx on the periodic interval (0, L).

The initial laws (`problem.initial.law`):
- `grf` (the default, FNO's): u0 ~ N(0, 625 (-Laplacian + 25 I)^-2), FNO's `GaussianRF(1,
  n, alpha=2, tau=5, sigma=25)`; FNO's paper solves to T = 1 with nu = 0.1 on 8192 points
  and stores u(., 1) (recipes/burgers.yaml);
- `sines`: PDEBench's 1D law (`pdegen.discretisation.fields.sine_modes_field`), frames every
  0.01 to T = 2 (recipes/burgers-pdebench.yaml).

The viscosity: PDEBench writes its equation with nu / pi; `viscosity_over_pi: true` solves
that one, and /params/viscosity then holds the nu of PDEBench's file names. pdegen's own
convention (false, the default) is the equation as written above.

Solved by `solvers.spectral.burgers`: ETDRK4, the viscous term exact, the flux dealiased by
the 2/3 rule. The internal step is kept within CFL of max |u| / h (the maximum principle:
max |u| never grows, so the first interval's step holds for the whole trajectory).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from pdegen.families.declarations import FieldAxes
from pdegen.families.spectral import SpectralFamily, SpectralMarch, viscosity_range
from pdegen.specs import PeriodicFieldSpec, RangeSpec, nested, rule
from solvers import spectral


@dataclasses.dataclass(frozen=True)
class BurgersProblem(SpectralMarch):
    initial: PeriodicFieldSpec = nested(PeriodicFieldSpec, law="grf", alpha=2.0, tau=5.0,
                                        sigma=25.0)  # fmt: skip
    viscosity: RangeSpec = viscosity_range(0.1)
    viscosity_over_pi: bool = False
    t_end: float = rule(1.0, gt=0.0)
    frames: int = rule(1, ge=1, le=100000)


class Burgers(SpectralFamily):
    name = "burgers"
    discretisation = (
        "Fourier pseudo-spectral collocation on the periodic interval, the flux u^2/2 "
        "computed at the points and dealiased by the 2/3 rule"
    )
    Problem = BurgersProblem
    inputs = {"initial": FieldAxes(dims=(1,))}
    outputs = {"solution": FieldAxes(time=True, dims=(1,))}
    params = ("viscosity",)

    def draw(self, rng: np.random.Generator):
        u0 = self.field(rng, self.problem.initial)
        return {"initial": u0}, {"viscosity": self.problem.viscosity.draw(rng)}

    def equation_viscosity(self, params: dict[str, float]) -> float:
        nu = params["viscosity"]
        return nu / math.pi if self.problem.viscosity_over_pi else nu

    def equation(self, inputs, params) -> spectral.ETDRK4:
        return spectral.burgers(self.grid, self.equation_viscosity(params))

    def linear_key(self, params) -> float:
        return self.equation_viscosity(params)

    def step_limit(self, u_hat: np.ndarray, params) -> float:
        speed = float(np.max(np.abs(self.grid.inverse(u_hat))))
        return self.advective_limit(speed, diffusivity=self.equation_viscosity(params))
