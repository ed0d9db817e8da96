"""KSP construction for every method, ours and the baselines, on one convergence test.

All iterative methods stop on the unpreconditioned residual, ||b - A x|| <= rtol ||b||, from
a zero initial guess unless a warm start is asked for: PETSc GMRES is right-preconditioned
(its residual estimate is then the true residual's), PETSc CG uses the unpreconditioned norm,
and our GCRO-DR and recycling CG test the same quantity. A direct solve is PETSc LU or
Cholesky; the Mat is refilled in place, so PETSc reuses the symbolic factorisation.
"""

from __future__ import annotations

import itertools

from petsc4py import PETSc

from solvers.gcrodr import GCRODR
from solvers.petsc import configure_pc
from solvers.rcg import RecycledCG
from solvers.registry import METHODS, PRECONDITIONERS, unknown
from solvers.settings import DEFAULTS

GUESSES = (None, "fischer", "pod")
_prefixes = itertools.count()


def make_ksp(
    method: str,
    pc: str = "jacobi",
    rtol: float = DEFAULTS.rtol,
    max_iterations: int = DEFAULTS.max_iterations,
    restart: int = DEFAULTS.restart,
    recycle: int = DEFAULTS.recycle,
    guess: str | None = None,
    options: dict[str, str] | None = None,
    comm=PETSc.COMM_SELF,
) -> PETSc.KSP:
    """A configured KSP; `options` (without prefix) go through PETSc's options database."""
    if not (method in METHODS and METHODS[method].ksp):
        raise unknown("KSP method", method, {m: i for m, i in METHODS.items() if i.ksp})
    if guess not in GUESSES:
        raise ValueError(f"unknown guess {guess!r} (allowed: fischer, pod)")
    ksp = PETSc.KSP().create(comm)
    prefix = f"pdegen{next(_prefixes)}_"
    ksp.setOptionsPrefix(prefix)
    unprec = PETSc.KSP.NormType.UNPRECONDITIONED
    if method == "gmres":
        ksp.setType("gmres")
        ksp.setGMRESRestart(restart)
        ksp.setPCSide(PETSc.PC.Side.RIGHT)
        ksp.setNormType(unprec)
    elif method == "cg":
        ksp.setType("cg")
        ksp.setNormType(unprec)
    elif method == "minres":
        # PETSc's MINRES tests the preconditioned residual norm by default; it also offers
        # the unpreconditioned one, which is every other method's test
        ksp.setType("minres")
        ksp.setNormType(unprec)
    elif method == "direct":
        ksp.setType("preonly")
        pc = pc if pc in PRECONDITIONERS and PRECONDITIONERS[pc].factorisation else "lu"
    elif method == "gcrodr":
        ksp.setType("python")
        ksp.setPythonContext(GCRODR(restart=restart, recycle=recycle))
    elif method == "rcg":
        ksp.setType("python")
        ksp.setPythonContext(RecycledCG(recycle=recycle))
    configure_pc(ksp.getPC(), pc)
    ksp.setTolerances(rtol=rtol, atol=0.0, max_it=max_iterations)
    db = PETSc.Options()
    settings = dict(options or {})
    if guess:
        settings["ksp_guess_type"] = guess
    for key, value in settings.items():
        db.setValue(prefix + key.lstrip("-"), value)
    ksp.setFromOptions()
    for key in settings:
        db.delValue(prefix + key.lstrip("-"))
    return ksp
