"""Finite-difference operators on the node grid of the unit square or cube.

Unknowns are the interior nodes, numbered in C order (last axis fastest); fields are given on
the full node grid, boundary nodes included, spacing h = 1/(n+1) on every axis.

The diffusion operator -div(a grad .) is the conservative (2d+1)-point stencil: for each axis,
the flux through the face between neighbouring nodes uses the harmonic mean of the two nodal
coefficients. Why harmonic: the flux crosses two half-cells in series, and for a coefficient
that jumps (thresholded fields do) the harmonic mean is the exact effective conductance of
that series in 1D, while the arithmetic mean overstates the flux across a low-conductivity
layer; for smooth coefficients both are second order. Every face value enters the two rows it
couples with the same sign and size, so the matrix is symmetric, and for a > 0 it is an
irreducibly diagonally dominant M-matrix: symmetric positive definite.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp


def harmonic_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 2.0 * a * b / (a + b)


def _axis_slices(ndim: int, axis: int, along: slice) -> tuple[slice, ...]:
    """Interior (1:-1) on every axis except `axis`, which gets `along`."""
    return tuple(along if d == axis else slice(1, -1) for d in range(ndim))


def _along(ndim: int, axis: int, along: slice) -> tuple[slice, ...]:
    return tuple(along if d == axis else slice(None) for d in range(ndim))


def face_coefficients(a: np.ndarray) -> list[np.ndarray]:
    """Per axis, the face coefficients between nodes i and i+1 (i = 0..n) on interior lines."""
    return [
        harmonic_mean(
            a[_axis_slices(a.ndim, ax, slice(None, -1))],
            a[_axis_slices(a.ndim, ax, slice(1, None))],
        )
        for ax in range(a.ndim)
    ]


def _couplings(ndim: int, n: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the neighbours (I, I+1) along `axis`."""
    idx = np.arange(n**ndim).reshape((n,) * ndim)
    return (
        idx[_along(ndim, axis, slice(None, -1))].ravel(),
        idx[_along(ndim, axis, slice(1, None))].ravel(),
    )


