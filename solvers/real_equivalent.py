"""Complex systems in real arithmetic: the real equivalent (2 x 2 block) form, interleaved.

A complex matrix M = R + i S acting on z = x + i y is, in real numbers, the 2n x 2n matrix
[[R, -S], [S, R]] acting on (x, y): Day and Heroux's "K1" form ("Solving complex-valued
linear systems via equivalent real formulations", SIAM J. Sci. Comput. 23, 2001), which they
found the one that preconditions like the complex system. The real and imaginary parts of each
unknown are stored next to each other (unknown j at 2j and 2j + 1), so each node carries a 2 x
2 block, as a DMDA with two degrees of freedom numbers them: geometric multigrid then
interpolates both parts with the same weights (`solvers.multigrid`, `dof=2`).

Why here: our PETSc is built with real scalars, and the complex-shifted Laplacian of Erlangga,
Oosterlee and Vuik (`pc: csl`) is a complex preconditioner for a real Helmholtz matrix A. The
Krylov method then runs on the real equivalent of A regarded as complex, K = [[A, 0], [0, A]]
(interleaved: kron(A, I2)), with right-hand side (b, 0): the solution is (x, 0), and a residual
||(b, 0) - K (x, y)|| <= rtol ||b|| bounds ||b - A x|| by the same rtol.

Both forms are built from a pattern kept per chain: the index arrays are made once for a
sparsity pattern (the families' patterns never change along a chain), and each new matrix only
scatters its values, so PETSc sees the same nonzero state and redoes only numeric work.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def interleave(real: np.ndarray, imaginary: np.ndarray | None = None) -> np.ndarray:
    """(x, y) interleaved: x at even places, y (zero when None) at odd ones."""
    out = np.zeros(2 * real.size)
    out[0::2] = real
    if imaginary is not None:
        out[1::2] = imaginary
    return out


class _Pattern:
    """Where the entries of a real CSR matrix go in its doubled, interleaved form.

    Entry e of row i goes to row 2i, column 2 col(e), and to row 2i + 1, column 2 col(e) + 1;
    with `coupling`, each row also gets the other part of its own unknown (column 2i + 1 in row
    2i, 2i in row 2i + 1), placed in column order. Rows keep their columns sorted.
    """

    def __init__(self, A: sp.csr_matrix, coupling: bool):
        n = A.shape[0]
        indptr, indices = A.indptr, A.indices
        self.indptr_source, self.indices_source = indptr.copy(), indices.copy()
        per_row = np.diff(indptr)
        rows = np.repeat(np.arange(n), per_row)
        extra = 1 if coupling else 0
        out_per_row = np.repeat(per_row + extra, 2)
        out_indptr = np.zeros(2 * n + 1, dtype=np.int64)
        np.cumsum(out_per_row, out=out_indptr[1:])
        offset = np.arange(indices.size) - indptr[rows]  # place of each entry in its row
        if coupling:
            # in row 2i the coupling column 2i + 1 follows every column <= 2i; in row 2i + 1
            # the coupling column 2i precedes every column >= 2i + 1
            after_even = (indices > rows).astype(np.int64)  # entries right of 2i + 1 in 2i
            after_odd = (indices >= rows).astype(np.int64)  # entries right of 2i in 2i + 1
        else:
            after_even = after_odd = 0
        self.even = out_indptr[2 * rows] + offset + after_even
        self.odd = out_indptr[2 * rows + 1] + offset + after_odd
        out_indices = np.empty(out_indptr[-1], dtype=np.int64)
        out_indices[self.even] = 2 * indices
        out_indices[self.odd] = 2 * indices + 1
        if coupling:
            # the coupling entries: count the row's columns left of the diagonal
            left_even = np.bincount(rows, weights=(indices <= rows), minlength=n).astype(np.int64)
            left_odd = np.bincount(rows, weights=(indices < rows), minlength=n).astype(np.int64)
            self.coupling_even = out_indptr[0:-1:2] + left_even
            self.coupling_odd = out_indptr[1::2] + left_odd
            out_indices[self.coupling_even] = 2 * np.arange(n) + 1
            out_indices[self.coupling_odd] = 2 * np.arange(n)
        self.indptr = out_indptr
        self.indices = out_indices
        # read-only, so that `solvers.petsc.MatrixSlot` recognises the pattern by its memory
        self.indptr.flags.writeable = False
        self.indices.flags.writeable = False
        self.shape = (2 * n, 2 * n)

    def matches(self, A: sp.csr_matrix) -> bool:
        return np.array_equal(A.indptr, self.indptr_source) and np.array_equal(
            A.indices, self.indices_source
        )

    def matrix(self, data: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((data, self.indices, self.indptr), shape=self.shape, copy=False)


def _canonical(A: sp.spmatrix) -> sp.csr_matrix:
    """A as CSR with sorted columns, each entry once: what `_Pattern`'s slots assume (an
    unsorted or duplicated row would leave slots unwritten)."""
    A = sp.csr_matrix(A)
    if not A.has_canonical_format:
        A = A.copy()
        A.sum_duplicates()
    return A


class RealEquivalent:
    """Builds the real equivalent forms of a chain's matrices, one pattern at a time."""

    def __init__(self) -> None:
        self._patterns: dict[bool, _Pattern] = {}

    def _pattern(self, A: sp.csr_matrix, coupling: bool) -> _Pattern:
        pattern = self._patterns.get(coupling)
        if pattern is None or not pattern.matches(A):
            pattern = self._patterns[coupling] = _Pattern(A, coupling)
        return pattern

    def real_operator(self, A: sp.spmatrix) -> sp.csr_matrix:
        """kron(A, I2): the real matrix A as a complex one, in real equivalent form."""
        A = _canonical(A)
        pattern = self._pattern(A, coupling=False)
        data = np.empty(pattern.indices.size)
        data[pattern.even] = A.data
        data[pattern.odd] = A.data
        return pattern.matrix(data)

    def shifted_operator(self, R: sp.spmatrix, shift: np.ndarray | float) -> sp.csr_matrix:
        """The real equivalent form of R + i diag(shift): [[R, -S], [S, R]] interleaved, S the
        diagonal `shift` (one value, or one per unknown)."""
        R = _canonical(R)
        pattern = self._pattern(R, coupling=True)
        s = np.broadcast_to(np.asarray(shift, dtype=float), (R.shape[0],))
        data = np.empty(pattern.indices.size)
        data[pattern.even] = R.data
        data[pattern.odd] = R.data
        data[pattern.coupling_even] = -s
        data[pattern.coupling_odd] = s
        return pattern.matrix(data)


__all__ = ["RealEquivalent", "interleave"]
