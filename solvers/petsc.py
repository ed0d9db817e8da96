"""Thin glue between scipy/numpy and petsc4py: matrices, vectors, preconditioners, KSPs.

Every solver in this package is a PETSc KSP configured through the options database, so any
choice (method, preconditioner, tolerance) can also be changed from the command line.
"""

from __future__ import annotations

import typing

import numpy as np
import scipy.sparse as sp
from petsc4py import PETSc

from solvers.registry import PRECONDITIONERS, unknown


@typing.runtime_checkable
class SelfFilling(typing.Protocol):
    """A matrix that writes its own values into a sequential AIJ Mat of its pattern, without
    a CSR array in between (`pdegen.discretisation.operators.DiffusionMatrix`): the pattern's
    CSR arrays, the shape, `fill_aij(mat) -> bool` (False: it could not, nothing written)
    and `tocsr()`."""

    indptr: np.ndarray
    indices: np.ndarray
    shape: tuple[int, int]

    def fill_aij(self, mat: PETSc.Mat) -> bool: ...

    def tocsr(self) -> sp.csr_matrix: ...


class MatrixSlot:
    """One PETSc AIJ matrix whose values are replaced system after system.

    Reusing the same Mat keeps PETSc's nonzero state unchanged when the sparsity pattern is
    unchanged, so factorisations reuse their symbolic phase and preconditioners their
    structure; only a pattern change creates a new Mat. The family's shared read-only
    stencil pattern is recognised by its memory (the same read-only arrays, or whole views
    of them), without comparing the arrays.

    New values for an unchanged pattern go straight into PETSc's own value array, one
    memcpy (`pdegen_set_aij_values` in solvers/csrc/assembly.c), which raises the Mat's state
    so that factorisations and smoothers (SOR's inverted diagonal is keyed on that state)
    see the new operator; where the compiled kernels are not built, MatSetValuesCSR and an
    assembly do the same. Why: MatSetValuesCSR searches every row for every entry, 4.4 ms
    for a 421 x 421 Darcy matrix against 0.7 ms for the copy, the largest part of a
    sample's time outside the solve (docs/benchmarks.md, "Where a sample's time goes").
    PETSc's COO interface (MatSetValuesCOO) was measured too: 0.7 ms warm but slower in the
    pipeline, and its map costs 16 bytes per entry, more than the matrix's own 12.
    """

    def __init__(
        self,
        comm=PETSc.COMM_SELF,
        block_size: int = 1,
        near_null_space: PETSc.NullSpace | None = None,
    ):
        self.comm = comm
        #: unknowns per node of a vector-valued operator (interleaved), PETSc's block size
        self.block_size = block_size
        #: attached to every Mat this slot creates (GAMG's coarse spaces: `rigid_body_modes`)
        self.near_null_space = near_null_space
        self.mat: PETSc.Mat | None = None
        self._pattern: tuple[np.ndarray, np.ndarray] | None = None
        self._source: object | None = None

    def _same_pattern(self, indptr: np.ndarray, indices: np.ndarray) -> bool:
        if self.mat is None or self._pattern is None:
            return False
        kept_indptr, kept_indices = self._pattern
        if _same_frozen_memory(indptr, kept_indptr) and _same_frozen_memory(indices, kept_indices):
            return True  # the family's shared, read-only stencil pattern
        return np.array_equal(kept_indptr, indptr) and np.array_equal(kept_indices, indices)

    def load(self, A: sp.spmatrix | PETSc.Mat | SelfFilling) -> PETSc.Mat:
        """The Mat for A. The very same matrix object as last time is not reloaded, so PETSc
        sees an unchanged operator and keeps its factorisation or preconditioner. A matrix
        that fills itself (`SelfFilling`, `pdegen.discretisation.operators.DiffusionMatrix`)
        writes its values into a Mat of its pattern; otherwise (the first, or no kernel) it is
        loaded as its CSR."""
        if A is self._source and self.mat is not None:
            return self.mat
        self._source = A
        # duck-typed: a runtime Protocol check costs 30-60 us, once per system solved
        if callable(getattr(A, "fill_aij", None)):
            if (
                self._same_pattern(A.indptr, A.indices)
                and self._sequential()
                and A.fill_aij(self.mat)
            ):
                return self.mat
            A = A.tocsr()
        if isinstance(A, PETSc.Mat):
            self.mat, self._pattern = A, None
            if self.near_null_space is not None:
                A.setNearNullSpace(self.near_null_space)
            return A
        if A.format != "csr":  # a CSR one kept as it is: its canonical-format flag with it
            A = sp.csr_matrix(A)
        A.sum_duplicates()  # sorted, each entry once: values are copied by position
        indptr = A.indptr.astype(PETSc.IntType, copy=False)
        indices = A.indices.astype(PETSc.IntType, copy=False)
        data = A.data.astype(PETSc.ScalarType, copy=False)
        if self._same_pattern(indptr, indices):
            self._refill(data)
            return self.mat
        # on several ranks A is this rank's rows of a square operator (global columns)
        size = A.shape if self.comm.getSize() == 1 else ((A.shape[0], A.shape[1]),) * 2
        self.mat = PETSc.Mat().createAIJ(
            size=size, bsize=self.block_size, csr=(indptr, indices, data), comm=self.comm
        )
        self.mat.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
        if self.near_null_space is not None:
            self.mat.setNearNullSpace(self.near_null_space)
        self.mat.assemble()
        shared = not (indptr.flags.writeable or indices.flags.writeable)
        # a read-only pattern (`pdegen.discretisation.operators.stencil_pattern`) is kept by
        # reference, so the next system's is recognised by its memory; any other is copied,
        # since its owner may change it
        self._pattern = (indptr, indices) if shared else (indptr.copy(), indices.copy())
        return self.mat

    def _sequential(self) -> bool:
        """Whether the Mat is a sequential AIJ one, whose value array the kernels write."""
        return self.mat.getType() == PETSc.Mat.Type.SEQAIJ

    def _refill(self, data: np.ndarray) -> None:
        """The same pattern's new values into the Mat (see the class notes)."""
        from solvers.native import kernels

        lib = kernels() if self._sequential() else None
        if lib is None:
            indptr, indices = self._pattern
            self.mat.setValuesCSR(indptr, indices, data)
            self.mat.assemble()
            return
        data = np.ascontiguousarray(data, dtype=np.float64)
        lib.run("pdegen_set_aij_values", A=self.mat.handle, values=data, nnz=data.size)


