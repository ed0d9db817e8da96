"""Helmholtz -div(a grad u) - k^2 (1 + i gamma) u = f, u = 0 on the boundary, in the
indefinite regime; gamma = `damping`, 0 (lossless, a real problem) by default.

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
block form (`solvers.real_equivalent`) it was measured on the lossless problem and does not
pay there (even exactly inverted it takes more GCRO-DR iterations than the real shift's
V-cycle at the recipes' k; docs/benchmarks.md, "Helmholtz: the complex-shifted Laplacian in
real 2 × 2 block form"): a closed, lossless box is resonant, and no shift moves the
eigenvalues near k^2 (restarted complex GMRES with the exact complex shift stalled at k = 50
on 127^2 as well).

**Damping.** An attenuating medium (`damping` gamma > 0: the loss of an absorbing medium,
which the CSL literature's open problems get from their absorbing boundaries) makes the
solution complex. Every system is then solved in real block form on (Re u, Im u)
interleaved, with b = (f, 0), and both parts are stored (`solution`, `solution_imag`).
There the complex shift pays: `pc: mg` is a V-cycle on the block form of
-div(a grad) - (1 + 0.5i) k^2, whose imaginary part has the damping's sign (the opposite
sign stalled), with Gauss-Seidel sweeps on the two-dof node grid and as many levels as keep
k_max h <= `CSL_COARSEST_KH` (`Helmholtz.csl_levels`; coarser Galerkin levels no longer
approximate the shifted operator, and the iterations doubled). At k in [40, 60] on 127^2
with gamma = 0.05, GCRO-DR takes about 90 iterations with it and does not converge in 3000
with the real shift or ILU (`benchmarks/damped_helmholtz.py`, docs/benchmarks.md,
"Damped Helmholtz"). The points-per-wavelength rule below holds unchanged.

M (lossless) is symmetric positive
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
import functools
import math
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import grf_pointwise_std_bound, sample_rng
from pdegen.discretisation.operators import diagonal_places, on_pattern
from pdegen.errors import RecipeError
from pdegen.families.base import Family, FieldAxes, Sample
from pdegen.specs import CoefficientSpec, FieldSpec, RangeSpec, nested, rule
from solvers.real_equivalent import RealEquivalent, interleave
from solvers.registry import METHODS

#: the imaginary part of the complex shift, in units of k^2: M = -div(a grad) - (1 + 0.5i) k^2
#: (Erlangga, Oosterlee and Vuik's 0.5, signed as the damping: the opposite sign stalled)
CSL_SHIFT = 0.5
#: the largest k_max h a level of the complex-shifted V-cycle may have (`csl_levels`)
CSL_COARSEST_KH = 1.25


@dataclasses.dataclass(frozen=True)
class HelmholtzProblem:
    coefficient: CoefficientSpec = nested(CoefficientSpec, kind="lognormal", sigma=1.0)
    wavenumber: RangeSpec = nested(RangeSpec, min=6.0, max=12.0)
    source: FieldSpec = nested(FieldSpec, sigma=50.0)
    min_points_per_wavelength: float = rule(10.0, ge=4.0)
    #: gamma of an attenuating medium, -div(a grad u) - k^2 (1 + i gamma) u = f; 0: lossless
    damping: float = rule(0.0, ge=0.0)


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
        "stencil of -div(a grad u) with harmonic face means, minus k^2 (1 + i damping) on the "
        "diagonal (indefinite; with damping > 0 complex, solved in real 2 x 2 block form), at "
        "least `min_points_per_wavelength` nodes per local wavelength"
    )
    #: on `grid.layout: cells` (`Family.use_cells`)
    discretisation_on_cells = (
        "second-order finite volumes on the cell-centred grid: the conservative (2d+1)-point "
        "stencil of -div(a grad u) with harmonic means of the neighbouring cells' "
        "coefficients at their shared faces and u = 0 on the walls half a cell from the outer "
        "centres, minus k^2 (1 + i damping) on the diagonal (indefinite; with damping > 0 "
        "complex, solved in real 2 x 2 block form), at least `min_points_per_wavelength` "
        "cells per local wavelength"
    )
    layouts = ("nodes", "cells")
    Problem = HelmholtzProblem
    inputs = {"coefficient": FieldAxes(), "source": FieldAxes()}
    #: `solution_imag` only with damping (`output_names`): a lossless solution is real
    outputs: ClassVar[dict[str, FieldAxes]] = {
        "solution": FieldAxes(),
        "solution_imag": FieldAxes(),
    }
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
        h = 1.0 / (n if recipe.grid.layout == "cells" else n + 1)
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
        if p.damping > 0 and recipe.solver.method == "minres":
            raise RecipeError(
                "solver.method: 'minres' needs a symmetric operator, and with "
                "problem.damping > 0 helmholtz solves a complex one in nonsymmetric real "
                "block form (allowed: auto, gcrodr, gmres, direct, gcrotmk)"
            )
        lowest = a_high * dim * math.pi**2  # >= the smallest eigenvalue of -div(a grad)
        if k.min <= math.sqrt(lowest):  # k^2 <= lowest, without overflowing k^2
            raise RecipeError(
                f"problem.wavenumber.min: {k.min:g} does not make the operator indefinite "
                f"(k^2 must exceed {lowest:.1f}, so k > {math.sqrt(lowest):.2f})"
            )

    @property
    def damped(self) -> bool:
        """Whether the medium attenuates: the solution is then complex, and every system is
        solved in its real 2 x 2 block form (`solvers.real_equivalent`)."""
        return self.problem.damping > 0

    def resolve_for(self, method: str, pc: str) -> tuple[str, str]:
        """With damping, `auto` runs what was measured fastest on the damped block form
        (docs/benchmarks.md, "Damped Helmholtz"): a sparse LU in 2D, GCRO-DR with the
        complex-shifted V-cycle in 3D where the grid coarsens (else the LU); and `pc: auto`
        for a named iterative method is that V-cycle, not ILU, which did not converge."""
        if not self.damped:
            return super().resolve_for(method, pc)
        multigrid = self.coarsening().usable
        if method == "auto":
            method, auto_pc = ("gcrodr", "mg") if self.dim == 3 and multigrid else ("direct", "lu")
            pc = auto_pc if pc == "auto" else pc
        if pc == "auto" and not METHODS[method].direct:
            pc = "mg" if multigrid else "ilu"
        return self.resolve_solver(method, pc, self.dim, self.n, self.multigrid_layout)

    @property
    def output_names(self) -> tuple[str, ...]:
        names = super().output_names
        return names if self.damped else tuple(n for n in names if n != "solution_imag")

    @property
    def dirichlet_outputs(self) -> tuple[str, ...]:
        """Both parts of a damped solution vanish on the boundary (`boundary_values` is 0)."""
        return ("solution", "solution_imag") if self.damped else ("solution",)

    @property
    def unknowns_per_node(self) -> int:
        return 2 if self.damped else 1

    @property
    def unknowns(self) -> int:
        return self.unknowns_per_node * self.n**self.dim

    @property
    def matrix_entries(self) -> int:
        """A damped system's block form: each of the 2n rows keeps its stencil and gains
        the coupling to the other part of its own unknown."""
        if not self.damped:
            return super().matrix_entries
        return (2 * self.dim + 2) * self.unknowns

    def vector_layout(self) -> dict:
        """A damped system has 2 unknowns per node (real and imaginary part, interleaved),
        which `pc: mg` interpolates alike (a two-dof hierarchy)."""
        return {"block_size": self.unknowns_per_node} if self.damped else {}

    @functools.cached_property
    def _forms(self) -> RealEquivalent:
        return RealEquivalent()

    def _block_forms(
        self, sample: Sample, shifts: tuple[float, ...]
    ) -> tuple[list[sp.csr_matrix], np.ndarray]:
        """The block forms of -div(a grad) - k^2 + i s k^2 for each s in `shifts`, and the
        interleaved right-hand side (f, 0)."""
        A, f = self.system_real(sample)
        k2 = sample.params["wavenumber"] ** 2
        return [self._forms.shifted_operator(A, s * k2) for s in shifts], interleave(f)

    def system_real(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        """The lossless operator -div(a grad) - k^2 I and f, whatever the damping."""
        return self.assemble(
            sample.inputs["coefficient"], sample.params["wavenumber"], sample.inputs["source"]
        )

    def assemble(self, a: np.ndarray, k: float, f: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        A = self.diffusion_matrix(a)
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
        A = -div(a grad) - k^2 I (same sparsity: only the diagonal moves); with damping, the
        complex-shifted Laplacian -div(a grad) - (1 + CSL_SHIFT i) k^2 in block form."""
        if self.damped:
            return self._block_forms(sample, (-CSL_SHIFT,))[0][0]
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
        """A x = b as solved: the lossless real system, or with damping the block form of
        -div(a grad) - k^2 (1 + i gamma) acting on (Re u, Im u) interleaved, b = (f, 0)."""
        if not self.damped:
            return self.system_real(sample)
        (K,), b = self._block_forms(sample, (-self.problem.damping,))
        return K, b

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        if not self.damped:
            return super().solve_sample(sample, chain)
        shifts = (-self.problem.damping, -CSL_SHIFT)
        forms, b = self._block_forms(sample, shifts[: 1 + chain.wants_preconditioner_operator])
        result = chain.solve(forms[0], b, P=forms[1] if len(forms) > 1 else None)
        outputs = {
            "solution": self.solution_field(sample, result.x[0::2]),
            "solution_imag": self.solution_field(sample, result.x[1::2]),
        }
        return outputs, [result]

    def solution_vector(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        if not self.damped:
            return super().solution_vector(outputs)
        real, imaginary = (self.interior(outputs[n]).ravel() for n in ("solution", "solution_imag"))
        return interleave(real, imaginary)

    def multigrid_settings(self):
        """With damping, `pc: mg` is a V-cycle on the complex-shifted Laplacian, coarsened
        only while the coarsest grid keeps k_max h <= `CSL_COARSEST_KH` (below that the
        Galerkin coarse operators stop approximating it: measured in docs/benchmarks.md)."""
        settings = super().multigrid_settings()
        if not self.damped:
            return settings
        return dataclasses.replace(settings, max_levels=self.csl_levels())

    def csl_levels(self) -> int:
        """The levels of the complex-shifted V-cycle: the finest grid and every coarsening
        on which k_max h stays at most `CSL_COARSEST_KH`; at least two, and more where the
        coarsest would be too large to factorise (`solvers.grids.MAX_COARSEST`)."""
        k_max = self.problem.wavenumber.max
        shapes = self.coarsening().shapes
        # a level of m points spans the unit interval in m + 1 intervals (on cells, m - 1
        # and two half ones: m)
        intervals = 0 if self.on_cells else 1
        fine_enough = [s for s in shapes if k_max / (s[0] + intervals) <= CSL_COARSEST_KH]
        levels = max(2, len(fine_enough))
        # a coarsest level too large to factorise would make `pc: mg` fall back to GAMG,
        # which does far worse on this operator than a coarser level (3D 47^3, k to 14: 73
        # iterations on 3 levels, 418-2140 with GAMG)
        while levels < len(shapes) and not self.coarsening(levels).usable:
            levels += 1
        return levels

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
