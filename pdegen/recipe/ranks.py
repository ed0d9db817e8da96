"""Which solver runs when one sample is solved across several ranks
(`solver.ranks_per_sample`, `pdegen.run.group`), and the recipe check that refuses what
cannot: read at recipe load, so it imports neither PETSc nor MPI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pdegen.errors import RecipeError
from solvers.registry import METHODS, PARALLEL_METHODS, PRECONDITIONERS, parallel_solver

if TYPE_CHECKING:
    from pdegen.families import Family
    from pdegen.recipe.schema import Recipe


def solver_across_ranks(family: Family, method: str, pc: str, ranks: int) -> tuple[str, str]:
    """(method, preconditioner) that a group of `ranks` runs for the recipe's names: what one
    rank would run (`Family.resolve_for`) when it runs in parallel; for `method: auto` whose
    one-rank choice does not (a factorisation), CG (GMRES for an operator
    that is not symmetric positive definite) with multigrid, the fastest parallel pair
    measured for these operators (docs/benchmarks.md, "One sample across ranks"). Named
    choices that cannot run across ranks are refused (`check_across_ranks`)."""
    chosen_method, chosen_pc = family.resolve_for(method, pc)
    if method == "auto" and chosen_method not in PARALLEL_METHODS:
        spd = family.symmetric and family.positive_definite
        chosen_method = "cg" if spd else "gmres"
        # a preconditioner the recipe names is kept unless it is a factorisation
        named = pc != "auto" and not PRECONDITIONERS[pc].factorisation
        chosen_pc = pc if named else "mg"
    return chosen_method, chosen_pc


def check_across_ranks(recipe: Recipe, family_cls: type[Family]) -> None:
    """Refuse, in one line naming the field, a recipe whose `solver.ranks_per_sample` cannot
    run: a family that solves each sample on one rank, more ranks than the grid has planes,
    or a named method or preconditioner that does not run in parallel."""
    ranks = recipe.solver.ranks_per_sample
    if ranks == 1:
        return
    where = f"solver.ranks_per_sample: {ranks}"
    if not family_cls.solves_across_ranks():
        from pdegen.families import FAMILIES

        able = [name for name, f in FAMILIES.items() if f.solves_across_ranks()]
        raise RecipeError(
            f"{where}: {family_cls.name} solves each sample on one rank; one sample across "
            f"several ranks runs for {', '.join(able)} (allowed here: 1)"
        )
    if recipe.grid.layout == "cells":
        raise RecipeError(
            f"{where}: a cell-centred grid (grid.layout: cells) is solved on one rank per "
            "sample (allowed here: 1)"
        )
    planes = recipe.grid.n
    if planes is not None and ranks > planes:
        raise RecipeError(
            f"{where}: more ranks than the grid's {planes} interior planes, which the ranks "
            f"share (allowed: 1 to {planes})"
        )
    family = family_cls.from_recipe(recipe)
    method, pc = solver_across_ranks(family, recipe.solver.method, recipe.solver.pc, ranks)
    try:
        parallel_solver(method, pc, ranks)
    except ValueError as err:
        field = "method" if method not in PARALLEL_METHODS or METHODS[method].direct else "pc"
        raise RecipeError(f"solver.{field}: {err}") from None
