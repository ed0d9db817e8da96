"""Array-level building blocks shared by our Krylov methods.

The recycled blocks and Krylov bases are numpy arrays with one basis vector per row, so that
projections are single BLAS calls (gemv/gemm) instead of Python loops over PETSc Vecs. PETSc
does the operator and preconditioner work on Vecs that borrow those rows (VecPlaceArray, no
copies). Inner products are summed over the operator's communicator, so the same code runs on
one process or on a distributed matrix.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import numpy as np
from petsc4py import PETSc
from scipy.linalg import solve_triangular
from threadpoolctl import ThreadpoolController


@functools.cache
def _blas_controller() -> ThreadpoolController:
    # Created on first use, after petsc4py has loaded the system BLAS PETSc links to, so
    # that library is limited along with numpy's.
    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run BLAS on one thread inside our solvers.

    Their BLAS work is tall-skinny products over long vectors: memory-bound, so extra threads
    buy nothing on one solve and fight the other workers or ranks that pdegen runs one per
    core (measured: 3x slower per GCRO-DR iteration with two OpenBLAS threads on a busy
    2-core machine). Re-entrant: inside another such block (a batch, `pdegen.run.batch.solve_rows`,
    around its solves) it does nothing, instead of setting and restoring the limit again
    (15 us a block).
    """
    global _single_threaded_depth
    if _single_threaded_depth:  # already limited (a batch around its solves): nothing to do
        yield
        return
    _single_threaded_depth += 1
    try:
        with _blas_controller().limit(limits=1, user_api="blas"):
            yield
    finally:
        _single_threaded_depth -= 1


#: how many `single_threaded_blas` blocks the process is inside (pdegen's solving processes
#: are single-threaded: one task per Dask worker, one rank per process)
_single_threaded_depth = 0


class Workspace:
    """Operator/preconditioner application on numpy rows, and global reductions."""

    def __init__(self, A: PETSc.Mat, pc: PETSc.PC | None):
        self.A = A
        self.pc = pc
        self.n = A.getLocalSize()[0]
        comm = A.getComm()
        self._mpi = comm.tompi4py() if comm.getSize() > 1 else None
        self._src = PETSc.Vec().createMPI((self.n, PETSc.DECIDE), comm=comm)
        self._dst = self._src.duplicate()

    def _apply(self, op, src: np.ndarray, dst: np.ndarray) -> None:
        # A non-contiguous row would be copied by petsc4py and the result written to the copy.
        if not (dst.flags.c_contiguous and dst.dtype == np.float64):
            raise ValueError("destination rows must be C-contiguous float64 arrays")
        self._src.placeArray(np.ascontiguousarray(src))
        self._dst.placeArray(dst)
        try:
            op(self._src, self._dst)
        finally:
            self._src.resetArray()
            self._dst.resetArray()

    def handles(self, ksp: PETSc.KSP) -> dict[str, int | None]:
        """The C handles the compiled kernels take, by their field names in csrc/kernels.h:
        the KSP (for its monitors), A, the PC or None, and the two work Vecs that borrow rows."""
        pc = None if self.pc is None else self.pc.handle
        return {
            "ksp": ksp.handle,
            "A": self.A.handle,
            "pc": pc,
            "src": self._src.handle,
            "dst": self._dst.handle,
        }

    def matvec(self, src: np.ndarray, dst: np.ndarray) -> None:
        self._apply(self.A.mult, src, dst)

    def precondition(self, src: np.ndarray, dst: np.ndarray) -> None:
        if self.pc is None:
            np.copyto(dst, src)
        else:
            self._apply(self.pc.apply, src, dst)

    def allsum(self, local: np.ndarray | float) -> np.ndarray | float:
        if self._mpi is None:
            return local
        from mpi4py import MPI

        out = np.array(local, dtype=float, copy=True)
        self._mpi.Allreduce(MPI.IN_PLACE, out, op=MPI.SUM)
        return out if np.ndim(local) else float(out)

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        return self.allsum(float(a @ b))

    def norm(self, a: np.ndarray) -> float:
        return float(np.sqrt(self.dot(a, a)))

    def project(self, rows: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Coefficients rows @ w (one global reduction for all rows)."""
        return self.allsum(rows @ w)

    def orthonormalise(self, rows: np.ndarray, gram: np.ndarray | None = None) -> np.ndarray:
        """Return R with rows = R^T Q_rows, overwriting `rows` with Q_rows (CholeskyQR2).

        Two rounds of Cholesky QR are as accurate as Householder QR for the well-conditioned
        blocks met here, need one reduction each, and work unchanged on distributed rows.
        `gram` is rows rows^T when the caller has it already (it saves the first GEMM).
        """
        R_total = np.eye(rows.shape[0])
        for _ in range(2):
            gram = self.allsum(rows @ rows.T) if gram is None else gram
            R = np.linalg.cholesky(gram).T  # gram = R^T R
            gram = None
            rows[:] = solve_triangular(R, rows, trans="T", check_finite=False)
            R_total = R @ R_total
        return R_total


def operator_key(A: PETSc.Mat) -> tuple[int, int]:
    """Identifies a matrix and the version of its values: changes when A is refilled."""
    return (A.handle, A.stateGet())
