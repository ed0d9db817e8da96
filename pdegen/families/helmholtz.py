"""Helmholtz -div(a grad u) - k^2 u = f, u = 0 on the boundary, in the indefinite regime.

k is drawn per sample from a range whose lower end puts k^2 above the smallest eigenvalue of
the diffusion operator (so the matrix has negative and positive eigenvalues: the regime where
restarted GMRES stagnates), and whose upper end keeps at least `min_points_per_wavelength`
grid points per local wavelength 2 pi sqrt(a) / k. Ten points per wavelength is the usual
rule for second-order differences at moderate k (the dispersion error per wavelength is then
a few percent); recipes with fewer are rejected, since their data would be mostly
discretisation error.

`pc: mg` is geometric multigrid on the shifted Laplacian M = -div(a grad) + beta k^2 I with
a real positive shift, beta = `Helmholtz.shift` (1 in 2D, 0.5 in 3D;
`preconditioner_operator`): at beta = 1 the preconditioner of Laird & Giles (A. L. Laird
and M. B. Giles, "Preconditioned iterative solution of the 2D Helmholtz equation", Oxford
University Computing Laboratory report NA-02/12, 2002), the member (beta1, beta2) = (-1, 0)
of the family M = -Laplace - (beta1 - i beta2) k^2 that Erlangga, Vuik and Oosterlee
compared ("On a class of preconditioners for solving the Helmholtz equation", Appl. Numer.
Math. 50, 2004, 409-425); beta = 0 is the
Laplacian of Bayliss, Goldstein and Turkel ("An iterative method for the Helmholtz equation",
J. Comput. Phys. 49, 1983, 443-457). Their complex shift 1 - 0.5i (Erlangga, Oosterlee and
Vuik, SIAM J. Sci. Comput. 27, 2006, 1471-1492) keeps iteration counts lower as k grows but
needs complex arithmetic, which our real PETSc build does not have; through the real 2 x 2
block form (`solvers.real_equivalent`) it was measured and does not pay (even exactly
inverted it takes more GCRO-DR iterations than the real shift's V-cycle at the recipes' k;
docs/benchmarks.md, "Helmholtz: the complex-shifted Laplacian in real 2 × 2 block form").
M is symmetric positive
definite, so its Galerkin multigrid converges whatever the coarsest grid: no
points-per-wavelength limit on the levels is needed (measured: 3, 4, 5 or all 7 levels of
n = 127 take the same iterations, and the V-cycle as many as an exact solve with M). The
preconditioned eigenvalues (lambda - k^2) / (lambda + beta k^2) of the modes of
-div(a grad) lie in (-1/beta, 1), and those near zero (lambda near k^2) are the ones the
shift cannot move: GCRO-DR's recycled space deflates them from one sample to the next, which
is why `pc: mg` is meant for GCRO-DR here (beta measured in {0, 0.5, 1, 2}: 1 is best or
tied everywhere in 2D; in {0.25, 0.5, 0.75, 1} in 3D: 0.5 is the fastest at 48^3,
docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import grf_pointwise_std_bound, sample_rng
from pdegen.discretisation.operators import diagonal_places, diffusion_operator, on_pattern
from pdegen.errors import RecipeError
from pdegen.families.base import Family, FieldAxes, Sample
from pdegen.specs import CoefficientSpec, FieldSpec, RangeSpec, nested, rule


@dataclasses.dataclass(frozen=True)
class HelmholtzProblem:
    coefficient: CoefficientSpec = nested(CoefficientSpec, kind="lognormal", sigma=1.0)
    wavenumber: RangeSpec = nested(RangeSpec, min=6.0, max=12.0)
    source: FieldSpec = nested(FieldSpec, sigma=50.0)
    min_points_per_wavelength: float = rule(10.0, ge=4.0)


def coefficient_bounds(spec: CoefficientSpec, dim: int) -> tuple[float, float]:
    """Conservative (3-sigma) lower and upper values of the random coefficient."""
    if spec.kind == "threshold":
        return min(spec.low, spec.high), max(spec.low, spec.high)
    std = grf_pointwise_std_bound(dim, spec.alpha, spec.tau, spec.sigma)
    return spec.scale * math.exp(spec.mean - 3 * std), spec.scale * math.exp(spec.mean + 3 * std)


class Helmholtz(Family):
    name = "helmholtz"
    discretisation = (
        "second-order finite differences on the node grid: the conservative (2d+1)-point "
        "stencil of -div(a grad u) with harmonic face means, minus k^2 on the diagonal "
        "(indefinite), at least `min_points_per_wavelength` nodes per local wavelength"
    )
    Problem = HelmholtzProblem
    inputs = {"coefficient": FieldAxes(), "source": FieldAxes()}
    params = ("wavenumber",)
    # measured: docs/benchmarks.md, "Recycling against baselines"
    auto_solvers = {2: ("direct", "lu"), 3: ("gcrodr", "ilu")}
    auto_multigrid = {3: (31, ("gcrodr", "mg"))}  # the shifted Laplacian: "auto by size"
    iterative_pc = "ilu"
    symmetric = True  # symmetric but indefinite: CG does not apply
    #: beta of the shifted Laplacian -div(a grad) + beta k^2 I that `pc: mg` approximates,
    #: per dimension (module docstring; measured in docs/benchmarks.md, "Helmholtz:
    #: shifted-Laplacian multigrid"): 1 in 2D, best or tied at every 2D size and the only
    #: clear winner as k grows; 0.5 in 3D, 8% fewer iterations and about 14% less time than
    #: 1 at 48^3 cells, k in [9, 14], and tied at 32^3
    shift_by_dim: ClassVar[dict[int, float]] = {2: 1.0, 3: 0.5}
    #: forward Gauss-Seidel down, backward up: inside GCRO-DR the iterations are set by the
    #: eigenvalues near k^2 that the real shift leaves, not by smoothing, so half the sweeps
    #: of the default SSOR cost no iterations and save a fifth of the time (docs/benchmarks.md)
    multigrid_smoother = "gs"

    @classmethod
    def check(cls, recipe) -> None:
        p, n, dim = recipe.problem, recipe.grid.n, recipe.grid.dim
        k = p.wavenumber
        if not 0 < k.min <= k.max:
            raise RecipeError(f"problem.wavenumber: need 0 < min <= max, got [{k.min}, {k.max}]")
        a_low, a_high = coefficient_bounds(p.coefficient, dim)
        h = 1.0 / (n + 1)
        ppw = 2 * math.pi * math.sqrt(a_low) / (k.max * h)
        if ppw < p.min_points_per_wavelength:
            need = k.max * p.min_points_per_wavelength / (2 * math.pi * math.sqrt(a_low))
            # an infinite need (k.max near 1e308) has no ceiling: ceil() would raise
            raise_n = f", or raise grid.n to at least {math.ceil(need)}" if need < 1e9 else ""
            raise RecipeError(
                f"problem.wavenumber.max: {k.max:g} leaves {ppw:.1f} points per wavelength "
                f"on this grid (need at least {p.min_points_per_wavelength:g}: lower it"
                f"{raise_n})"
            )
        lowest = a_high * dim * math.pi**2  # >= the smallest eigenvalue of -div(a grad)
        if k.min <= math.sqrt(lowest):  # k^2 <= lowest, without overflowing k^2
            raise RecipeError(
                f"problem.wavenumber.min: {k.min:g} does not make the operator indefinite "
                f"(k^2 must exceed {lowest:.1f}, so k > {math.sqrt(lowest):.2f})"
            )

    def assemble(self, a: np.ndarray, k: float, f: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        A, _ = diffusion_operator(np.asarray(a, dtype=float), self.h)
        # in place, not scipy's A - k^2 I: that builds a new pattern for every sample (and
        # would drop an entry that cancels exactly); the two sums took about 5 ms of a 48^3
        # sample outside the solve
        A.data[diagonal_places(self.dim, self.n)] -= k**2
        return A, self.interior(np.asarray(f, dtype=float)).ravel().copy()

    @property
    def shift(self) -> float:
        """beta for this family's dimension (`shift_by_dim`)."""
        return self.shift_by_dim[self.dim]

    def preconditioner_operator(self, sample: Sample, A: sp.csr_matrix) -> sp.csr_matrix:
        """The shifted Laplacian -div(a grad) + beta k^2 I that `pc: mg` is built on, from
        A = -div(a grad) - k^2 I (same sparsity: only the diagonal moves)."""
        k2 = sample.params["wavenumber"] ** 2
        P = on_pattern(A, A.data.copy())
        P.data[diagonal_places(self.dim, self.n)] += (1.0 + self.shift) * k2
        return P

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        p = self.problem
        a = self.coefficient(rng, p.coefficient)
        k = p.wavenumber.draw(rng)
        return Sample(
            index, {"coefficient": a, "source": self.grf(rng, p.source)}, {"wavenumber": k}
        )

    def system(self, sample: Sample):
        return self.assemble(
            sample.inputs["coefficient"], sample.params["wavenumber"], sample.inputs["source"]
        )

    def features(self, sample: Sample) -> np.ndarray:
        """Coordinates in which distance tracks the shift of the eigenvalues near k^2.

        Recycling pays off when the small-magnitude eigenvalues (those of -div(a grad) near
        k^2) move little from one system to the next. A coefficient change da moves such an
        eigenvalue by about k^2 times the mode-weighted average of da/a, which sees only the
        coarse scales of a, and k moves it by d(k^2). So the features are k^2 and k^2 times
        block averages of log a (8 blocks per axis), weighted so both count per eigenvalue.
        (The Frobenius distance of the published method is dominated by the fine scales of
        a, which barely move those eigenvalues.)
        """
        k2 = sample.params["wavenumber"] ** 2
        log_a = np.log(self.interior(sample.inputs["coefficient"]))
        blocks = 8
        edges = np.linspace(0, self.n, blocks + 1).astype(int)
        means = log_a
        for axis in range(self.dim):
            means = np.add.reduceat(means, edges[:-1], axis=axis)
        counts = np.diff(edges)
        for axis in range(self.dim):
            shape = [1] * self.dim
            shape[axis] = blocks
            means = means / counts.reshape(shape)
        return np.concatenate([[k2], k2 * means.ravel() / math.sqrt(means.size)])
