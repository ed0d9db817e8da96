"""How a family chooses and checks its solver: the operator's properties, the solvers `auto`
runs (measured per family and dimension), and the refusal, at recipe load, of a method or
preconditioner the operator cannot take. `Family` inherits these; they read only the family's
class declarations, never a sample.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from pdegen.errors import RecipeError
from pdegen.specs import SolverSpec
from solvers.registry import (
    METHODS,
    POSITIVE_DEFINITE,
    PRECONDITIONERS,
    SYMMETRIC,
    Method,
    Preconditioner,
    describe_operator,
)


class SolverChoice:
    """The solver side of the family contract (a part of `Family`)."""

    name: ClassVar[str]
    #: the fastest (method, preconditioner) measured per dimension, which `method: auto`
    #: runs (docs/benchmarks.md)
    auto_solvers: ClassVar[dict[int, tuple[str, str]]] = {2: ("direct", "lu"), 3: ("gmres", "ilu")}
    #: per dimension, (n, (method, preconditioner)): what `method: auto` runs instead of
    #: `auto_solvers` on grids of at least n interior nodes per axis that geometric multigrid
    #: coarsens (`solvers.grids.coarsen(...).usable`): the crossovers measured in
    #: docs/benchmarks.md, "auto by size"
    auto_multigrid: ClassVar[dict[int, tuple[int, tuple[str, str]]]] = {}
    #: the preconditioner `pc: auto` means for an iterative method named explicitly
    iterative_pc: ClassVar[str] = "ilu"
    #: the smoother of `pc: mg`'s V-cycle (a name of `solvers.multigrid.SMOOTHERS`), or one
    #: per dimension, measured per family (docs/benchmarks.md, "Multigrid smoothers" and the
    #: Helmholtz section)
    multigrid_smoother: ClassVar[str | dict[int, str]] = "sor"
    #: every sample has the same matrix (many right-hand sides), and `system` returns the very
    #: same matrix object each time, so the solve keeps one factorisation or preconditioner;
    #: ordering the chain then gains a recycling method nothing (`resolve_ordering`)
    shared_operator: ClassVar[bool] = False
    #: properties of the operator, which methods and preconditioners require
    #: (`solvers.registry`: CG and Cholesky need both): checked at recipe load
    symmetric: ClassVar[bool] = False
    positive_definite: ClassVar[bool] = False
    #: the preconditioners its operator can take when fewer than its properties allow (a
    #: saddle point's zero block rules out point-wise and node-grid ones); None: all of them
    preconditioners: ClassVar[frozenset[str] | None] = None
    #: whether a sample is solved through linear systems (every family but the periodic
    #: ones, which integrate in Fourier space and run only an `integrator` method)
    linear_systems: ClassVar[bool] = True

    @classmethod
    def operator_properties(cls) -> frozenset[str]:
        """What the operator is, in `solvers.registry` terms (symmetric, positive_definite)."""
        flags = ((SYMMETRIC, cls.symmetric), (POSITIVE_DEFINITE, cls.positive_definite))
        return frozenset(name for name, on in flags if on)

    @classmethod
    def supports(cls, entry: Method | Preconditioner) -> bool:
        """Whether a registered method or preconditioner can take this family's operator."""
        if isinstance(entry, Method) and entry.integrator == cls.linear_systems:
            return False
        if isinstance(entry, Preconditioner):
            names = [k for k, e in PRECONDITIONERS.items() if e is entry]
            if cls.preconditioners is not None and not set(names) & cls.preconditioners:
                return False
            if entry.split and not cls.has_field_splits():
                return False
        return entry.requires <= cls.operator_properties()

    @classmethod
    def has_field_splits(cls) -> bool:
        """Whether the family hands its unknowns' blocks to a block preconditioner."""
        return cls.field_splits is not SolverChoice.field_splits

    @classmethod
    def resolve_solver(
        cls, method: str, pc: str, dim: int, n: int | None = None, layout: str = "nodes"
    ) -> tuple[str, str]:
        """(method, preconditioner) to run for the recipe's names.

        `method: auto` runs the family's fastest measured pair for its dimension and grid
        size `n` (and its preconditioner too when `pc: auto`): multigrid-preconditioned
        Krylov above the measured crossover on grids multigrid coarsens (`auto_multigrid`),
        else `auto_solvers`; `pc: auto` with a named iterative method means the family's usual
        preconditioner for it; a direct solve factorises with Cholesky when the operator
        allows it and LU otherwise, unless the recipe names a factorisation. `layout` is the
        grid rule multigrid coarsens by (`Family.multigrid_layout_of`): on "cells" `n`
        counts cells, and whether multigrid coarsens is `solvers.grids.coarsen_cells`.
        """
        auto_method, auto_pc = cls.auto_solvers[dim]
        if n is not None and dim in cls.auto_multigrid:
            from solvers.grids import coarsen, coarsen_cells

            smallest, pair = cls.auto_multigrid[dim]
            levels = coarsen_cells if layout == "cells" else coarsen
            if n >= smallest and levels((n,) * dim).usable:
                auto_method, auto_pc = pair
        if method == "auto":
            method = auto_method
            if pc == "auto":
                pc = auto_pc
        if METHODS[method].direct:
            if pc not in PRECONDITIONERS or not PRECONDITIONERS[pc].factorisation:
                pc = "cholesky" if cls.supports(PRECONDITIONERS["cholesky"]) else "lu"
        elif pc == "auto":
            pc = cls.iterative_pc
        return method, pc

    def resolve_for(self, method: str, pc: str) -> tuple[str, str]:
        """(method, preconditioner) that this family's recipe runs: `resolve_solver` on its
        grid. A family whose fastest measured method depends on its problem's parameters as
        well as on the grid overrides this (reaction-diffusion: the time step against its
        reaction's stiffness); the choice must not change what `resolve_ordering` gives."""
        return self.resolve_solver(method, pc, self.dim, self.n, self.multigrid_layout)

    @classmethod
    def resolve_ordering(
        cls, solver: SolverSpec, dim: int, n: int | None = None, layout: str = "nodes"
    ) -> str:
        """The ordering `auto` means: sort the chain only when something carries from one
        solve to the next and depends on which system came before. A recycling method's space
        does when the operators differ (not when every sample shares one matrix: the space
        then belongs to that matrix whatever the order); a warm start always does."""
        if solver.ordering != "auto":
            return solver.ordering
        method, _ = cls.resolve_solver(solver.method, solver.pc, dim, n, layout)
        carries = METHODS[method].recycles and not cls.shared_operator
        return "greedy" if carries or solver.warm_start else "none"

    @classmethod
    def settle_solver(
        cls, solver: SolverSpec, dim: int, n: int | None = None, layout: str = "nodes"
    ) -> SolverSpec:
        """The recipe's solver section checked against the operator, its ordering resolved.

        A method or preconditioner whose requirements the operator does not meet (CG,
        recycling CG, ICC or Cholesky on an indefinite or nonsymmetric operator) is rejected
        here, in one line naming the field, instead of failing sample by sample at solve time.
        """
        for where, name, table in (
            ("method", solver.method, METHODS),
            ("pc", solver.pc, PRECONDITIONERS),
        ):
            if name == "auto" or cls.supports(table[name]):
                continue
            allowed = ["auto", *(n for n, e in table.items() if cls.supports(e))]
            if table[name].requires <= cls.operator_properties() or not cls.linear_systems:
                raise RecipeError(
                    f"solver.{where}: {name!r} does not apply to {cls.name}'s operator"
                    f"{_why_not(cls, table[name])} (allowed: {', '.join(allowed)})"
                )
            raise RecipeError(
                f"solver.{where}: {name!r} needs a {describe_operator(table[name].requires)} "
                f"operator; {cls.name}'s is {describe_operator(cls.operator_properties())} "
                f"(allowed: {', '.join(allowed)})"
            )
        if (
            solver.method != "auto"
            and METHODS[solver.method].direct
            and solver.pc != "auto"
            and not PRECONDITIONERS[solver.pc].factorisation
        ):  # a direct solve factorises: another preconditioner would be dropped unseen
            factorisations = [
                p for p, e in PRECONDITIONERS.items() if e.factorisation and cls.supports(e)
            ]
            raise RecipeError(
                f"solver.pc: {solver.pc!r} is not a factorisation, and method "
                f"{solver.method!r} runs one (allowed: auto, {', '.join(factorisations)})"
            )
        method, pc = cls.resolve_solver(solver.method, solver.pc, dim, n, layout)
        pcs = METHODS[method].pcs
        if pcs is not None and pc not in pcs:
            named = repr(solver.pc) if solver.pc == pc else f"{solver.pc!r} ({pc!r} here)"
            usable = ["auto"] * (cls.iterative_pc in pcs) + [
                p for p, e in PRECONDITIONERS.items() if p in pcs and cls.supports(e)
            ]
            raise RecipeError(
                f"solver.pc: {named} cannot precondition {method!r}, which needs a symmetric "
                f"positive definite preconditioner (allowed: {', '.join(usable)})"
            )
        return dataclasses.replace(solver, ordering=cls.resolve_ordering(solver, dim, n, layout))

    def field_splits(self) -> dict[str, np.ndarray] | None:
        """The unknowns of each block of a block system, by name, in the order of the blocks
        (`pc: fieldsplit` builds on them; families that do not define it cannot take it)."""
        return None

    def multigrid_settings(self):
        """The `solvers.multigrid.MGSettings` that `pc: mg` runs with for this family."""
        from solvers.multigrid import MGSettings  # starts PETSc: not at recipe validation

        smoother = self.multigrid_smoother
        if isinstance(smoother, dict):
            smoother = smoother[self.dim]
        return MGSettings(smoother=smoother, layout=self.multigrid_layout)


def _why_not(cls: type[SolverChoice], entry: Method | Preconditioner) -> str:
    """Why a method or preconditioner the operator's properties allow is refused: the
    family's own declarations (`linear_systems`, `preconditioners`, `field_splits`)."""
    if not cls.linear_systems:
        return ": it is integrated spectrally, with no linear system to solve or precondition"
    if isinstance(entry, Method):
        return ": it integrates the periodic families, and this one solves linear systems"
    if entry.split and not cls.has_field_splits():
        return ": it needs the blocks of a block system, which this family does not declare"
    return ""
