"""2D incompressible Navier-Stokes in vorticity form on the periodic square, FNO's dataset:

    omega_t + u . grad(omega) = nu Laplacian(omega) - drag omega + f,

with the velocity u = (psi_y, -psi_x) from the stream function, -Laplacian(psi) = omega.

The initial vorticity (`problem.initial`, FNO's law by default): a periodic GRF with alpha
2.5, tau 7, sigma 7^1.5, mean zero (FNO's `random_fields.GaussianRF`). The forcing
(`problem.forcing`):
- `fno`: f = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y)), FNO's (scaled to the domain: x / L);
- `kolmogorov`: f = -amplitude k cos(k y), k = 2 pi wavenumber / L, the curl of the shear
  force (amplitude sin(k y), 0), usually with a linear drag (`drag`);
- `random`: a periodic GRF per sample (`forcing_field`), stored as an input;
- `none`: decaying turbulence.
The forcing is stored as /inputs/forcing in every case, so an operator can be trained on it.

FNO's released sets: nu 1e-3 to T = 50, 1e-4 to T = 30, 1e-5 to T = 20, a frame every time
unit, stored at 64^2 after a solve at 256^2 with Crank-Nicolson / forward Euler and dt = 1e-4.
pdegen solves with ETDRK4 (`solvers.spectral.navier_stokes_vorticity`), whose error at equal
resolution is 3-4 decades below that scheme's and which is 20-300x faster
(docs/benchmarks.md, "Navier-Stokes: FNO's reference scheme against ETDRK4");
recipes/navier-stokes.yaml solves at 128^2 and stores 64^2 (why, in the recipe).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

from pdegen.families.declarations import FieldAxes
from pdegen.families.spectral import SpectralFamily, SpectralMarch, viscosity_range
from pdegen.specs import PeriodicFieldSpec, RangeSpec, nested, rule
from solvers import spectral


@dataclasses.dataclass(frozen=True)
class NavierStokesProblem(SpectralMarch):
    initial: PeriodicFieldSpec = nested(PeriodicFieldSpec, law="grf", alpha=2.5, tau=7.0)
    viscosity: RangeSpec = viscosity_range(1e-3)
    forcing: Literal["fno", "kolmogorov", "random", "none"] = "fno"
    amplitude: float = rule(0.1, ge=0.0)
    wavenumber: int = rule(4, ge=1)
    drag: float = rule(0.0, ge=0.0)
    forcing_field: PeriodicFieldSpec = nested(PeriodicFieldSpec, law="grf", alpha=2.5, tau=7.0,
                                              scale=0.1)  # fmt: skip
    t_end: float = rule(50.0, gt=0.0)
    frames: int = rule(50, ge=1, le=100000)


class NavierStokes(SpectralFamily):
    name = "navier-stokes"
    discretisation = (
        "Fourier pseudo-spectral collocation of the vorticity form on the periodic square, "
        "the velocity from the stream function, the advection computed at the points and "
        "dealiased by the 2/3 rule"
    )
    Problem = NavierStokesProblem
    grid_dims = (2,)
    auto_solvers = {2: ("spectral", "none")}
    inputs = {"initial": FieldAxes(dims=(2,)), "forcing": FieldAxes(dims=(2,))}
    outputs = {"vorticity": FieldAxes(time=True, dims=(2,))}
    params = ("viscosity",)
    trajectory = "vorticity"

    def forcing(self, rng: np.random.Generator) -> np.ndarray:
        p = self.problem
        x, y = np.meshgrid(*self.grid.coordinates, indexing="ij")
        lx, ly = self.lengths
        if p.forcing == "fno":
            phase = 2.0 * math.pi * (x / lx + y / ly)
            return p.amplitude * (np.sin(phase) + np.cos(phase))
        if p.forcing == "kolmogorov":
            k = 2.0 * math.pi * p.wavenumber / ly
            return -p.amplitude * k * np.cos(k * y)
        if p.forcing == "random":
            return self.field(rng, p.forcing_field)
        return np.zeros(self.grid.shape)

    def draw(self, rng: np.random.Generator):
        omega0 = self.field(rng, self.problem.initial)
        viscosity = self.problem.viscosity.draw(rng)
        return {"initial": omega0, "forcing": self.forcing(rng)}, {"viscosity": viscosity}

    def equation(self, inputs, params) -> spectral.ETDRK4:
        nu, drag = params["viscosity"], self.problem.drag
        return spectral.navier_stokes_vorticity(self.grid, nu, inputs["forcing"], drag)

    def linear_key(self, params) -> float:
        return params["viscosity"]  # the drag is the recipe's, the same for every sample

    def step_limit(self, w_hat: np.ndarray, params) -> float:
        u, v = spectral.velocity(self.grid, w_hat)
        speed = float(np.max(np.abs(u)) + np.max(np.abs(v)))  # |u| + |v|: the 2D CFL sum
        return self.advective_limit(speed, diffusivity=params["viscosity"])
