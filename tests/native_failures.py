"""Failures injected into the compiled Krylov loops through real PETSc objects.

`Flaky` is both a petsc4py python PC (Jacobi) and a python Mat (A's product) that raises on
one chosen call, so a kernel's PCApply or MatMult fails in the middle of its iterations.

Run as a script (`python tests/native_failures.py OUT`), it starts PETSc with -malloc_debug,
so PETSc counts what it has allocated, then makes GCRO-DR's compiled cycle fail the same way
in many fresh solvers and writes, as JSON, PETSc's allocated bytes after each round: an
allocation the kernel does not free on its error path shows as steady growth.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import sys

import numpy as np
import petsc4py

if __name__ == "__main__":
    petsc4py.init(["-malloc_debug"])  # before PETSc is imported, so PetscInitialize sees it

import scipy.sparse as sp  # noqa: E402
from petsc4py import PETSc  # noqa: E402

from solvers import native  # noqa: E402
from solvers.baselines import make_ksp  # noqa: E402
from solvers.petsc import MatrixSlot, vec_from_array  # noqa: E402


class InjectedError(RuntimeError):
    pass


class Flaky:
    """Jacobi preconditioner (as a python PC) and the product with A (as a python Mat) that
    raise InjectedError on their `fail_at`-th call after arm(), once."""

    def __init__(self, A: sp.csr_matrix):
        self.A = A
        self.inv_diag = 1.0 / A.diagonal()
        self.calls = 0
        self.fail_at: int | None = None
        self.failures = 0

    def arm(self, fail_at: int) -> None:
        self.calls, self.fail_at = 0, fail_at

    def _tick(self) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            self.failures += 1
            raise InjectedError(f"injected failure at call {self.calls}")

    def apply(self, pc: PETSc.PC, x: PETSc.Vec, y: PETSc.Vec) -> None:  # python PC
        self._tick()
        y.array[:] = self.inv_diag * x.array_r

    def mult(self, mat: PETSc.Mat, x: PETSc.Vec, y: PETSc.Vec) -> None:  # python Mat
        self._tick()
        y.array[:] = self.A @ x.array_r


def failing_ksp(method: str, where: str, A: sp.csr_matrix, flaky: Flaky) -> PETSc.KSP:
    """Our `method` KSP whose preconditioner (where="pc") or operator ("operator") is
    `flaky`; the other one is PETSc's own (A as AIJ; no preconditioner)."""
    ksp = make_ksp(method, "none", 1e-8, 3000, 30, 8)
    if where == "pc":
        pc = ksp.getPC()
        pc.setType("python")
        pc.setPythonContext(flaky)
        ksp.setOperators(MatrixSlot().load(A))
    else:
        ksp.setOperators(PETSc.Mat().createPython(A.shape, flaky, comm=PETSc.COMM_SELF))
    return ksp


def solve(ksp: PETSc.KSP, b: np.ndarray) -> np.ndarray:
    x = vec_from_array(np.zeros_like(b))
    ksp.solve(vec_from_array(b), x)
    return x.getArray().copy()


def petsc_allocated() -> float:
    """Bytes PETSc has allocated and not freed (counted only under -malloc_debug)."""
    libpetsc = sorted((native.library._petsc_dir() / "lib").glob("libpetsc.so.*"))[-1]
    usage = ctypes.c_double()
    ctypes.CDLL(str(libpetsc)).PetscMallocGetCurrentUsage(ctypes.byref(usage))
    return usage.value


def main(out: str, rounds: int = 12) -> None:
    from tests.helpers import darcy_chain

    A, b = darcy_chain(count=1, n=16)[0]
    report = {"native": native.kernels() is not None, "failures": 0, "allocated": []}
    for _ in range(rounds):
        flaky = Flaky(A)
        ksp = failing_ksp("gcrodr", "pc", A, flaky)
        flaky.arm(5)  # mid-cycle: the fifth Arnoldi step's preconditioner
        with contextlib.suppress(PETSc.Error):
            solve(ksp, b)
        report["failures"] += flaky.failures
        ksp.destroy()
        del ksp
        gc.collect()
        report["allocated"].append(petsc_allocated())
    with open(out, "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main(sys.argv[1])
