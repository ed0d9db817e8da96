"""Kuramoto-Sivashinsky u_t + u u_x + u_xx + u_xxxx = 0 on the periodic interval (0, L),
the chaotic benchmark of autoregressive operator learning (APEBench/exponax, Kassam and
Trefethen's test problem). Chaotic for L above about 2 pi sqrt(2) (recipes: L = 22, a
classic with a few unstable modes, or 32 pi, Kassam and Trefethen's).

The initial state is a periodic GRF (`problem.initial`), marched for `warmup` time units
before frame 0 so that the stored frames lie on the attractor, not in the transient from
the random start (frame 0 is then not the stored input `initial`, which is the state the
warm-up started from). Solved by `solvers.spectral.kuramoto_sivashinsky`: the linear part
k^2 - k^4, stiff in k^4, integrated exactly; the step is kept within CFL of max |u| / h.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pdegen.families.declarations import FieldAxes
from pdegen.families.spectral import SpectralFamily, SpectralMarch
from pdegen.specs import PeriodicFieldSpec, nested, rule
from solvers import spectral


@dataclasses.dataclass(frozen=True)
class KuramotoSivashinskyProblem(SpectralMarch):
    initial: PeriodicFieldSpec = nested(PeriodicFieldSpec, law="grf", alpha=2.0, tau=1.0,
                                        sigma=1.0)  # fmt: skip
    warmup: float = rule(100.0, ge=0.0)
    t_end: float = rule(100.0, gt=0.0)
    frames: int = rule(100, ge=1, le=100000)
    dt: float | None = rule(0.25, gt=0.0)


class KuramotoSivashinsky(SpectralFamily):
    name = "kuramoto-sivashinsky"
    discretisation = (
        "Fourier pseudo-spectral collocation on the periodic interval, u u_x as (u^2/2)_x "
        "computed at the points and dealiased by the 2/3 rule"
    )
    Problem = KuramotoSivashinskyProblem
    inputs = {"initial": FieldAxes(dims=(1,))}
    outputs = {"solution": FieldAxes(time=True, dims=(1,))}

    def draw(self, rng: np.random.Generator):
        return {"initial": self.field(rng, self.problem.initial)}, {}

    def equation(self, inputs, params) -> spectral.ETDRK4:
        return spectral.kuramoto_sivashinsky(self.grid)  # one linear part for every sample

    def step_limit(self, u_hat: np.ndarray, params) -> float:
        speed = float(np.max(np.abs(self.grid.inverse(u_hat))))
        return self.advective_limit(speed, hyper=1.0)
