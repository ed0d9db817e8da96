"""Stokes flow -div(nu grad u) + grad p = f, div u = 0 in the unit square, no-slip walls.

The marker-and-cell (MAC, staggered) discretisation of Harlow and Welch on (n + 1)^2 square
cells of side h = 1/(n + 1), whose corners are the node grid every other family uses:
- x-velocity u on the vertical faces (x = i h, y = (j + 1/2) h), y-velocity v on the
  horizontal ones; the faces on the walls carry the no-slip normal velocity 0 and are not
  unknowns: n (n + 1) unknowns for u, as many for v;
- pressure p at the (n + 1)^2 cell centres;
- viscosity nu given on the nodes (the cell corners), where the shear fluxes d(nu du/dy)
  and d(nu dv/dx) are taken, and averaged over each cell's four corners (arithmetic mean)
  at the cell centres, where the normal fluxes d(nu du/dx) and d(nu dv/dy) are taken;
- the body force given on the nodes and averaged to each face from its two end nodes;
- the tangential no-slip condition by reflection: the ghost value beyond a wall is minus the
  first interior one, so the wall value is zero (the wall-adjacent shear flux is then
  2 nu u / h with nu at the wall node).

Each equation is integrated over its control volume (multiplied by h^2), so the momentum
rows are A u + G p = h^2 f with A the two variable-coefficient diffusion operators (entries
of order nu, symmetric positive definite) and G p = h (p_right - p_left) the pressure
difference across the face; the continuity rows are G^T u = -h^2 div u = 0. The block matrix
K = [[A, G], [G^T, 0]] is therefore symmetric (so MINRES applies) and indefinite (A is
positive definite, the pressure Schur complement -G^T A^-1 G negative semidefinite).

The pressure is determined up to a constant: K has the kernel (0, 1). It is fixed by pinning
the pressure of the first cell (x, y near 0) to zero, that is by removing that unknown and
its continuity row. The row is implied by the others (the continuity rows sum to the net
flux through the walls, which is zero), so the reduced matrix is nonsingular, still
symmetric, and its solution is the same flow; every method, a direct factorisation included,
takes it as it is. The cell pressures are then shifted to mean zero. Pinning leaves one
Schur complement eigenvalue about 1/N of the others (measured: one or two extra Krylov
iterations against a null-space projection), which the block preconditioner does not mind.

Stored on the node grid ((n + 2)^2 points, like every other family), co-located as neural
operators want them:
- velocity_x, velocity_y: each component averaged from the two faces next to the node along
  the other axis (u at node (i, j) is the mean of u at (i h, (j +- 1/2) h)), zero on the walls;
- pressure: the mean of the four cells around each node, with ghost cells beyond the walls
  extrapolated linearly (p_ghost = 2 p_0 - p_1), so the boundary nodes are second-order
  extrapolations; then shifted so that its trapezoidal-rule mean over the node grid is zero;
- viscosity, force_x, force_y: the inputs as drawn.
All three interpolations are second order for smooth fields (measured orders in
tests/test_stokes.py and docs/format.md).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from pdegen.families.base import Family, FieldAxes, Sample
from pdegen.fields import sample_rng
from pdegen.specs import CoefficientSpec, FieldSpec, nested, rule


@dataclasses.dataclass(frozen=True)
class ViscositySpec(CoefficientSpec):
    """The viscosity: a random coefficient (`lognormal`, `threshold`) or `constant` `value`."""

    kind: Literal["lognormal", "threshold", "constant"] = "lognormal"
    value: float = rule(1.0, gt=0.0)


@dataclasses.dataclass(frozen=True)
class ForceSpec(FieldSpec):
    """The body force: two independent Gaussian random fields (`random`, one per component),
    or the same `swirl` for every sample, strength * (-(y - 1/2), x - 1/2).

    Why a swirl rather than a constant vector: a constant force is a gradient (of f . x),
    which the pressure balances exactly, leaving no flow at all whatever the viscosity; the
    swirl has curl 2 strength and drives one vortex.
    """

    kind: Literal["random", "swirl"] = "random"
    strength: float = rule(1.0, gt=0.0)


@dataclasses.dataclass(frozen=True)
class StokesProblem:
    viscosity: ViscositySpec = nested(ViscositySpec, sigma=0.5)
    force: ForceSpec = nested(ForceSpec, sigma=50.0)


def _laplacian_1d_coupled(
    shape: tuple[int, int], coefficients: list[np.ndarray], wall: list[float]
) -> sp.csr_matrix:
    """The 2D diffusion matrix on a `shape` array of unknowns (C order) from, per axis, the
    coefficients of the m + 1 fluxes along that axis (the first and last across the walls,
    multiplied by `wall[axis]`: 1 when the wall value sits one spacing away, 2 when it sits
    half a spacing away, by reflection)."""
    size = shape[0] * shape[1]
    index = np.arange(size).reshape(shape)
    diagonal = np.zeros(shape)
    rows, cols, vals = [], [], []
    for axis, c in enumerate(coefficients):
        c = np.array(c, dtype=float)
        first = [slice(None)] * 2
        last = [slice(None)] * 2
        first[axis], last[axis] = 0, -1
        c[tuple(first)] *= wall[axis]
        c[tuple(last)] *= wall[axis]
        lower = [slice(None)] * 2
        upper = [slice(None)] * 2
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        diagonal += c[tuple(lower)] + c[tuple(upper)]
        inner = [slice(None)] * 2
        inner[axis] = slice(1, -1)
        coupling = c[tuple(inner)].ravel()
        a, b = index[tuple(lower)].ravel(), index[tuple(upper)].ravel()
        rows += [a, b]
        cols += [b, a]
        vals += [-coupling, -coupling]
    rows.append(index.ravel())
    cols.append(index.ravel())
    vals.append(diagonal.ravel())
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    )


@functools.lru_cache(maxsize=8)
def _gradient(n: int) -> sp.csr_matrix:
    """G / h: the pressure difference p_right - p_left across every interior face, u faces
    then v faces, over all (n + 1)^2 cells (C order, x first)."""
    m = n + 1
    cells = np.arange(m * m).reshape(m, m)
    faces_u = np.arange(n * m).reshape(n, m)  # face x-index 1..n, cell y-index 0..n
    faces_v = np.arange(m * n).reshape(m, n) + n * m
    rows = [faces_u.ravel(), faces_u.ravel(), faces_v.ravel(), faces_v.ravel()]
    cols = [
        cells[1:, :].ravel(),
        cells[:-1, :].ravel(),
        cells[:, 1:].ravel(),
        cells[:, :-1].ravel(),
    ]
    vals = [np.ones(n * m), -np.ones(n * m), np.ones(n * m), -np.ones(n * m)]
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(2 * n * m, m * m),
    )


class Stokes(Family):
    name = "stokes"
    Problem = StokesProblem
    dims = (2,)
    inputs = {"viscosity": FieldAxes(), "force_x": FieldAxes(), "force_y": FieldAxes()}
    outputs = {"velocity_x": FieldAxes(), "velocity_y": FieldAxes(), "pressure": FieldAxes()}
    auto_solvers = {2: ("minres", "fieldsplit")}  # docs/benchmarks.md, "Stokes"
    iterative_pc = "fieldsplit"
    symmetric = True  # symmetric but indefinite (a saddle point): CG does not apply
    #: a zero pressure block: point-wise preconditioners and multigrid on the node grid do not
    #: apply; `fieldsplit` is the block preconditioner built for it
    preconditioners = frozenset({"none", "jacobi", "ilu", "fieldsplit", "lu"})
    #: PETSc's LU does not pivot: nested dissection eliminates pressures before their
    #: velocities (a zero pivot), and with rows permuted for a nonzero diagonal it fills in
    #: badly (n = 127: 73 s); reverse Cuthill-McKee with that permutation factorises (2.5 s)
    factor_ordering: ClassVar[tuple[str, bool]] = ("rcm", True)
    #: what `pc: fieldsplit` preconditions the velocity block with, per dimension: an exact
    #: sparse LU (nested dissection, its symbolic phase kept from sample to sample) halves
    #: MINRES's iterations against one GAMG V-cycle and is faster up to n = 255 at least
    #: (docs/benchmarks.md, "Stokes")
    velocity_pc: ClassVar[dict[int, str]] = {2: "lu"}
    #: the cell whose pressure is pinned to zero before the mean is removed
    pinned: ClassVar[int] = 0

    # -- the unknowns ---------------------------------------------------------------------

    @property
    def velocity_unknowns(self) -> int:
        return 2 * self.n * (self.n + 1)

    @property
    def pressure_unknowns(self) -> int:
        """The cell pressures less the pinned one."""
        return (self.n + 1) ** 2 - 1

    @property
    def unknowns(self) -> int:
        return self.velocity_unknowns + self.pressure_unknowns

    @property
    def interior_shape(self) -> tuple[int, ...]:
        return (self.unknowns,)  # not a node grid: `pc: mg` is not offered (`preconditioners`)

    def field_splits(self) -> dict[str, np.ndarray]:
        """The velocity and pressure unknowns (`pc: fieldsplit`), in that order."""
        nu = self.velocity_unknowns
        return {"velocity": np.arange(nu), "pressure": np.arange(nu, self.unknowns)}

    # -- the operator ---------------------------------------------------------------------

    def cell_viscosity(self, nu: np.ndarray) -> np.ndarray:
        """nu at the cell centres: the mean of each cell's four corner nodes."""
        return 0.25 * (nu[:-1, :-1] + nu[1:, :-1] + nu[:-1, 1:] + nu[1:, 1:])

    def velocity_operator(self, nu: np.ndarray) -> sp.csr_matrix:
        """A: -div(nu grad) on u and on v, times h^2 (block diagonal, SPD)."""
        centres = self.cell_viscosity(nu)
        Au = _laplacian_1d_coupled((self.n, self.n + 1), [centres, nu[1:-1, :]], [1.0, 2.0])
        Av = _laplacian_1d_coupled((self.n + 1, self.n), [nu[:, 1:-1], centres], [2.0, 1.0])
        return sp.block_diag([Au, Av], format="csr")

    def full_operator(self, nu: np.ndarray) -> sp.csr_matrix:
        """K = [[A, G], [G^T, 0]] over every cell pressure: singular, kernel (0, 1)."""
        G = self.h * _gradient(self.n)
        cells = np.arange(G.shape[1])
        # the zero block's diagonal stored (as zeros): factorisations need every diagonal
        # entry present, and the Schur preconditioning matrix fills exactly these places
        zero = sp.csr_matrix((np.zeros(cells.size), (cells, cells)), shape=(cells.size,) * 2)
        return sp.bmat([[self.velocity_operator(nu), G], [G.T, zero]], format="csr")

    def _keep(self) -> np.ndarray:
        keep = np.ones(self.velocity_unknowns + (self.n + 1) ** 2, dtype=bool)
        keep[self.velocity_unknowns + self.pinned] = False
        return keep

    def assemble(
        self, nu: np.ndarray, fx: np.ndarray, fy: np.ndarray
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        """The pinned (nonsingular) system for nodal viscosity and force components."""
        nu = np.asarray(nu, dtype=float)
        if nu.shape != self.grid_shape:
            raise ValueError(f"viscosity shape {nu.shape} != grid shape {self.grid_shape}")
        keep = self._keep()
        K = self.full_operator(nu)[keep][:, keep].tocsr()
        K.sort_indices()
        fx, fy = np.asarray(fx, dtype=float), np.asarray(fy, dtype=float)
        bu = 0.5 * (fx[1:-1, :-1] + fx[1:-1, 1:])
        bv = 0.5 * (fy[:-1, 1:-1] + fy[1:, 1:-1])
        b = np.concatenate([bu.ravel(), bv.ravel(), np.zeros(self.pressure_unknowns)])
        return K, self.h**2 * b

    def schur_mass(self, nu: np.ndarray) -> np.ndarray:
        """The diagonal of the (1/nu)-scaled pressure mass matrix h^2 / nu_cell (pinned cell
        left out): spectrally equivalent to the Schur complement G^T A^-1 G (the inf-sup
        stability of MAC), which is why it preconditions it."""
        mass = (self.h**2 / self.cell_viscosity(nu)).ravel()
        return np.delete(mass, self.pinned)

    def preconditioner_operator(self, sample: Sample, A: sp.csr_matrix) -> sp.csr_matrix:
        """[[A, G], [G^T, -M/nu]]: `pc: fieldsplit` reads its Schur preconditioner from the
        pressure block (PETSc's `schur_pre a11`), negative like the Schur complement, which the
        diagonal factorisation's default scale -1 turns into the SPD block diag(A, M/nu)."""
        mass = self.schur_mass(sample.inputs["viscosity"])
        shift = np.concatenate([np.zeros(self.velocity_unknowns), -mass])
        P = (A + sp.diags(shift, format="csr")).tocsr()
        P.sort_indices()
        return P

    # -- samples --------------------------------------------------------------------------

    def viscosity(self, rng: np.random.Generator, spec: ViscositySpec) -> np.ndarray:
        if spec.kind == "constant":
            return np.full(self.grid_shape, spec.value)
        return self.coefficient(rng, spec)

    def force(self, rng: np.random.Generator, spec: ForceSpec) -> tuple[np.ndarray, np.ndarray]:
        if spec.kind == "swirl":
            x, y = np.meshgrid(self.x, self.x, indexing="ij")
            return -spec.strength * (y - 0.5), spec.strength * (x - 0.5)
        return self.grf(rng, spec), self.grf(rng, spec)

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        nu = self.viscosity(rng, self.problem.viscosity)
        fx, fy = self.force(rng, self.problem.force)
        return Sample(index, {"viscosity": nu, "force_x": fx, "force_y": fy})

    def system(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        i = sample.inputs
        return self.assemble(i["viscosity"], i["force_x"], i["force_y"])

    # -- from the unknowns to the stored fields ---------------------------------------------

    def mac_fields(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u on the x-faces (n, n + 1), v on the y-faces (n + 1, n), cell pressures
        (n + 1, n + 1) with mean zero) from the solution vector."""
        n, m = self.n, self.n + 1
        u = x[: n * m].reshape(n, m)
        v = x[n * m : 2 * n * m].reshape(m, n)
        p = np.insert(x[2 * n * m :], self.pinned, 0.0).reshape(m, m)
        return u, v, p - p.mean()

    def divergence(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """div u at the cell centres from the face velocities (walls: zero normal velocity)."""
        m = self.n + 1
        ux = np.zeros((m + 1, m))
        vy = np.zeros((m, m + 1))
        ux[1:-1], vy[:, 1:-1] = u, v
        return (np.diff(ux, axis=0) + np.diff(vy, axis=1)) / self.h

    def node_fields(self, u: np.ndarray, v: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
        """The MAC fields interpolated to the node grid (module docstring)."""
        shape = self.grid_shape
        ux, vy = np.zeros(shape), np.zeros(shape)
        ux[1:-1, 1:-1] = 0.5 * (u[:, :-1] + u[:, 1:])
        vy[1:-1, 1:-1] = 0.5 * (v[:-1, :] + v[1:, :])
        ghost = np.pad(p, 1)
        ghost[0, 1:-1], ghost[-1, 1:-1] = 2 * p[0] - p[1], 2 * p[-1] - p[-2]
        ghost[:, 0] = 2 * ghost[:, 1] - ghost[:, 2]
        ghost[:, -1] = 2 * ghost[:, -2] - ghost[:, -3]
        pn = 0.25 * (ghost[:-1, :-1] + ghost[1:, :-1] + ghost[:-1, 1:] + ghost[1:, 1:])
        pn -= trapezoid_mean(pn, self.h)
        return {"velocity_x": ux, "velocity_y": vy, "pressure": pn}

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        """One saddle-point solve, stored as velocity and pressure on the nodes."""
        A, b = self.system(sample)
        P = self.preconditioner_operator(sample, A) if chain.wants_preconditioner_operator else None
        if chain.wants_field_splits:
            chain.use_field_splits(self.field_splits(), velocity_pc=self.velocity_pc[self.dim])
        chain.use_factor_ordering(*self.factor_ordering)
        result = chain.solve(A, b, P=P)
        return self.node_fields(*self.mac_fields(result.x)), [result]

    def features(self, sample: Sample) -> np.ndarray:
        """log viscosity and the force, downsampled: what moves the operator and the flow."""
        i = sample.inputs
        parts = [np.log(i["viscosity"]), i["force_x"], i["force_y"]]
        return np.concatenate([self.downsample(a).ravel() for a in parts])


def trapezoid_mean(field: np.ndarray, h: float) -> float:
    """The mean of a nodal field over the unit square by the trapezoidal rule."""
    return float(np.trapezoid(np.trapezoid(field, dx=h, axis=0), dx=h))