def _same_frozen_memory(array: np.ndarray, kept: np.ndarray) -> bool:
    """Whether `array` is the read-only `kept` itself or a whole read-only view of it.

    Why not identity: scipy's CSR constructor keeps the shared pattern's indptr but hands
    back a view of its indices (`prune` slices them), so identity failed for every
    stencil matrix and each sample compared 1.1 million indices at 421 x 421 (0.2 ms).
    Equal address, shape and dtype with both read-only is the same content: `kept` is held
    by the slot, so its memory cannot be reused while it lives, and a view of a read-only
    array cannot be made writeable.
    """
    return (
        not array.flags.writeable
        and not kept.flags.writeable
        and array.dtype == kept.dtype
        and array.shape == kept.shape
        and array.strides == kept.strides
        and array.ctypes.data == kept.ctypes.data
    )


def rigid_body_modes(coordinates: np.ndarray, comm=PETSc.COMM_SELF) -> PETSc.NullSpace:
    """The rigid-body modes of nodes at `coordinates` (nodes, d), for interleaved unknowns (d
    per node): d translations and d (d - 1) / 2 rotations, orthonormal. The near-null space
    GAMG needs for elasticity; the same modes as PETSc's `MatNullSpaceCreateRigidBody`.

    Why not that function: it orthonormalises the rotations with VecMDot, and PETSc's VecMDot
    takes BLAS GEMV wherever the vectors it is given happen to lie at one stride in memory,
    its own loop otherwise: separately allocated vectors are adjacent in some processes and
    not in others, so the modes (and GAMG's prolongator from them, and every solution) rounded
    differently in about one process in thirty (measured: 20 of 678 processes solving one 2D
    elasticity system, only the rotation columns of the prolongator differing; 0 of 100 with
    these). Built here in a fixed order of operations on one array, without BLAS (numpy's
    elementwise products and its pairwise sums, whose order depends on neither memory nor
    threads; OpenBLAS splits long dot products across its threads, and the serial engine runs
    as many as there are cores where Dask workers run one), they are the same bits in every
    process. Sequential vectors: `comm` is a one-process communicator, as before.
    """
    x = np.asarray(coordinates, dtype=PETSc.ScalarType)
    nodes, dim = x.shape
    if dim not in (2, 3):
        raise ValueError(f"rigid-body modes of {dim}-dimensional nodes: 2 or 3 allowed")
    # rotation (i, j): component i is x_j and component j is -x_i (PETSc's order and signs)
    rotations = ((1, 0),) if dim == 2 else ((0, 1), (2, 1), (0, 2))
    modes = np.zeros((dim + len(rotations), nodes, dim), dtype=PETSc.ScalarType)
    for axis in range(dim):
        modes[axis, :, axis] = 1.0 / np.sqrt(nodes)  # PETSc's sN
    for r, (i, j) in enumerate(rotations):
        modes[dim + r, :, i] = x[:, j]
        modes[dim + r, :, j] = -x[:, i]
    flat = modes.reshape(len(modes), -1)
    for k in range(dim, len(flat)):  # classical Gram-Schmidt against the earlier modes
        dots = [float(np.add.reduce(flat[j] * flat[k])) for j in range(k)]
        for j, dot in enumerate(dots):
            flat[k] -= dot * flat[j]
        norm = float(np.sqrt(np.add.reduce(flat[k] * flat[k])))
        if norm > 0.0:  # one free node has no rotation: left zero, as PETSc's VecNormalize does
            flat[k] /= norm
    vectors = [vec_from_array(mode, comm, block_size=dim) for mode in flat]
    return PETSc.NullSpace().create(constant=False, vectors=vectors, comm=comm)


