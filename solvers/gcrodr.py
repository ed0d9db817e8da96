"""GCRO-DR: GMRES with deflated restarting and subspace recycling across systems.

Parks, de Sturler, Mackey, Johnson, Maiti (SIAM J. Sci. Comput. 28, 2006), in its flexible,
right-preconditioned form (Carvalho, Giraud, Le Tallec, 2011) so that:
- the convergence test is on the true (unpreconditioned) residual ||b - A x|| <= rtol ||b||,
  the same test our PETSc baselines use (GMRES with right preconditioning, CG with the
  unpreconditioned norm);
- the recycled block U lives in the solution space, so carrying it to the next system needs
  only C = A' U (k products with the new matrix), whatever the preconditioner does.

Invariants, with W = [U Z] (Z = M^{-1} V) and What = [C V] orthonormal:
    A U = C,   A W = What G,   G = [[I, B], [0, Hbar]].
The least-squares problem splits: y_Z = argmin ||beta e1 - Hbar y||, y_U = -B y_Z, so the
residual estimate is GMRES's Givens recurrence on Hbar alone.

After the first cycle of each solve, and every `update_every`-th cycle after it, the k
harmonic Ritz vectors of smallest magnitude of A M^{-1} become the new U: the generalised
problem G^T G z = theta G^T (What^T Vhat) z with Vhat = [M U, V] (Parks et al. eq. 2.13), for
which M U is carried along with U. They are carried to the next system. C^T (M U), which that
problem needs, goes from one refresh to the next by k x k algebra, not a pass over vectors.
When the operator is unchanged (same Mat, same values) C is kept; otherwise it is recomputed
and re-orthonormalised. Orthogonalisation is one classical Gram-Schmidt pass, repeated only
on severe cancellation, and each new C is checked orthonormal (one k x k Gram matrix) and
repaired if not; a cycle that raises the true residual (impossible in exact arithmetic) drops
the recycled space.

Usable as a PETSc KSP:  ksp.setType("python"); ksp.setPythonContext(GCRODR(...)), or from the
options database: -ksp_type python -ksp_python_type solvers.gcrodr.GCRODR
(-ksp_gcrodr_restart m, -ksp_gcrodr_recycle k, -ksp_gcrodr_update_every s).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla
from petsc4py import PETSc
from scipy.linalg import lapack

from solvers import native
from solvers.kernels import Workspace, operator_key, single_threaded_blas
from solvers.settings import DEFAULTS

Reason = PETSc.KSP.ConvergedReason

# Refresh the recycle space after the first cycle of each solve, then every UPDATE_EVERY-th.
# A refresh (four k x (m+1) x n products and an m x m QZ) costs as much as 20-35 Arnoldi
# steps at k = 20, while the harmonic Ritz space changes little from one cycle to the next.
# Measured on the sorted chains (30 systems, rtol 1e-8, iterations per solve, every cycle ->
# every third): Darcy jacobi 260 -> 259, none 425 -> 409, 25-30% less time; Helmholtz jacobi
# 139 -> 164, 22% less time.
UPDATE_EVERY = 3

# Largest |C C^T - I| entry accepted for the recycled block before it is re-orthonormalised.
ORTHONORMAL_TOL = 1e-12


def smallest_harmonic_ritz(G: np.ndarray, B: np.ndarray, k: int) -> np.ndarray:
    """A real orthonormal basis (columns) of the k harmonic Ritz vectors of smallest |theta|.

    With Ahat Vhat = What G (Vhat the candidate basis, What orthonormal) and B = What^T Vhat,
    harmonic Ritz pairs solve G^T G z = theta G^T B z (Parks et al. 2006, eq. 2.13). Complex
    pairs enter as their real and imaginary parts, so the basis is real and spans the same
    space.
    """
    p = G.shape[1]
    k = min(k, p)
    # LAPACK's dggev directly: scipy.linalg.eig's checks and complex conversions cost more
    # than the 40 x 40 QZ itself, once per cycle. Complex pairs come as adjacent columns
    # (real part, imaginary part), which is the real basis wanted here.
    alphar, alphai, beta, _, vr, _, info = lapack.dggev(
        G.T @ G, G.T @ B, compute_vl=0, compute_vr=1, overwrite_a=1, overwrite_b=1
    )
    if info != 0:
        return np.zeros((p, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.hypot(alphar, alphai) / np.abs(beta)
    finite = np.isfinite(magnitude)
    order = np.argsort(np.where(finite, magnitude, np.inf), kind="stable")
    columns: list[np.ndarray] = []
    taken: set[int] = set()
    for i in order:
        if len(columns) >= k or not finite[i]:
            break
        if i in taken:
            continue
        if alphai[i] == 0:
            pair = [i]
        else:  # the pair occupies columns (j, j + 1) with alphai[j] > 0
            first = i if alphai[i] > 0 else i - 1
            pair = [first, first + 1]
        taken.update(pair)
        columns.extend(vr[:, j] for j in pair)
    if not columns:
        return np.zeros((p, 0))
    Q, R = np.linalg.qr(np.array(columns[:k]).T)
    keep = np.abs(np.diag(R)) > 1e-12 * max(1.0, np.abs(R).max())
    return Q[:, keep]


class GCRODR:
    """GCRO-DR(m, k) as a petsc4py `python` KSP context; the recycle space persists across
    solves with the same KSP (that is the point)."""

    def __init__(
        self,
        restart: int = DEFAULTS.restart,
        recycle: int = DEFAULTS.recycle,
        update_every: int = UPDATE_EVERY,
        use_native: bool = True,
    ):
        if update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}")
        self.restart = restart
        self.recycle = recycle
        # Harmonic Ritz refresh after the first cycle of each solve and then every
        # `update_every`-th cycle (see UPDATE_EVERY).
        self.update_every = update_every
        # The compiled Arnoldi loop when it is available (solvers.native), else the Python one.
        self.native = use_native
        self.U: np.ndarray | None = None  # (k, n): recycled solution-space vectors, A U = C
        self.C: np.ndarray | None = None  # (k, n): orthonormal
        # (k, n): M U, the recycled space in the preconditioned space of A M^{-1}, where the
        # harmonic Ritz problem lives; exact within a solve, carried over (approximately, it
        # only steers which subspace is kept) when the preconditioner changes with A.
        self.Uy: np.ndarray | None = None
        self._CtUy: np.ndarray | None = None  # (k, k): C (M U)^T, kept by small algebra
        self._key: tuple[int, int] | None = None
        self._ws: Workspace | None = None
        self.cycles = 0
        self.discarded = 0  # times the recycled space was dropped as numerically spoiled
        self.repairs = 0  # times C had lost orthogonality and was re-orthonormalised
        self._bases: tuple[np.ndarray, np.ndarray] | None = None
        self._blocks: tuple[np.ndarray, ...] = ()

    # --- petsc4py python-KSP hooks -------------------------------------------------------
    def setFromOptions(self, ksp: PETSc.KSP) -> None:  # noqa: N802 (petsc4py hook name)
        opts = PETSc.Options(ksp.getOptionsPrefix())
        self.restart = opts.getInt("ksp_gcrodr_restart", self.restart)
        self.recycle = opts.getInt("ksp_gcrodr_recycle", self.recycle)
        every = opts.getInt("ksp_gcrodr_update_every", self.update_every)
        if every < 1:
            raise ValueError(f"-ksp_gcrodr_update_every must be >= 1, got {every}")
        self.update_every = every

    def reset(self, ksp: PETSc.KSP) -> None:
        self.forget()

    def view(self, ksp: PETSc.KSP, viewer: PETSc.Viewer) -> None:
        kept = 0 if self.U is None else self.U.shape[0]
        viewer.printfASCII(f"  GCRO-DR({self.restart}, {self.recycle}), recycled {kept}\n")

    def forget(self) -> None:
        """Drop the recycled space (the next solve starts like GMRES)."""
        self.U = self.C = self.Uy = self._CtUy = None
        self._key = None

    def solve(self, ksp: PETSc.KSP, b: PETSc.Vec, x: PETSc.Vec) -> None:
        A, _ = ksp.getOperators()
        pc = ksp.getPC()
        if self._ws is None or self._ws.A.handle != A.handle or self._ws.n != b.getLocalSize():
            self._ws = Workspace(A, None if pc.getType() == "none" else pc)
        ws = self._ws
        rtol, atol, dtol, max_it = ksp.getTolerances()
        b_arr = b.getArray(readonly=True)
        bnorm = ws.norm(b_arr)
        target = max(rtol * bnorm, atol)
        if ksp.getInitialGuessNonzero():
            x_arr = x.getArray(readonly=True).copy()
        else:
            x_arr = np.zeros_like(b_arr)
        divtol = dtol * max(bnorm, atol)
        with single_threaded_blas():
            its, reason = self._solve(
                ws, b_arr, x_arr, target, divtol, max_it, operator_key(A), ksp
            )
        x.setArray(x_arr)
        ksp.setIterationNumber(its)
        ksp.setConvergedReason(reason)

    # --- the method ----------------------------------------------------------------------
    def _residual(self, ws: Workspace, b: np.ndarray, x: np.ndarray, r: np.ndarray) -> float:
        ws.matvec(x, r)
        np.subtract(b, r, out=r)
        return ws.norm(r)

    def _refresh_c(self, ws: Workspace, key: tuple[int, int]) -> None:
        """Make C = A U orthonormal for the current operator (skipped if A is unchanged)."""
        if self.U is None or key == self._key:
            return
        C = np.empty(self.U.shape)
        for i in range(self.U.shape[0]):
            ws.matvec(self.U[i], C[i])
        self.C = C
        if self._orthonormalise_c(ws):
            self._key = key

    def _orthonormalise_c(self, ws: Workspace, gram: np.ndarray | None = None) -> bool:
        """Make C orthonormal in place, with U (and M U) transformed alike so that A U = C
        still holds; drop the space (False) if C has lost rank. `gram`: C C^T if known."""
        try:
            R = ws.orthonormalise(self.C, gram)
        except np.linalg.LinAlgError:  # A U lost rank: the space is useless for this operator
            self.forget()
            return False
        transform = np.linalg.inv(R.T)  # k x k; then one GEMM per block
        same = self.Uy is self.U  # no preconditioner: M U = U
        self.U = transform @ self.U
        self.Uy = self.U if same else transform @ self.Uy
        self._CtUy = None  # recomputed by the next update that needs it
        return True

    def _solve(self, ws, b, x, target, divtol, max_it, key, ksp):
        n, m, k = b.size, self.restart, min(self.recycle, self.restart - 1)
        r = np.empty(n)
        if self.U is not None and self.U.shape[1] != n:
            self.forget()
        self._refresh_c(ws, key)
        self._CtUy = None  # one exact product per solve; updates carry it by small algebra
        rnorm = self._residual(ws, b, x, r)
        if self.U is not None:  # project out the recycled directions: x += U C^T r
            coeff = ws.project(self.C, r)
            x += coeff @ self.U
            r -= coeff @ self.C
            rnorm = ws.norm(r)
        its = 0
        ksp.monitor(its, rnorm)
        basis, search = self._buffers(n)  # rows [C; V] and [U; Z]
        cycle = 0  # this solve's cycles
        loaded = None  # the C whose rows (and U's) are in basis[:kk], search[:kk]
        while True:
            if rnorm <= target:
                return its, Reason.CONVERGED_RTOL if rnorm > 0 else Reason.CONVERGED_ATOL
            if not math.isfinite(rnorm):
                return its, Reason.DIVERGED_NANORINF
            if rnorm > divtol:
                return its, Reason.DIVERGED_DTOL
            if its >= max_it:
                return its, Reason.DIVERGED_MAX_IT
            kk = 0 if self.U is None else self.U.shape[0]
            steps = min(m - kk, max_it - its)
            if kk and loaded is not self.C:  # unchanged since the last cycle: no copy
                basis[:kk] = self.C
                search[:kk] = self.U
                loaded = self.C
            done, G, y = self._cycle(ws, r, rnorm, kk, steps, basis, search, target, ksp, its)
            its += done
            if done == 0:
                return its, Reason.DIVERGED_BREAKDOWN
            p = kk + done
            x += y @ search[:p]
            if self.U is None or cycle % self.update_every == 0:
                self._update_recycle(ws, G[: p + 1, :p], basis[: p + 1], search[:p], k, key)
            cycle += 1
            previous, rnorm = rnorm, self._residual(ws, b, x, r)
            if rnorm > previous * (1 + 1e-6):
                # A minimal-residual cycle cannot raise the true residual in exact arithmetic:
                # the recycled space has lost accuracy, so drop it and go on as GMRES.
                self.forget()
                self.discarded += 1
            if self.U is not None:  # r is already orthogonal to C in exact arithmetic
                coeff = ws.project(self.C, r)
                x += coeff @ self.U
                r -= coeff @ self.C
                rnorm = ws.norm(r)
            self.cycles += 1

    def _cycle(self, ws, r, rnorm, kk, steps, basis, search, target, ksp, its0):
        """Arnoldi on (I - C C^T) A M^{-1} for `steps` steps; returns (steps done, G, y)."""
        G = np.zeros((kk + steps + 1, kk + steps))
        G[:kk, :kk] = np.eye(kk)
        R = np.zeros((steps + 1, steps))  # Hbar after Givens rotations
        g = np.zeros(steps + 1)  # rotated right-hand side
        g[0] = rnorm
        np.multiply(r, 1.0 / rnorm, out=basis[kk])
        lib = native.kernels() if self.native else None
        if lib is None:
            done = self._arnoldi_python(ws, kk, steps, basis, search, G, R, g, target, ksp, its0)
        else:
            out = lib.run(
                "pdegen_gcrodr_cycle",
                **ws.handles(ksp),
                n=ws.n,
                basis=basis,
                search=search,
                kk=kk,
                steps=steps,
                G=G,
                gcols=kk + steps,
                R=R,
                g=g,
                work=np.empty(3 * (kk + steps + 2)),
                target=target,
                its0=its0,
            )
            done = out.done
        y_z = sla.solve_triangular(R[:done, :done], g[:done])
        y = np.concatenate([-G[:kk, kk : kk + done] @ y_z, y_z])
        return done, G[: kk + done + 1, : kk + done], y

    def _arnoldi_python(self, ws, kk, steps, basis, search, G, R, g, target, ksp, its0) -> int:
        """The reference loop (csrc/krylov.c's pdegen_gcrodr_cycle does the same in C):
        fills G's columns, the rotated Hessenberg R and right-hand side g; returns the steps."""
        cs: list[float] = []
        sn: list[float] = []
        rhs = g.tolist()  # Python floats keep the scalar work cheap
        scratch = np.empty_like(basis[kk])  # one buffer for the projections, not one per step
        done = 0
        for j in range(steps):
            col = kk + j
            ws.precondition(basis[col], search[col])
            w = basis[col + 1]
            ws.matvec(search[col], w)
            before = ws.norm(w)
            h = ws.project(basis[: col + 1], w)
            w -= np.dot(h, basis[: col + 1], out=scratch)
            after = ws.norm(w)
            if after < 0.1 * before:  # DGKS: reorthogonalise when cancellation is severe
                h2 = ws.project(basis[: col + 1], w)
                w -= np.dot(h2, basis[: col + 1], out=scratch)
                h += h2
                after = ws.norm(w)
            G[: col + 1, col] = h
            G[col + 1, col] = after
            # Givens rotations on the new Hessenberg column (rows kk.. of G)
            hcol = h[kk:].tolist()
            hcol.append(after)
            for i in range(j):
                c, s = cs[i], sn[i]
                hcol[i], hcol[i + 1] = c * hcol[i] + s * hcol[i + 1], c * hcol[i + 1] - s * hcol[i]
            d = math.hypot(hcol[j], hcol[j + 1])
            c, s = (hcol[j] / d, hcol[j + 1] / d) if d > 0 else (1.0, 0.0)
            cs.append(c)
            sn.append(s)
            hcol[j], hcol[j + 1] = d, 0.0
            R[: j + 2, j] = hcol
            rhs[j + 1] = -s * rhs[j]
            rhs[j] *= c
            done = j + 1
            estimate = abs(rhs[j + 1])
            ksp.monitor(its0 + done, estimate)
            breakdown = after <= 1e-14 * before
            if not breakdown:
                w *= 1.0 / after
            if estimate <= target or breakdown:
                break
        g[:] = rhs
        return done

    def _buffers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The Krylov bases, allocated once per problem size and reused by every solve."""
        m, k = self.restart, max(1, min(self.recycle, self.restart - 1))
        if self._bases is None or self._bases[0].shape != (m + 1, n):
            self._bases = (np.empty((m + 1, n)), np.empty((m, n)))
            self._blocks = tuple(np.empty((k, n)) for _ in range(4))
        return self._bases

    def _update_recycle(self, ws, G, basis, search, k, key):
        """New U, C from this cycle's harmonic Ritz vectors: U = W P R^{-1}, C = What Q."""
        if k <= 0:
            return
        p = G.shape[1]
        kk = 0 if self.U is None else self.U.shape[0]
        B = np.zeros((p + 1, p))  # What^T Vhat with Vhat = [Uy, V_1 .. V_{p-kk}]
        B[kk:p, kk:p] = np.eye(p - kk)
        if kk:
            if self._CtUy is None:
                self._CtUy = ws.allsum(self.C @ self.Uy.T)
            B[:kk, :kk] = self._CtUy
            B[kk:, :kk] = ws.allsum(basis[kk:] @ self.Uy.T)  # only the new Arnoldi rows
        P = smallest_harmonic_ritz(G, B, k)
        if P.shape[1] == 0:
            return
        Q, Rq = np.linalg.qr(G @ P)
        if np.min(np.abs(np.diag(Rq))) <= 1e-14 * np.abs(Rq).max():
            return
        coeff = sla.solve_triangular(Rq, P.T, trans="T")  # (k, p): rows of P R^{-1}, transposed
        # Small algebra first, then each new block is one GEMM into a reused buffer (fresh
        # multi-megabyte blocks every cycle cost page faults, badly so under Dask workers).
        knew = P.shape[1]
        C_buf, U_buf, Uy_buf, Uy_spare = self._blocks
        self.C = np.matmul(Q.T, basis, out=C_buf[:knew])
        self.U = np.matmul(coeff, search, out=U_buf[:knew])
        if ws.pc is None:  # M = I: the preconditioned space is the solution space
            self.Uy = self.U
        else:
            Uy = np.matmul(coeff[:, kk:], basis[kk:p], out=Uy_spare[:knew])
            if kk:
                Uy += coeff[:, :kk] @ self.Uy
            self.Uy = Uy
            self._blocks = (C_buf, U_buf, Uy_spare, Uy_buf)  # Uy now lives in the spare
        # C_new (M U_new)^T = Q^T (What^T Vhat) coeff^T: the next update's C^T M U block
        # without a pass over the vectors.
        self._CtUy = Q.T @ B @ coeff.T
        self._key = key
        # C = What Q is only as orthonormal as this cycle's basis. Classical Gram-Schmidt
        # (refined only on severe cancellation) loses orthogonality when the residual falls
        # fast, e.g. ten GAMG steps to 1e-8 left 1e-7; carried over, that compounded from
        # solve to solve and multiplied the iterations tenfold. One k x k Gram matrix per
        # update finds it; CholeskyQR2 repairs it.
        gram = ws.allsum(self.C @ self.C.T)
        if np.abs(gram - np.eye(knew)).max() > ORTHONORMAL_TOL:
            self.repairs += 1
            self._orthonormalise_c(ws, gram)
