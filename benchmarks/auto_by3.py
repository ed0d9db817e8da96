"""`auto` on grids that only the levels rule's step by 3 lets geometric multigrid coarsen.

Since issue 27 the levels rule takes no steps by 3 (uneven halving was as fast or faster:
`benchmarks/uneven_or_by3.py`, docs/benchmarks.md, "Uneven halving instead of steps by 3"),
so this script now measures the grids below on the rule as it is; its tables in
docs/benchmarks.md are the record of the step by 3.

Before that step these grids ran each family's `auto_solvers` pair (mg was not usable); now,
above the family's crossover (`Family.auto_multigrid`), `auto` runs its multigrid pair on a
hierarchy with a step by 3. Both pairs side by side on the same samples, through the batch
path a worker runs (`pdegen.run.batch.solve_rows`: the family's draw, its systems, its Newton or
time steps), from the family's own recipe with the grid changed; the solver time per sample
(`/stats/seconds`: every solve of the sample, time steps and Newton steps included) after the
first sample, best of `--repeats` batches.

    python benchmarks/auto_by3.py [--samples 4] [--repeats 2] [--only darcy3d-62 ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tables import save

from pdegen.families import family_from_recipe
from pdegen.recipe.schema import load_recipe
from pdegen.run.batch import solve_rows
from solvers.grids import coarsen

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
#: case -> (recipe, grid settings)
CASES = {
    "darcy2d-161": ("darcy.yaml", ["grid.n=161", "grid.dim=2"]),
    "darcy3d-44": ("darcy.yaml", ["grid.n=44", "grid.dim=3"]),
    "darcy3d-62": ("darcy.yaml", ["grid.n=62", "grid.dim=3"]),
    "helmholtz3d-44": ("helmholtz3d.yaml", ["grid.n=44"]),
    "helmholtz3d-62": ("helmholtz3d.yaml", ["grid.n=62"]),
    "heat3d-80": ("heat.yaml", ["grid.n=80", "grid.dim=3"]),
    "nonlinear2d-80": ("nonlinear-diffusion.yaml", ["grid.n=80"]),
    "nonlinear3d-44": ("nonlinear-diffusion.yaml", ["grid.n=44", "grid.dim=3"]),
    "reaction2d-161": ("reaction-diffusion.yaml", ["grid.n=161"]),
}


def per_sample(recipe_name: str, settings: list[str], samples: int, repeats: int) -> dict:
    recipe = load_recipe(RECIPES / recipe_name, settings=settings, samples=samples)
    family = family_from_recipe(recipe)
    best, its = np.inf, 0.0
    for _ in range(repeats):
        content = solve_rows(recipe, 0, list(range(samples)), lambda *a: None, family=family)
        assert content.stats["converged"].all(), recipe_name
        best = min(best, float(np.mean(content.stats["seconds"][1:])))
        its = float(np.mean(content.stats["iterations"]))
    return {
        "seconds": best,
        "iterations": its,
        "ran": "+".join(family.resolve_for(recipe.solver.method, recipe.solver.pc)),
    }


def other_pair(family) -> tuple[str, str] | None:
    """The family's other measured pair on its grid, to check `auto`'s choice against:
    without multigrid where `auto` runs it, its multigrid pair where `auto` does not and the
    grid coarsens; None where it has no other."""
    if family.resolve_for("auto", "auto")[1] == "mg":
        return family.auto_solvers[family.dim]
    if family.dim in family.auto_multigrid and family.coarsening().usable:
        return family.auto_multigrid[family.dim][1]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    lines = [
        "| case | levels | `auto` now | the family's pair without mg | before / now |",
        "|---|---|---|---|---|",
    ]
    rows = {}
    for case, (recipe_name, grid) in CASES.items():
        if args.only and case not in args.only:
            continue
        recipe = load_recipe(RECIPES / recipe_name, settings=grid, samples=args.samples)
        family = family_from_recipe(recipe)
        auto = family.resolve_for("auto", "auto")
        before = family.auto_solvers[family.dim]
        assert auto[1] == "mg", (case, auto)
        pairs = {"auto": auto, "before": before}
        cells = {}
        for key, (method, pc) in pairs.items():
            solver = [f"solver.method={method}", f"solver.pc={pc}"]
            cells[key] = per_sample(recipe_name, grid + solver, args.samples, args.repeats)
        rows[case] = cells
        levels = " -> ".join(str(s[0]) for s in coarsen(family.interior_shape).shapes)

        def text(cell: dict) -> str:
            return f"{cell['ran']}: {cell['seconds'] * 1e3:.1f} ms ({cell['iterations']:.1f} it)"

        ratio = cells["before"]["seconds"] / cells["auto"]["seconds"]
        lines.append(
            f"| {case} | {levels} | {text(cells['auto'])} | {text(cells['before'])} | {ratio:.2f} |"
        )
        print(lines[-1], flush=True)
    note = (
        f"{args.samples} samples, solver seconds per sample after the first, best of "
        f"{args.repeats} batches (mean iterations per sample: every solve of it)."
    )
    save("auto_by3", note + "\n\n" + "\n".join(lines), rows)


if __name__ == "__main__":
    main()