def vec_from_array(
    array: np.ndarray, comm=PETSc.COMM_SELF, block_size: int | None = None
) -> PETSc.Vec:
    """A PETSc Vec holding a copy of `array` (of PETSc block size `block_size`, if given);
    on a communicator of several ranks, `array` is this rank's part of a parallel Vec."""
    if comm.getSize() > 1:
        vec = PETSc.Vec().createMPI((array.size, PETSc.DETERMINE), bsize=block_size, comm=comm)
        vec.array[:] = array
        return vec
    vec = PETSc.Vec().createSeq(array.size, bsize=block_size, comm=comm)
    vec.array[:] = array
    return vec


def configure_pc(pc: PETSc.PC, name: str) -> None:
    """Set a preconditioner by its pdegen name (`solvers.registry.PRECONDITIONERS`).

    A geometric one (`mg`) is then a one-level PCMG: it gets its hierarchy from
    `solvers.multigrid.configure_multigrid` once the grid is known (`ChainSolver` does that
    when it is built with the grid, or at its first solve from the matrix)."""
    if name not in PRECONDITIONERS:
        raise unknown("preconditioner", name, PRECONDITIONERS)
    entry = PRECONDITIONERS[name]
    pc.setType(entry.petsc_type)
    if entry.factorisation:
        pc.setFactorOrdering("nd")


def true_relative_residual(
    A: PETSc.Mat, b: PETSc.Vec, x: PETSc.Vec, work: PETSc.Vec | None = None
) -> float:
    """||b - A x|| / ||b|| recomputed from scratch (not the solver's running estimate);
    `work` (like b) is overwritten instead of allocating a vector per call."""
    r = work if work is not None else b.duplicate()
    A.mult(x, r)
    r.aypx(-1.0, b)
    bnorm = b.norm()
    return r.norm() / bnorm if bnorm > 0 else r.norm()
