"""Newton's method through PETSc SNES, each Newton step's linear system solved by a ChainSolver.

Why SNES: its Newton line search (`newtonls`, backtracking `bt` by default), convergence
tests and converged/diverged reasons are PETSc's own, the ones every PETSc user knows, and can
be changed from the options database. Why the chain solver under it: the chain carries what
one linear solve leaves for the next (GCRO-DR's or recycling CG's recycled space, a Cholesky or
LU symbolic factorisation, a GAMG or PCMG hierarchy), and it must keep carrying it from Newton
step to Newton step, from time step to time step and from sample to sample. SNES is therefore
given a KSP of type `python` (`_ChainKSP`) whose `solve` hands the Jacobian, assembled by the
caller as scipy CSR with the family's fixed stencil pattern, to `ChainSolver.solve`. The chain
loads the values into its one PETSc Mat (same pattern: the symbolic factorisation and the
preconditioner's structure are kept) and returns a SolveResult, which is recorded.

SNES itself sees the Jacobian as a `python` Mat (`_CSROperator`) that multiplies by the same
CSR matrix: the backtracking line search needs J y for its initial slope, and nothing else
needs the matrix in PETSc form.

Newton's linear systems solve for the update, J dx = F(u): the natural initial guess is zero,
which is what every method gets here; with `ChainSolver(warm_start=True)` it is the previous
converged update instead, but only when that leaves a smaller residual than zero (near
convergence it does not: the updates shrink quadratically), measured separately in the
benchmarks.

A Newton solve converges when ||F(u_k)||_2 <= max(rtol ||F(u_0)||_2, atol) (PETSc's
CONVERGED_FNORM_RELATIVE / CONVERGED_FNORM_ABS). The step-length test (`snes_stol`) is off:
a step that stopped moving is not a solved equation. A Newton solve that does not converge
(too many iterations, a failed line search, a failed linear solve, NaN) is reported with
`converged=False` and SNES's reason, so that the sample is flagged and never stored as good.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from petsc4py import PETSc

from solvers.sequence import ChainSolver, SolveResult

_prefixes = itertools.count()
_SNES_REASONS = {v: k for k, v in vars(PETSc.SNES.ConvergedReason).items() if k.isupper()}
#: the line searches a recipe may name (PETSc SNESLineSearchType)
LINE_SEARCHES = ("bt", "basic")

Residual = Callable[[np.ndarray], np.ndarray]
Jacobian = Callable[[np.ndarray], sp.csr_matrix]


@dataclass
class NewtonResult(SolveResult):
    """One nonlinear solve, as a SolveResult so that a sample's statistics read it like a
    linear solve: `iterations` are the linear iterations summed over the Newton steps,
    `residual` the worst true relative residual of those linear solves, `converged` that
    Newton converged *and* every linear solve did, `reason` SNES's reason, `seconds` the
    whole Newton solve (function and Jacobian evaluations included)."""

    newton_iterations: int = 0
    #: ||F(u_k)||_2 for k = 0, 1, ... (SNES's monitor)
    norms: list[float] = field(default_factory=list)
    #: the linear solves, one per Newton step
    linear: list[SolveResult] = field(default_factory=list)
    #: seconds spent in the linear solves (the chain's timing: set-up, recycling, iterations)
    linear_seconds: float = 0.0

    @property
    def relative_norm(self) -> float:
        """||F(u)|| / ||F(u_0)|| at the end (0 when F(u_0) = 0)."""
        if not self.norms or self.norms[0] == 0.0:
            return 0.0
        return self.norms[-1] / self.norms[0]


def snes_reason_name(code: int) -> str:
    return _SNES_REASONS.get(code, str(code))


class _CSROperator:
    """A `python` Mat that multiplies by the current CSR Jacobian (for the line search)."""

    def __init__(self) -> None:
        self.matrix: sp.csr_matrix | None = None

    def mult(self, mat: PETSc.Mat, x: PETSc.Vec, y: PETSc.Vec) -> None:
        y.setArray(self.matrix @ x.getArray(readonly=True))


class _ChainKSP:
    """A `python` KSP whose solve is `ChainSolver.solve` on the current CSR Jacobian."""

    def __init__(self, chain: ChainSolver, operator: _CSROperator) -> None:
        self.chain, self.operator = chain, operator
        self.results: list[SolveResult] = []
        #: the last converged update (the warm start, with `chain.warm_start`)
        self.previous: np.ndarray | None = None

    def _guess(self, matrix: sp.csr_matrix, rhs: np.ndarray) -> np.ndarray:
        """The initial guess: zero, or with warm starts the previous Newton update when it
        leaves a smaller residual than zero does. Newton's updates shrink quadratically, so
        near convergence the previous one is far worse than zero (measured: ||b - J dx_prev||
        up to 10^4 ||b||, which GMRES then reports as DIVERGED_DTOL)."""
        zero = np.zeros_like(rhs)
        if not self.chain.warm_start or self.previous is None:
            return zero  # explicit: the chain's own warm start would reuse `previous`
        if np.linalg.norm(rhs - matrix @ self.previous) < np.linalg.norm(rhs):
            return self.previous
        return zero

    def solve(self, ksp: PETSc.KSP, b: PETSc.Vec, x: PETSc.Vec) -> None:
        codes = PETSc.KSP.ConvergedReason
        rhs, matrix = b.getArray(readonly=True).copy(), self.operator.matrix
        if not (np.isfinite(rhs).all() and np.isfinite(matrix.data).all()):
            # a diverging iterate overflowed the law: a failed step, not a crash in PETSc
            self._fail(ksp, x, codes.DIVERGED_NANORINF, "DIVERGED_NANORINF")
            return
        try:
            with np.errstate(all="ignore"):
                result = self.chain.solve(matrix, rhs, self._guess(matrix, rhs))
        except (PETSc.Error, ValueError, ArithmeticError, np.linalg.LinAlgError):
            # finite but overflowing entries (a diverging iterate) broke the Krylov method or
            # the factorisation: the Newton solve has failed, and what the chain recycled from
            # this system is worthless for the next
            forget = getattr(self.chain.context, "forget", None)
            if forget is not None:
                forget()
            self._fail(ksp, x, codes.DIVERGED_BREAKDOWN, "DIVERGED_BREAKDOWN")
            return
        self.results.append(result)
        if result.converged:
            self.previous = result.x
        x.setArray(result.x)
        ksp.setIterationNumber(result.iterations)
        ksp.setConvergedReason(codes.CONVERGED_RTOL if result.converged else codes.DIVERGED_MAX_IT)

    def _fail(self, ksp: PETSc.KSP, x: PETSc.Vec, code: int, reason: str) -> None:
        x.zeroEntries()
        ksp.setIterationNumber(0)
        ksp.setConvergedReason(code)
        nan = np.full(x.getSize(), np.nan)
        self.results.append(SolveResult(nan, 0, np.inf, False, reason, 0.0))


class NewtonSolver:
    """Newton (PETSc SNES `newtonls`) with every linear solve done by one ChainSolver.

    One SNES serves every call: solve after solve (time steps, samples) the same chain, hence
    the same recycled space, factorisation or multigrid hierarchy, is used.
    """

    def __init__(
        self,
        chain: ChainSolver,
        rtol: float = 1e-8,
        atol: float = 1e-10,
        max_it: int = 50,
        line_search: str = "bt",
    ) -> None:
        if line_search not in LINE_SEARCHES:
            raise ValueError(f"line_search {line_search!r} (allowed: {', '.join(LINE_SEARCHES)})")
        self.chain = chain
        self.rtol, self.atol, self.max_it, self.line_search = rtol, atol, max_it, line_search
        self._size: int | None = None

    def _build(self, size: int) -> None:
        self._operator = _CSROperator()
        self._ksp_context = _ChainKSP(self.chain, self._operator)
        snes = PETSc.SNES().create(PETSc.COMM_SELF)
        snes.setOptionsPrefix(f"pdegennewton{next(_prefixes)}_")
        snes.setType("newtonls")
        snes.getLineSearch().setType(self.line_search)
        snes.setTolerances(rtol=self.rtol, atol=self.atol, stol=0.0, max_it=self.max_it)
        snes.setMaxFunctionEvaluations(-1)  # unlimited: the iteration limit is the test
        self._f = PETSc.Vec().createSeq(size)
        self._x = PETSc.Vec().createSeq(size)
        J = PETSc.Mat().createPython([size, size], context=self._operator, comm=PETSc.COMM_SELF)
        J.setUp()
        snes.setFunction(self._function, self._f)
        snes.setJacobian(self._jacobian, J)
        ksp = snes.getKSP()
        ksp.setType("python")
        ksp.setPythonContext(self._ksp_context)
        ksp.getPC().setType("none")
        snes.setMonitor(self._monitor)
        snes.setFromOptions()
        self._snes, self._size, self._J = snes, size, J

    def _function(self, snes: PETSc.SNES, x: PETSc.Vec, f: PETSc.Vec) -> None:
        with np.errstate(over="ignore", invalid="ignore"):  # SNES sees and reports Inf/NaN
            f.setArray(self._residual(x.getArray(readonly=True).copy()))

    def _jacobian(self, snes: PETSc.SNES, x: PETSc.Vec, J: PETSc.Mat, P: PETSc.Mat) -> None:
        with np.errstate(over="ignore", invalid="ignore"):
            self._operator.matrix = self._jacobian_of(x.getArray(readonly=True).copy())

    def _monitor(self, snes: PETSc.SNES, its: int, fnorm: float) -> None:
        self._norms.append(float(fnorm))

    def solve(self, residual: Residual, jacobian: Jacobian, x0: np.ndarray) -> NewtonResult:
        """Solve F(u) = 0 from u = x0. `residual(u)` returns F(u); `jacobian(u)` returns
        dF/du as CSR with the same sparsity pattern every time (so the chain's Mat keeps its
        structure)."""
        x0 = np.asarray(x0, dtype=float)
        if self._size != x0.size:
            self._build(x0.size)
        self._residual, self._jacobian_of = residual, jacobian
        self._norms: list[float] = []
        self._ksp_context.results = []
        self._x.setArray(x0)
        start = time.perf_counter()
        self._snes.solve(None, self._x)
        seconds = time.perf_counter() - start
        linear = list(self._ksp_context.results)
        code = int(self._snes.getConvergedReason())
        converged = code > 0 and all(r.converged for r in linear)
        return NewtonResult(
            x=self._x.getArray(readonly=True).copy(),
            iterations=sum(r.iterations for r in linear),
            residual=max((r.residual for r in linear), default=0.0),
            converged=converged,
            reason=snes_reason_name(code),
            seconds=seconds,
            newton_iterations=int(self._snes.getIterationNumber()),
            norms=list(self._norms),
            linear=linear,
            linear_seconds=sum(r.seconds for r in linear),
        )


__all__ = ["LINE_SEARCHES", "NewtonResult", "NewtonSolver", "snes_reason_name"]