@functools.lru_cache(maxsize=16)
def stencil_pattern(ndim: int, n: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The CSR structure of every (2 ndim + 1)-point stencil matrix on n^ndim interior nodes:
    (indptr, indices, places), where places[k] says where the k-th block of values (the
    diagonal, then per axis the upper and the lower couplings) goes in the CSR data.

    Why cached: the pattern never changes from sample to sample, and building it through
    scipy's COO-to-CSR conversion (a sort of every entry) was most of the assembly time (28 ms
    of a 421 x 421 Darcy sample; the values take about 5). The arrays are read-only: they are
    shared by every matrix of that size.
    """
    size = n**ndim
    rows, cols = [np.arange(size)], [np.arange(size)]
    for ax in range(ndim):
        lo, hi = _couplings(ndim, n, ax)
        rows += [lo, hi]
        cols += [hi, lo]
    r, c = np.concatenate(rows), np.concatenate(cols)
    order = np.lexsort((c, r))
    indptr = np.zeros(size + 1, dtype=np.int32)
    np.cumsum(np.bincount(r, minlength=size), out=indptr[1:])
    indices = c[order].astype(np.int32)
    where = np.empty_like(order)
    where[order] = np.arange(order.size)  # value i of the concatenation lands at where[i]
    places = np.split(where, np.cumsum([len(x) for x in rows])[:-1])
    for array in (indptr, indices, *places):
        array.setflags(write=False)
    return indptr, indices, places


def diagonal_places(ndim: int, n: int) -> np.ndarray:
    """Where the diagonal entries sit in the values of every stencil matrix of n^ndim
    interior nodes (`stencil_pattern`): a family that moves only the diagonal (Helmholtz's
    -k^2, a time step's identity, a reaction's Jacobian) adds to these in place."""
    return stencil_pattern(ndim, n)[2][0]


def on_pattern(A: sp.csr_matrix, data: np.ndarray) -> sp.csr_matrix:
    """A matrix with A's pattern (its arrays kept, not copied) and the values `data`.

    Why not A.copy(): that copies the pattern too, and a copy of the shared read-only
    stencil pattern is no longer recognised as shared, so the solver compares it with
    the last one entry by entry at every solve instead of by identity.
    """
    B = sp.csr_matrix((data, A.indices, A.indptr), shape=A.shape, copy=False)
    B.has_canonical_format = A.has_canonical_format
    return B


def stencil_matrix(
    diagonal: np.ndarray, lower: list[np.ndarray], upper: list[np.ndarray]
) -> sp.csr_matrix:
    """Assemble a nearest-neighbour stencil: per axis, `upper[ax]` couples I to I+1 and
    `lower[ax]` couples I+1 to I (arrays shaped like the interior minus one along ax).
    Every coupling is stored, zero or not, so all matrices of one size share one pattern."""
    ndim, n = diagonal.ndim, diagonal.shape[0]
    blocks = [diagonal]
    for ax in range(ndim):
        blocks += [upper[ax], lower[ax]]
    indptr, indices, places = stencil_pattern(ndim, n)
    data = np.empty(indices.size)
    for block, place in zip(blocks, places, strict=True):
        data[place] = block.ravel()
    A = sp.csr_matrix((data, indices, indptr), shape=(n**ndim, n**ndim), copy=False)
    A.has_canonical_format = True  # sorted, each entry once
    return A


def diffusion_operator(a: np.ndarray, h: float) -> tuple[sp.csr_matrix, list[np.ndarray]]:
    """The matrix of -div(a grad .) on interior nodes, and the face coefficients (for lifts).

    Computed by the compiled kernel (`solvers/csrc/assembly.c`, `pdegen_diffusion_stencil`)
    where it is built, else by `diffusion_operator_numpy`; both give the same bits (tested).
    """
    a = np.asarray(a)
    if not _kernel_takes(a):
        return diffusion_operator_numpy(a, h)
    return _kernel_operator(a, h, cells=False)


def _kernel_operator(
    a: np.ndarray, h: float, cells: bool
) -> tuple[sp.csr_matrix, list[np.ndarray]]:
    """The compiled kernel's matrix as CSR on the shared stencil pattern, and its face
    coefficients: on the (n + 2)^d nodes of `a`, or with `cells` its n^d cells."""
    ndim, n = a.ndim, a.shape[0] - (0 if cells else 2)
    indptr, indices, _ = stencil_pattern(ndim, n)
    data = np.empty(indices.size)
    faces = _run_stencil_kernel(a, h, data=data, cells=cells)
    A = sp.csr_matrix((data, indices, indptr), shape=(n**ndim, n**ndim), copy=False)
    A.has_canonical_format = True  # sorted, each entry once: the stencil pattern's rows
    return A, faces


#: whether `diffusion_operator` may use the compiled kernel here (`numpy_assembly`)
_COMPILED = contextvars.ContextVar("pdegen_compiled_assembly", default=True)


@contextlib.contextmanager
def numpy_assembly() -> Iterator[None]:
    """Within: every diffusion matrix is assembled by `diffusion_operator_numpy` (the same
    bits). `pdegen check --deep` re-assembles this way: the compiled library links PETSc,
    which a check never starts, and numpy's assembly is an independent second implementation
    of the kernel the writer used."""
    token = _COMPILED.set(False)
    try:
        yield
    finally:
        _COMPILED.reset(token)


def _kernel_takes(a: np.ndarray, cells: bool = False) -> bool:
    """Whether the compiled stencil kernel is built and takes this coefficient array: on at
    least one unknown per axis (3 nodes, or 1 cell)."""
    return (
        _COMPILED.get()
        and a.dtype == np.float64
        and 1 <= a.ndim <= 3
        and a.shape[0] >= (1 if cells else 3)
        and _stencil_kernels() is not None
    )


def _run_stencil_kernel(
    a: np.ndarray, h: float, data=None, mat=None, cells: bool = False
) -> list[np.ndarray]:
    """The kernel's values into `data` (an array of the pattern's size) or straight into the
    PETSc Mat `mat`; returns the face coefficients it computed on the way. `cells`: `a` is
    on the n^d cells, walls on the outer faces (`cell_face_coefficients`), not on the
    (n + 2)^d nodes."""
    ndim, n = a.ndim, a.shape[0] - (0 if cells else 2)
    faces = [np.empty(tuple(n + 1 if d == ax else n for d in range(ndim))) for ax in range(ndim)]
    padded = faces + [None] * (3 - ndim)
    _stencil_kernels().run(
        "pdegen_diffusion_stencil",
        a=np.ascontiguousarray(a),
        cells=int(cells),
        n=n,
        dim=ndim,
        scale=1.0 / h**2,
        faces0=padded[0],
        faces1=padded[1],
        faces2=padded[2],
        data=data,
        nnz=stencil_pattern(ndim, n)[1].size,
        A=None if mat is None else mat.handle,
    )
    return faces


class DiffusionMatrix:
    """The matrix of -div(a grad .) on interior nodes (`diffusion_operator`'s), assembled
    where it is used: into a solver's PETSc Mat by `fill_aij`, or as CSR by `tocsr`.

    Why: after a chain's first sample the solver's Mat already has the stencil pattern, and
    the compiled kernel can write each sample's values into PETSc's own array instead of a
    CSR array that is then copied there, 7 MB written and 7 MB read less per 421 x 421 sample
    (docs/benchmarks.md, "Where a sample's time goes"). `solvers.petsc.MatrixSlot.load`
    takes one: it calls `fill_aij` on a Mat of the same pattern and loads `tocsr()` otherwise
    (the first sample, or no compiled kernels). The values are the same bits either way.
    """

    def __init__(self, a: np.ndarray, h: float, cells: bool = False):
        self.a, self.h, self.cells = np.ascontiguousarray(a, dtype=np.float64), h, cells
        ndim, n = self.a.ndim, self.a.shape[0] - (0 if cells else 2)
        self.indptr, self.indices, _ = stencil_pattern(ndim, n)
        self.shape = (n**ndim, n**ndim)
        self._csr: sp.csr_matrix | None = None

    def tocsr(self) -> sp.csr_matrix:
        """The matrix as scipy CSR with the shared stencil pattern (computed once)."""
        if self._csr is None:
            self._csr = (
                cell_diffusion_operator(self.a, self.h)
                if self.cells
                else diffusion_operator(self.a, self.h)[0]
            )
        return self._csr

    def fill_aij(self, mat) -> bool:
        """Write the values into `mat`, a sequential AIJ Mat with this matrix's pattern (the
        caller checks that; the kernel checks the count), raising its state; False, with
        nothing written, where the compiled kernel is not built."""
        if not _kernel_takes(self.a, self.cells):
            return False
        _run_stencil_kernel(self.a, self.h, mat=mat, cells=self.cells)
        return True


def _stencil_kernels():
    """The compiled kernels, or None (no compiler, PDEGEN_NATIVE=0). Imported here, not at
    module load: validating a recipe needs these operators' shapes, never PETSc."""
    from solvers.native import kernels

    return kernels()


