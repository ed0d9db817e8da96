"""Stokes flow -div(nu grad u) + grad p = f, div u = 0 in the unit square or cube, no-slip.

The marker-and-cell (MAC, staggered) discretisation of Harlow and Welch on (n + 1)^dim
square cells of side h = 1/(n + 1), whose corners are the node grid every other family uses
(described in 2D; 3D adds the z-velocity w and puts the shear fluxes on the cell edges):
- x-velocity u on the vertical faces (x = i h, y = (j + 1/2) h), y-velocity v on the
  horizontal ones; the faces on the walls carry the no-slip normal velocity 0 and are not
  unknowns: n (n + 1) unknowns for u, as many for v;
- pressure p at the (n + 1)^dim cell centres;
- viscosity nu given on the nodes (the cell corners), where the shear fluxes d(nu du/dy)
  and d(nu dv/dx) are taken (3D: on the edges, the mean of an edge's two end nodes), and
  averaged over each cell's 2^dim corners (arithmetic mean) at the cell centres, where the
  normal fluxes d(nu du/dx) and d(nu dv/dy) are taken;
- the body force given on the nodes and averaged to each face from its 2^(dim - 1) corners;
- the tangential no-slip condition by reflection: the ghost value beyond a wall is minus the
  first interior one, so the wall value is zero (the wall-adjacent shear flux is then
  2 nu u / h with nu at the wall node).

Each equation is integrated over its control volume and divided by h^(dim - 2), so the
momentum rows are A u + G p = h^2 f with A the variable-coefficient diffusion operators (entries
of order nu, symmetric positive definite) and G p = h (p_right - p_left) the pressure
difference across the face; the continuity rows are G^T u = -h^2 div u = 0. The block matrix
K = [[A, G], [G^T, 0]] is therefore symmetric (so MINRES applies) and indefinite (A is
positive definite, the pressure Schur complement -G^T A^-1 G negative semidefinite).

The pressure is determined up to a constant: K has the kernel (0, 1). It is fixed by pinning
the pressure of the first cell (x, y near 0) to zero, that is by removing that unknown and
its continuity row. The row is implied by the others (the continuity rows sum to the net
flux through the walls, which is zero), so the reduced matrix is nonsingular, still
symmetric, and its solution is the same flow; every method, a direct factorisation included,
takes it as it is. The cell pressures are then shifted to mean zero. (By interlacing, the
pinned Schur complement keeps one isolated small eigenvalue, which costs a Krylov method a
few iterations at most; not measured against a null-space projection.)

Stored on the node grid ((n + 2)^dim points, like every other family), co-located as neural
operators want them:
- velocity_x, velocity_y (velocity_z): each component averaged from the faces next to the
  node along the other axes (u at node (i, j) is the mean of u at (i h, (j +- 1/2) h)), zero
  on the walls;
- pressure: the mean of the 2^dim cells around each node, with ghost cells beyond the walls
  extrapolated linearly (p_ghost = 2 p_0 - p_1), so the boundary nodes are second-order
  extrapolations; then shifted so that its trapezoidal-rule mean over the node grid is zero;
- viscosity, force_x, force_y (force_z): the inputs as drawn.
All three interpolations are second order for smooth fields (measured orders in
tests/test_stokes.py and docs/format.md).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import sample_rng
from pdegen.families.base import SPACE_AXES, Family, FieldAxes, Sample
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
    viscosity: ViscositySpec = nested(ViscositySpec, sigma=2.0)
    force: ForceSpec = nested(ForceSpec, sigma=50.0)


def _at(ndim: int, axis: int, where) -> tuple:
    """An index that takes `where` along `axis` and everything along the other axes."""
    return tuple(where if d == axis else slice(None) for d in range(ndim))


def _pair_mean(array: np.ndarray, axis: int) -> np.ndarray:
    """The mean of neighbours along `axis` (one fewer entry along it)."""
    ndim = array.ndim
    return 0.5 * (array[_at(ndim, axis, slice(None, -1))] + array[_at(ndim, axis, slice(1, None))])


def _diffusion(shape: tuple[int, ...], coefficients: list[np.ndarray], wall: list[float]):
    """The diffusion matrix on a `shape` array of unknowns (C order) from, per axis, the
    coefficients of the m + 1 fluxes along that axis (the first and last across the walls,
    multiplied by `wall[axis]`: 1 when the wall value sits one spacing away, 2 when it sits
    half a spacing away, by reflection)."""
    ndim, size = len(shape), math.prod(shape)
    index = np.arange(size).reshape(shape)
    diagonal = np.zeros(shape)
    rows, cols, vals = [], [], []
    for axis, c in enumerate(coefficients):
        c = np.array(c, dtype=float)
        c[_at(ndim, axis, 0)] *= wall[axis]
        c[_at(ndim, axis, -1)] *= wall[axis]
        lower, upper = _at(ndim, axis, slice(None, -1)), _at(ndim, axis, slice(1, None))
        diagonal += c[lower] + c[upper]
        coupling = c[_at(ndim, axis, slice(1, -1))].ravel()
        a, b = index[lower].ravel(), index[upper].ravel()
        rows += [a, b]
        cols += [b, a]
        vals += [-coupling, -coupling]
    rows.append(index.ravel())
    cols.append(index.ravel())
    vals.append(diagonal.ravel())
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    )


def _face_shape(n: int, dim: int, axis: int) -> tuple[int, ...]:
    """The interior faces normal to `axis`: n along it, n + 1 (cells) along the others."""
    return tuple(n if d == axis else n + 1 for d in range(dim))


@functools.lru_cache(maxsize=8)
def _gradient(n: int, dim: int) -> sp.csr_matrix:
    """G / h: the pressure difference p_right - p_left across every interior face, the faces
    normal to x first (then y, z), over all (n + 1)^dim cells (C order)."""
    cells = np.arange((n + 1) ** dim).reshape((n + 1,) * dim)
    rows, cols, vals = [], [], []
    offset = 0
    for axis in range(dim):
        faces = offset + np.arange(math.prod(_face_shape(n, dim, axis)))
        offset = faces[-1] + 1
        for side, sign in ((slice(1, None), 1.0), (slice(None, -1), -1.0)):
            rows.append(faces)
            cols.append(cells[_at(dim, axis, side)].ravel())
            vals.append(np.full(faces.size, sign))
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(offset, cells.size),
    )


class Stokes(Family):
    name = "stokes"
    why_no_cells = (
        "its own grid is staggered (velocities on the faces, pressure at the centres), "
        "stored at the nodes"
    )
    discretisation = (
        "the marker-and-cell (MAC, staggered) finite-volume grid of Harlow and Welch: "
        "velocity components on the cell faces, pressure at the cell centres (pinned in the "
        "first cell), no-slip walls; the stored fields are interpolated to the nodes"
    )
    Problem = StokesProblem
    inputs = {
        "viscosity": FieldAxes(),
        "force_x": FieldAxes(),
        "force_y": FieldAxes(),
        "force_z": FieldAxes(dims=(3,)),
    }
    outputs = {
        "velocity_x": FieldAxes(),
        "velocity_y": FieldAxes(),
        "velocity_z": FieldAxes(dims=(3,)),
        "pressure": FieldAxes(),
    }
    auto_solvers = {2: ("minres", "fieldsplit"), 3: ("minres", "fieldsplit")}  # "Stokes"
    iterative_pc = "fieldsplit"
    symmetric = True  # symmetric but indefinite (a saddle point): CG does not apply
    #: a zero pressure block: point-wise preconditioners and multigrid on the node grid do not
    #: apply; `fieldsplit` is the block preconditioner built for it
    preconditioners = frozenset({"none", "jacobi", "ilu", "fieldsplit", "lu"})
    #: PETSc's LU does not pivot: nested dissection eliminates pressures before their
    #: velocities (a zero pivot), and with rows permuted for a nonzero diagonal it fills in
    #: badly (n = 127: 73 s); reverse Cuthill-McKee with that permutation factorises (2.5 s)
    factor_ordering: ClassVar[tuple[str, bool]] = ("rcm", True)
    #: what `pc: fieldsplit` preconditions the velocity block with, per dimension: in 2D an
    #: exact sparse Cholesky factorisation (nested dissection, its symbolic phase kept from
    #: sample to sample) takes 35-45% fewer MINRES iterations than one GAMG V-cycle and is
    #: faster up to n = 255 at least; in 3D its fill makes it 3x slower than GAMG at n = 31
    #: (docs/benchmarks.md, "Stokes")
    velocity_pc: ClassVar[dict[int, str]] = {2: "cholesky", 3: "gamg"}
    #: the cell whose pressure is pinned to zero before the mean is removed
    pinned: ClassVar[int] = 0

    # -- the unknowns ---------------------------------------------------------------------

    @property
    def components(self) -> tuple[str, ...]:
        return SPACE_AXES[: self.dim]

    @property
    def face_shapes(self) -> list[tuple[int, ...]]:
        """The array shape of each velocity component's unknowns (x, y(, z))."""
        return [_face_shape(self.n, self.dim, axis) for axis in range(self.dim)]

    @property
    def velocity_unknowns(self) -> int:
        return sum(math.prod(shape) for shape in self.face_shapes)

    @property
    def pressure_unknowns(self) -> int:
        """The cell pressures less the pinned one."""
        return (self.n + 1) ** self.dim - 1

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
        """nu at the cell centres: the mean of each cell's 2^dim corner nodes."""
        for axis in range(self.dim):
            nu = _pair_mean(nu, axis)
        return nu

    def shear_viscosity(self, nu: np.ndarray, axis: int, along: int) -> np.ndarray:
        """nu where the flux of velocity component `axis` along `along` sits: on the nodes in
        2D; on the cell edges in 3D (the mean of an edge's two end nodes along the third
        axis); interior nodes along `axis`, every node along `along`."""
        for other in range(self.dim):
            if other not in (axis, along):
                nu = _pair_mean(nu, other)
        return nu[_at(self.dim, axis, slice(1, -1))]

    def velocity_operator(self, nu: np.ndarray) -> sp.csr_matrix:
        """A: -div(nu grad) on each velocity component, times h^2 (block diagonal, SPD)."""
        centres = self.cell_viscosity(nu)
        blocks = []
        for axis, shape in enumerate(self.face_shapes):
            coefficients = [
                centres if along == axis else self.shear_viscosity(nu, axis, along)
                for along in range(self.dim)
            ]
            walls = [1.0 if along == axis else 2.0 for along in range(self.dim)]
            blocks.append(_diffusion(shape, coefficients, walls))
        return sp.block_diag(blocks, format="csr")

    def full_operator(self, nu: np.ndarray) -> sp.csr_matrix:
        """K = [[A, G], [G^T, 0]] over every cell pressure: singular, kernel (0, 1)."""
        G = self.h * _gradient(self.n, self.dim)
        cells = np.arange(G.shape[1])
        # the zero block's diagonal stored (as zeros): factorisations need every diagonal
        # entry present, and the Schur preconditioning matrix fills exactly these places
        zero = sp.csr_matrix((np.zeros(cells.size), (cells, cells)), shape=(cells.size,) * 2)
        return sp.bmat([[self.velocity_operator(nu), G], [G.T, zero]], format="csr")

    def _keep(self) -> np.ndarray:
        keep = np.ones(self.velocity_unknowns + (self.n + 1) ** self.dim, dtype=bool)
        keep[self.velocity_unknowns + self.pinned] = False
        return keep

    def assemble(self, nu: np.ndarray, *force: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """The pinned (nonsingular) system for the nodal viscosity and force components."""
        nu = np.asarray(nu, dtype=float)
        if nu.shape != self.grid_shape:
            raise ValueError(f"viscosity shape {nu.shape} != grid shape {self.grid_shape}")
        keep = self._keep()
        K = self.full_operator(nu)[keep][:, keep].tocsr()
        K.sort_indices()
        parts = []
        for axis, f in enumerate(force):  # on each face: the mean of its corner nodes
            f = np.asarray(f, dtype=float)
            for other in range(self.dim):
                if other != axis:
                    f = _pair_mean(f, other)
            parts.append(f[_at(self.dim, axis, slice(1, -1))].ravel())
        b = np.concatenate([*parts, np.zeros(self.pressure_unknowns)])
        return K, self.h**2 * b

    def schur_mass(self, nu: np.ndarray) -> np.ndarray:
        """The diagonal of the (1/nu)-scaled pressure mass matrix h^2 / nu_cell (pinned cell
        left out; h^2 in every dimension, as the rows are scaled): spectrally equivalent to
        the Schur complement G^T A^-1 G (the inf-sup stability of MAC), which is why it
        preconditions it."""
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

    def force(self, rng: np.random.Generator, spec: ForceSpec) -> list[np.ndarray]:
        """One nodal field per component: random, or the swirl about the z axis."""
        if spec.kind == "swirl":
            x = np.meshgrid(*[self.x] * self.dim, indexing="ij")
            swirl = [-spec.strength * (x[1] - 0.5), spec.strength * (x[0] - 0.5)]
            return swirl + [np.zeros(self.grid_shape)] * (self.dim - 2)
        return [self.grf(rng, spec) for _ in range(self.dim)]

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        nu = self.viscosity(rng, self.problem.viscosity)
        force = self.force(rng, self.problem.force)
        named = zip(self.components, force, strict=True)
        inputs = {"viscosity": nu, **{f"force_{a}": f for a, f in named}}
        return Sample(index, inputs)

    def system(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        i = sample.inputs
        return self.assemble(i["viscosity"], *(i[f"force_{a}"] for a in self.components))

    # -- from the unknowns to the stored fields ---------------------------------------------

    def split(self, x: np.ndarray) -> list[np.ndarray]:
        """The velocity components on their faces (shapes `face_shapes`), from the first
        `velocity_unknowns` entries of `x`."""
        out, start = [], 0
        for shape in self.face_shapes:
            size = math.prod(shape)
            out.append(x[start : start + size].reshape(shape))
            start += size
        return out

    def mac_fields(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """The velocity components on their faces (shapes `face_shapes`), then the cell
        pressures ((n + 1,) * dim) with mean zero, from the solution vector."""
        pressures = x[self.velocity_unknowns :]
        p = np.insert(pressures, self.pinned, 0.0).reshape((self.n + 1,) * self.dim)
        return (*self.split(x), p - p.mean())

    def divergence(self, *velocity: np.ndarray) -> np.ndarray:
        """div u at the cell centres from the face velocities (walls: zero normal velocity)."""
        total = np.zeros((self.n + 1,) * self.dim)
        for axis, u in enumerate(velocity):
            padded = np.pad(u, [(1, 1) if d == axis else (0, 0) for d in range(self.dim)])
            total += np.diff(padded, axis=axis)
        return total / self.h

    def node_fields(self, *arrays: np.ndarray) -> dict[str, np.ndarray]:
        """The MAC fields (velocity components, then pressure) interpolated to the node grid
        (module docstring)."""
        *velocity, p = arrays
        fields = {}
        inner = (slice(1, -1),) * self.dim
        for axis, u in enumerate(velocity):  # the mean of the faces around each node
            for other in range(self.dim):
                if other != axis:
                    u = _pair_mean(u, other)
            field = np.zeros(self.grid_shape)
            field[inner] = u
            fields[f"velocity_{self.components[axis]}"] = field
        ghost = p
        for axis in range(self.dim):  # linear extrapolation to a ghost layer beyond each wall
            first, second = ghost[_at(self.dim, axis, [0])], ghost[_at(self.dim, axis, [1])]
            last, before = ghost[_at(self.dim, axis, [-1])], ghost[_at(self.dim, axis, [-2])]
            ghost = np.concatenate([2 * first - second, ghost, 2 * last - before], axis=axis)
        for axis in range(self.dim):
            ghost = _pair_mean(ghost, axis)
        fields["pressure"] = ghost - trapezoid_mean(ghost, self.h)
        return fields

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        """One saddle-point solve, stored as velocity and pressure on the nodes."""
        A, b = self.system(sample)
        P = self.preconditioner_operator(sample, A) if chain.wants_preconditioner_operator else None
        if chain.wants_field_splits:
            chain.use_field_splits(self.field_splits(), velocity_pc=self.velocity_pc[self.dim])
        chain.use_factor_ordering(*self.factor_ordering)
        result = chain.solve(A, b, P=P)
        return self.node_fields(*self.mac_fields(result.x)), [result]

    def solution_vector(self, outputs: dict[str, np.ndarray]) -> None:
        """None: the stored fields are interpolations, which do not determine the MAC
        unknowns (`pdegen check --deep` checks a Stokes sample's inputs only)."""
        return None

    @property
    def matrix_entries(self) -> int:
        """The system's stored entries (memory estimate): a (2 dim + 1)-point diffusion row
        plus two gradient entries per velocity, 2 dim divergence entries and the stored zero
        diagonal per pressure (an upper bound: wall rows have fewer)."""
        return (2 * self.dim + 3) * self.velocity_unknowns + (
            2 * self.dim + 1
        ) * self.pressure_unknowns

    def features(self, sample: Sample) -> np.ndarray:
        """log viscosity and the force, downsampled: what moves the operator and the flow."""
        i = sample.inputs
        parts = [np.log(i["viscosity"]), *(i[f"force_{a}"] for a in self.components)]
        return np.concatenate([self.downsample(a).ravel() for a in parts])


def trapezoid_mean(field: np.ndarray, h: float) -> float:
    """The mean of a nodal field over the unit square or cube by the trapezoidal rule."""
    while field.ndim:
        field = np.trapezoid(field, dx=h, axis=0)
    return float(field)
