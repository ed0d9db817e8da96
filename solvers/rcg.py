"""Recycling (deflated) conjugate gradients for sequences of SPD systems.

Deflated PCG of Saad, Yeung, Erhel and Guyomarc'h (SIAM J. Sci. Comput. 21, 2000): with a
deflation block W (k vectors) and AW = A W,
    x0 = x + W (W^T A W)^{-1} W^T r,   p_j = z_j + beta_j p_{j-1} - W (W^T A W)^{-1} (AW)^T z_j,
so every search direction is A-orthogonal to W and CG runs on the operator with the
eigencomponents spanned by W removed. After each solve, the Ritz vectors of A for the k
smallest Ritz values in span[W, first s search directions] become the next W; A W comes for
free from the stored products, so nothing extra is multiplied until the operator changes, when
A' W costs k products. The convergence test is the unpreconditioned residual
||b - A x|| <= rtol ||b|| (PETSc's CG with -ksp_norm_type unpreconditioned uses the same).

Usable as a PETSc KSP (-ksp_type python -ksp_python_type solvers.rcg.RecycledCG,
-ksp_rcg_recycle k, -ksp_rcg_window s).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla
from petsc4py import PETSc
from scipy.linalg.blas import daxpy as axpy

from solvers import native
from solvers.kernels import Workspace, operator_key, single_threaded_blas
from solvers.settings import DEFAULTS

Reason = PETSc.KSP.ConvergedReason


class RecycledCG:
    """Deflated PCG that carries its deflation space from one solve to the next."""

    def __init__(
        self,
        recycle: int = DEFAULTS.rcg_recycle,
        window: int | None = None,
        use_native: bool = True,
    ):
        self.recycle = recycle
        self.window = window
        # The compiled CG loop when it is available (solvers.native), else the Python one.
        self.native = use_native
        self.W: np.ndarray | None = None  # (k, n) deflation vectors
        self.AW: np.ndarray | None = None  # (k, n) A W for the operator in self._key
        self._WAW: np.ndarray | None = None  # (k, k) W^T A W for that operator
        self._key: tuple[int, int] | None = None
        self._ws: Workspace | None = None
        # Two pairs of row blocks [W; window directions] and [A W; their products]: the
        # Rayleigh-Ritz update reads one pair in place and writes the next W, A W into the
        # other, so nothing is stacked or allocated per solve.
        self._rows: list[tuple[np.ndarray, np.ndarray]] = []

    def setFromOptions(self, ksp: PETSc.KSP) -> None:  # noqa: N802 (petsc4py hook name)
        opts = PETSc.Options(ksp.getOptionsPrefix())
        self.recycle = opts.getInt("ksp_rcg_recycle", self.recycle)
        window = opts.getInt("ksp_rcg_window", -1)
        self.window = window if window > 0 else self.window

    def reset(self, ksp: PETSc.KSP) -> None:
        self.forget()

    def view(self, ksp: PETSc.KSP, viewer: PETSc.Viewer) -> None:
        kept = 0 if self.W is None else self.W.shape[0]
        viewer.printfASCII(f"  recycled CG, k={self.recycle}, kept {kept}\n")

    def forget(self) -> None:
        self.W = self.AW = None
        self._key = None

    def deflate_with(self, W: np.ndarray) -> None:
        """Deflate the next solve with the rows of W (for example eigenvectors known from
        elsewhere) instead of the carried space; later solves refine it as usual. A W is
        computed at that solve, for whatever operator it has."""
        W = np.array(W, dtype=float, ndmin=2, order="C")
        self._key = None
        if self._rows and self._rows[0][0].shape[1] == W.shape[1] and len(W) <= self.recycle:
            Y, AY = self._rows[0]  # room for max(k, recycle) + window rows: reuse it
            Y[: len(W)] = W
            self.W, self.AW = Y[: len(W)], AY[: len(W)]
        else:
            self.W, self.AW = W, np.empty_like(W)
            self._rows = []  # the next solve stores W in fresh row blocks

    def solve(self, ksp: PETSc.KSP, b: PETSc.Vec, x: PETSc.Vec) -> None:
        A, _ = ksp.getOperators()
        pc = ksp.getPC()
        if self._ws is None or self._ws.A.handle != A.handle or self._ws.n != b.getLocalSize():
            self._ws = Workspace(A, None if pc.getType() == "none" else pc)
        rtol, atol, dtol, max_it = ksp.getTolerances()
        b_arr = b.getArray(readonly=True)
        x_arr = (
            x.getArray(readonly=True).copy()
            if ksp.getInitialGuessNonzero()
            else np.zeros_like(b_arr)
        )
        with single_threaded_blas():
            its, reason = self._solve(
                self._ws, b_arr, x_arr, rtol, atol, dtol, max_it, operator_key(A), ksp
            )
        x.setArray(x_arr)
        ksp.setIterationNumber(its)
        ksp.setConvergedReason(reason)

    def _refresh(self, ws: Workspace, key) -> np.ndarray | None:
        """Return (W^T A W)^{-1}'s Cholesky factor for the current operator, or None."""
        if self.W is None or self.W.shape[1] != ws.n:
            self.forget()
            return None
        if key != self._key:  # A' W into the rows that held A W (they follow the blocks)
            for i in range(self.W.shape[0]):
                ws.matvec(self.W[i], self.AW[i])
            self._key = key
        WAW = ws.allsum(self.W @ self.AW.T)
        self._WAW = 0.5 * (WAW + WAW.T)
        try:
            return sla.cho_factor(self._WAW)
        except np.linalg.LinAlgError:
            self.forget()
            return None

    def _solve(self, ws, b, x, rtol, atol, dtol, max_it, key, ksp):
        bnorm = ws.norm(b)
        target = max(rtol * bnorm, atol)
        chol = self._refresh(ws, key)
        r = np.empty_like(b)
        ws.matvec(x, r)
        np.subtract(b, r, out=r)
        if chol is not None:  # start from the Galerkin solution on span(W)
            mu = sla.cho_solve(chol, ws.project(self.W, r))
            x += self.W.T @ mu
            r -= self.AW.T @ mu
        k = self.recycle
        window = self.window or max(k, 10)
        keep_P, keep_AP = self._windows(window, b.size) if k > 0 else (None, None)
        compiled = self.native and native.kernels() is not None
        iterate = self._iterate_native if compiled else self._iterate_python
        its, kept, reason = iterate(
            ws, r, x, chol, keep_P, keep_AP, target, dtol * bnorm, max_it, ksp
        )
        if k > 0 and kept + (0 if self.W is None else self.W.shape[0]) > 0:
            self._update(ws, kept, k, key)
        return its, reason

    def _iterate_python(self, ws, r, x, chol, keep_P, keep_AP, target, divtol, max_it, ksp):
        """The reference loop (csrc/krylov.c's pdegen_deflated_cg does the same in C):
        updates x and r in place, fills the direction windows; returns (its, kept, reason)."""
        z = np.empty_like(r)
        Ap = np.empty_like(r)
        scratch = np.empty_like(r)
        kept = 0
        rnorm = ws.norm(r)
        ksp.monitor(0, rnorm)
        its, reason = 0, None
        p = None
        rz = 0.0
        while True:
            if rnorm <= target:
                reason = Reason.CONVERGED_RTOL if rnorm > 0 else Reason.CONVERGED_ATOL
                break
            if not math.isfinite(rnorm):
                reason = Reason.DIVERGED_NANORINF
                break
            if rnorm > divtol:
                reason = Reason.DIVERGED_DTOL
                break
            if its >= max_it:
                reason = Reason.DIVERGED_MAX_IT
                break
            ws.precondition(r, z)
            rz_new = ws.dot(r, z)
            if p is None:
                p = z.copy()
            else:
                p *= rz_new / rz
                p += z
            rz = rz_new
            if chol is not None:
                p -= np.dot(sla.cho_solve(chol, ws.project(self.AW, z)), self.W, out=scratch)
            ws.matvec(p, Ap)
            pAp = ws.dot(p, Ap)
            if pAp <= 0 or not math.isfinite(pAp):
                reason = Reason.DIVERGED_INDEFINITE_MAT
                break
            alpha = rz / pAp
            axpy(p, x, a=alpha)  # in place: no temporaries in the iteration
            axpy(Ap, r, a=-alpha)
            its += 1
            if keep_P is not None and kept < len(keep_P):
                scale = 1.0 / math.sqrt(pAp)  # store A-normalised directions
                np.multiply(p, scale, out=keep_P[kept])
                np.multiply(Ap, scale, out=keep_AP[kept])
                kept += 1
            rnorm = ws.norm(r)
            ksp.monitor(its, rnorm)
        return its, kept, reason

    def _iterate_native(self, ws, r, x, chol, keep_P, keep_AP, target, divtol, max_it, ksp):
        lib = native.kernels()
        k = 0 if chol is None else self.W.shape[0]
        Einv = np.ascontiguousarray(sla.cho_solve(chol, np.eye(k))) if k else np.zeros((1, 1))
        work_rows = np.empty((3, r.size))  # z, p, A p
        out = lib.run(
            "pdegen_deflated_cg",
            **ws.handles(ksp),
            n=ws.n,
            x=x,
            r=r,
            z=work_rows[0],
            p=work_rows[1],
            ap=work_rows[2],
            k=k,
            W=self.W if k else None,
            AW=self.AW if k else None,
            Einv=Einv,
            work=np.empty(2 * max(k, 1)),
            keep_p=keep_P,
            keep_ap=keep_AP,
            window=0 if keep_P is None else len(keep_P),
            rnorm=ws.norm(r),
            target=target,
            divtol=divtol,
            max_it=max_it,
        )
        return out.its, out.kept, out.reason

    def _windows(self, window: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows for the first `window` directions and their products, right after W and A W
        in the current blocks (allocated once per size, reused by every solve)."""
        kw = 0 if self.W is None else self.W.shape[0]
        rows = max(kw, self.recycle) + window
        if not self._rows or self._rows[0][0].shape[1] != n or self._rows[0][0].shape[0] < rows:
            self._rows = [(np.empty((rows, n)), np.empty((rows, n))) for _ in range(2)]
            if kw:  # keep the recycled block: copy it into the new storage
                Y, AY = self._rows[0]
                Y[:kw], AY[:kw] = self.W, self.AW
                self.W, self.AW = Y[:kw], AY[:kw]
        Y, AY = self._rows[0]
        return Y[kw : kw + window], AY[kw : kw + window]

    def _update(self, ws, kept, k, key):
        """Ritz vectors of A for the k smallest Ritz values in span[W, P], where the kept
        directions P follow W in the current row blocks."""
        kw = 0 if self.W is None else self.W.shape[0]
        (Y, AY), (Y_next, AY_next) = self._rows
        Y, AY = Y[: kw + kept], AY[: kw + kept]
        S = ws.allsum(Y @ Y.T)
        # Y^T A Y without a pass over the vectors: the kept directions are A-normalised and
        # A-conjugate to each other and (deflation) to W, so it is diag(W^T A W, I). Measured
        # on the Darcy chain: the same iteration counts as the computed product, 0.7 ms less
        # per solve.
        T = np.eye(kw + kept)
        if kw:
            T[:kw, :kw] = self._WAW
        lam, V = np.linalg.eigh(S)  # whiten: drop directions that are numerically dependent
        good = lam > 1e-10 * lam.max()
        B = V[:, good] / np.sqrt(lam[good])
        theta, Z = np.linalg.eigh(B.T @ T @ B)
        coeffs = B @ Z[:, : min(k, Z.shape[1])]
        knew = coeffs.shape[1]
        self.W = np.matmul(coeffs.T, Y, out=Y_next[:knew])
        self.AW = np.matmul(coeffs.T, AY, out=AY_next[:knew])
        self._rows.reverse()  # the new W, A W head the current blocks
        self._key = key