def diffusion_operator_numpy(a: np.ndarray, h: float) -> tuple[sp.csr_matrix, list[np.ndarray]]:
    """`diffusion_operator` in numpy: the fallback, and the compiled kernel's oracle."""
    faces = face_coefficients(a)
    return stencil_of_faces(faces, h), faces


def stencil_of_faces(faces: list[np.ndarray], h: float) -> sp.csr_matrix:
    """-div(c grad .) from the face conductances c per axis (n + 1 faces along the axis, n
    unknowns along the others; the outermost faces reach the boundary, whose value 0 drops
    out): each row's diagonal is the sum of its faces, the couplings minus the inner ones."""
    ndim = faces[0].ndim
    scale = 1.0 / h**2
    diagonal = (
        sum(
            f[_along(ndim, ax, slice(1, None))] + f[_along(ndim, ax, slice(None, -1))]
            for ax, f in enumerate(faces)
        )
        * scale
    )
    off = [-f[_along(ndim, ax, slice(1, -1))] * scale for ax, f in enumerate(faces)]
    return stencil_matrix(diagonal, off, off)


def _slab_blocks(interior: tuple[int, ...], first: int, last: int) -> list[tuple[slice, ...]]:
    """Where each block of a slab's stencil values lives, as slices of the slab's local node
    array (planes [first, last) of `interior`): the diagonal (every node), then per axis the
    couplings to the lower neighbour (nodes that have one inside the grid) and to the upper."""
    ndim = len(interior)
    blocks = [(slice(None),) * ndim]
    for ax in range(ndim):
        low = 1 if ax > 0 or first == 0 else 0  # the grid's first plane has no lower one
        high = -1 if ax > 0 or last == interior[0] else None
        blocks.append(_along(ndim, ax, slice(low, None)))
        blocks.append(_along(ndim, ax, slice(None, high)))
    return blocks


