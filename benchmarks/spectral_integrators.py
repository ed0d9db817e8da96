"""ETDRK4 against an IMEX Runge-Kutta scheme on stiff periodic problems: which integrator
reaches a given accuracy in less time? (Issue 24: "ETDRK4 ... or an IMEX Runge-Kutta; measure
which".)

    cd benchmarks && ../.venv/bin/python spectral_integrators.py

The IMEX scheme is Ascher, Ruuth and Spiteri's ARS(4,4,3) ("Implicit-explicit Runge-Kutta
methods for time-dependent partial differential equations", Appl. Numer. Math. 25, 1997):
third order, L-stable and stiffly accurate, the linear part implicit (one diagonal solve per
stage in Fourier space), the nonlinear part explicit; four nonlinear evaluations per step, as
ETDRK4. Both run the same spectral right-hand sides (solvers.spectral), on:

- viscous Burgers, nu = 0.01, u0 = sin(2 pi x) on the unit torus, 256 points, to t = 0.3
  (a steep front: the nonlinear part limits the step);
- Kuramoto-Sivashinsky, Kassam and Trefethen's run (128 points on [0, 32 pi)) to t = 5 (the
  k^4 stiffness limits it).

Each against a reference of ETDRK4 at a step 16 times smaller than the smallest tried; error
in the max norm relative to the reference's max. Writes results/spectral_integrators.md.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from solvers.spectral import ETDRK4, PeriodicGrid, burgers, integrate, kuramoto_sivashinsky

#: ARS(4,4,3): the explicit and the implicit tableaux (stage 0 explicit), stiffly accurate
EXPLICIT = np.array(
    [
        [0, 0, 0, 0, 0],
        [1 / 2, 0, 0, 0, 0],
        [11 / 18, 1 / 18, 0, 0, 0],
        [5 / 6, -5 / 6, 1 / 2, 0, 0],
        [1 / 4, 7 / 4, 3 / 4, -7 / 4, 0],
    ]
)
IMPLICIT = np.array(
    [
        [0, 0, 0, 0, 0],
        [0, 1 / 2, 0, 0, 0],
        [0, 1 / 6, 1 / 2, 0, 0],
        [0, -1 / 2, 1 / 2, 1 / 2, 0],
        [0, 3 / 2, -3 / 2, 1 / 2, 1 / 2],
    ]
)
NODES = np.array([0, 1 / 2, 2 / 3, 1 / 2, 1])


class ARS443:
    """u_hat' = L u_hat + N(u_hat, t) by ARS(4,4,3), L diagonal: each stage solves
    (1 - h a_ii L) U_i = u_n + h sum_j<i (a^E_ij N_j + a^I_ij L U_j); u_{n+1} = U_4."""

    def __init__(self, etd: ETDRK4):
        self.linear, self.nonlinear = etd.linear, etd.nonlinear

    def step(self, u_hat: np.ndarray, t: float, h: float) -> np.ndarray:
        L, stages, explicit_terms = self.linear, [u_hat], []
        for i in range(1, 5):
            explicit_terms.append(self.nonlinear(stages[-1], t + NODES[i - 1] * h))
            rhs = u_hat.copy()
            for j in range(i):
                rhs += h * (EXPLICIT[i, j] * explicit_terms[j] + IMPLICIT[i, j] * L * stages[j])
            stages.append(rhs / (1.0 - h * IMPLICIT[i, i] * L))
        return stages[-1]


def problems():
    burgers_grid = PeriodicGrid((256,), (1.0,))
    ks_grid = PeriodicGrid((128,), (32 * math.pi,))
    x = ks_grid.coordinates[0]
    return [
        ("Burgers, nu = 0.01, 256 points, t = 0.3", burgers(burgers_grid, 0.01),
         burgers_grid, np.sin(2 * math.pi * burgers_grid.coordinates[0]), 0.3,
         [2e-3, 1e-3, 5e-4, 2.5e-4]),
        ("Kuramoto-Sivashinsky, 128 points on [0, 32 pi), t = 5", kuramoto_sivashinsky(ks_grid),
         ks_grid, np.cos(x / 16) * (1 + np.sin(x / 16)), 5.0, [1 / 4, 1 / 8, 1 / 16, 1 / 32]),
    ]  # fmt: skip


def run(integrator, grid, u0, t_final, dt) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    states, _ = integrate(integrator, grid.forward(u0), [0.0, t_final], dt)
    return grid.inverse(states[-1]), time.perf_counter() - start


def main() -> int:
    lines = []
    for title, etd, grid, u0, t_final, steps in problems():
        reference, _ = run(etd, grid, u0, t_final, min(steps) / 16)
        scale = np.abs(reference).max()
        header = "| dt | ETDRK4 error | seconds | ARS(4,4,3) error | seconds |"
        lines += [f"### {title}", "", header, "|---|---|---|---|---|"]
        for dt in steps:
            a, ta = run(etd, grid, u0, t_final, dt)
            b, tb = run(ARS443(etd), grid, u0, t_final, dt)
            ea, eb = np.abs(a - reference).max() / scale, np.abs(b - reference).max() / scale
            lines.append(f"| {dt:g} | {ea:.1e} | {ta:.3f} | {eb:.1e} | {tb:.3f} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "spectral_integrators.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