@functools.lru_cache(maxsize=4)
def slab_pattern(
    interior: tuple[int, ...], first: int, last: int
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The CSR structure of the rows of the interior planes [first, last) (first axis) of
    every (2 ndim + 1)-point stencil matrix on the interior grid `interior`, global columns:
    (indptr, indices, places), places[k] where the k-th block of values (`_slab_blocks`)
    goes in the CSR data, as `stencil_pattern` gives for the whole grid. Read-only and
    cached: the same slab has the same pattern for every sample of a chain, which the
    solver's `MatrixSlot` then recognises by its memory."""
    ndim = len(interior)
    local = (last - first, *interior[1:])
    rows_of = np.arange(int(np.prod(local, dtype=np.int64))).reshape(local)
    strides = [int(np.prod(interior[ax + 1 :], dtype=np.int64)) for ax in range(ndim)]
    columns_of = rows_of + first * strides[0]  # the global index of each local node
    shifts = [0] + [s for ax in range(ndim) for s in (-strides[ax], strides[ax])]
    rows, cols = [], []
    for block, shift in zip(_slab_blocks(interior, first, last), shifts, strict=True):
        rows.append(rows_of[block].ravel())
        cols.append(columns_of[block].ravel() + shift)
    r, c = np.concatenate(rows), np.concatenate(cols)
    if c.size and (int(c.max()) >= np.iinfo(np.int32).max or c.size >= np.iinfo(np.int32).max):
        raise ValueError(f"a {interior} grid has more unknowns than 32-bit indices hold")
    order = np.lexsort((c, r))
    indptr = np.zeros(rows_of.size + 1, dtype=np.int32)
    np.cumsum(np.bincount(r, minlength=rows_of.size), out=indptr[1:])
    indices = c[order].astype(np.int32)
    where = np.empty_like(order)
    where[order] = np.arange(order.size)
    places = np.split(where, np.cumsum([len(x) for x in rows])[:-1])
    for array in (indptr, indices, *places):
        array.setflags(write=False)
    return indptr, indices, places


def diffusion_rows(a_slab: np.ndarray, h: float, first: int, planes: int) -> sp.csr_matrix:
    """The rows of `diffusion_operator(a, h)` for the interior planes [first, first + m) of the
    first axis, from `a_slab = a[first : first + m + 2]` (the node planes those rows read):
    an (m * n^(d-1)) x n^d CSR matrix with global column indices, for one rank's slab of a
    system solved across ranks (`solvers.distributed`). Built from the slab alone, so no rank
    holds the whole coefficient; the values equal the whole matrix's rows (tested)."""
    a_slab = np.asarray(a_slab, dtype=np.float64)
    ndim = a_slab.ndim
    interior = (planes, *(s - 2 for s in a_slab.shape[1:]))
    last = first + a_slab.shape[0] - 2
    indptr, indices, places = slab_pattern(interior, first, last)
    faces = face_coefficients(a_slab)
    scale = 1.0 / h**2
    lower = [f[_along(ndim, ax, slice(None, -1))] for ax, f in enumerate(faces)]
    upper = [f[_along(ndim, ax, slice(1, None))] for ax, f in enumerate(faces)]
    diagonal = sum(lo + up for lo, up in zip(lower, upper, strict=True)) * scale
    values = [diagonal]
    for lo, up in zip(lower, upper, strict=True):
        values += [lo * -scale, up * -scale]
    blocks = _slab_blocks(interior, first, last)
    data = np.empty(indices.size)
    for value, block, place in zip(values, blocks, places, strict=True):
        data[place] = value[block].ravel()
    size = int(np.prod(interior, dtype=np.int64))
    A = sp.csr_matrix((data, indices, indptr), shape=(indptr.size - 1, size), copy=False)
    A.has_canonical_format = True  # sorted, each entry once
    return A


def boundary_lift(faces: list[np.ndarray], g: np.ndarray, h: float) -> np.ndarray:
    """Right-hand-side contribution of Dirichlet values g (read on the boundary nodes of g)."""
    ndim = g.ndim
    lift = np.zeros(tuple(s - 2 for s in g.shape))
    for ax, f in enumerate(faces):
        first = _along(ndim, ax, slice(0, 1))
        last = _along(ndim, ax, slice(-1, None))
        lift[first] += f[first] * g[_axis_slices(ndim, ax, slice(0, 1))]
        lift[last] += f[last] * g[_axis_slices(ndim, ax, slice(-1, None))]
    return lift / h**2


def convection_operator(
    velocity: list[np.ndarray],
    h: float,
    scheme: str = "upwind",
) -> tuple[sp.csr_matrix, list[tuple[np.ndarray, np.ndarray]]]:
    """v . grad on interior nodes; `velocity[ax]` holds nodal values on the full grid.

    "upwind": first order, one-sided in the direction the flow comes from; the matrix stays
    an M-matrix at any Peclet number, so solutions have no spurious oscillations.
    "central": second order, but oscillates once the cell Peclet number |v| h / (2 eps)
    exceeds 1 (the convection-diffusion family rejects such recipes).
    Returns the matrix and, per axis, the weights (to_lower, to_upper) of the neighbours
    I-1 and I+1 in each row, used to lift Dirichlet values into the right-hand side.
    """
    ndim = velocity[0].ndim
    inner = tuple(slice(1, -1) for _ in range(ndim))
    n = velocity[0].shape[0] - 2
    diagonal = np.zeros((n,) * ndim)
    lower, upper, weights = [], [], []
    for ax, v in enumerate(velocity):
        vi = v[inner]
        if scheme == "upwind":
            plus, minus = np.maximum(vi, 0.0) / h, np.minimum(vi, 0.0) / h
            diagonal += plus - minus
            to_lower, to_upper = -plus, minus  # row I: -v+/h u_{I-1} + v-/h u_{I+1}
        else:
            to_lower, to_upper = -vi / (2 * h), vi / (2 * h)
        upper.append(to_upper[_along(ndim, ax, slice(None, -1))])
        lower.append(to_lower[_along(ndim, ax, slice(1, None))])
        weights.append((to_lower, to_upper))
    return stencil_matrix(diagonal, lower, upper), weights


def convection_lift(weights: list[tuple[np.ndarray, np.ndarray]], g: np.ndarray) -> np.ndarray:
    """Right-hand-side contribution of Dirichlet values g to the convection rows."""
    ndim = g.ndim
    lift = np.zeros(tuple(s - 2 for s in g.shape))
    for ax, (to_lower, to_upper) in enumerate(weights):
        first = _along(ndim, ax, slice(0, 1))
        last = _along(ndim, ax, slice(-1, None))
        lift[first] -= to_lower[first] * g[_axis_slices(ndim, ax, slice(0, 1))]
        lift[last] -= to_upper[last] * g[_axis_slices(ndim, ax, slice(-1, None))]
    return lift


def cell_face_coefficients(a: np.ndarray) -> list[np.ndarray]:
    """Per axis, the face conductances of a cell-centred grid whose walls lie on the cells'
    outer faces: n + 1 faces along the axis, `face_coefficients`' shapes. Between two cells
    the harmonic mean of theirs (two half-cells in series, as on the node grid); at a wall,
    half a cell from the centre next to it, 2 a of that cell, so that the flux there is
    a (u - 0) / (h / 2)."""
    a = np.asarray(a, dtype=float)
    out = []
    for ax in range(a.ndim):
        inner = harmonic_mean(
            a[_along(a.ndim, ax, slice(None, -1))], a[_along(a.ndim, ax, slice(1, None))]
        )
        walls = [2.0 * a[_along(a.ndim, ax, wall)] for wall in (slice(0, 1), slice(-1, None))]
        out.append(np.concatenate([walls[0], inner, walls[1]], axis=ax))
    return out


def cell_diffusion_operator(a: np.ndarray, h: float) -> sp.csr_matrix:
    """The matrix of -div(a grad .) on a cell-centred grid: `a` and the unknowns at the n^d
    cell centres (C order), u = 0 on the walls, which lie on the cells' outer faces
    (`cell_face_coefficients`). Symmetric positive definite for a > 0, on the stencil pattern
    of the node grid's n^d interior nodes (`stencil_pattern`). Second-order accurate at the
    centres (the wall closure is first order locally, second order globally; tested with a
    manufactured solution). By the compiled kernel where it is built, else in numpy
    (`stencil_of_faces`): the same bits (tested)."""
    a = np.asarray(a)
    if not _kernel_takes(a, cells=True):
        return stencil_of_faces(cell_face_coefficients(a), h)
    return _kernel_operator(a, h, cells=True)[0]
