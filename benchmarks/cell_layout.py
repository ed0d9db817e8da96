"""Every family with a cell layout, on n cells against the node grid of the same spacing
(issue 27, point 4): what `auto` runs on each, side by side in one run.

n cells per axis (`grid.layout: cells`, h = 1/n) against the node grid of n + 1 points
(n - 1 interior nodes, the same h), from each family's own recipe with the grid changed,
through the batch path a worker runs (`pdegen.run.batch.solve_rows`: the family's draw, its
systems, its time and Newton steps). Cells: solver seconds per sample (`/stats/seconds`, every
solve of the sample) after the first sample, best of `--repeats` batches, and mean
iterations. Where the family has a multigrid pair (`auto_multigrid`), its other pair on the
cells is measured too (without multigrid where `auto` runs it, with it where `auto` does
not), so the table shows whether `auto` picks the faster on cells.

    cd benchmarks && ../.venv/bin/python cell_layout.py            # about 15 minutes
    cd benchmarks && ../.venv/bin/python cell_layout.py --only heat2d-128
"""

from __future__ import annotations

from auto_by3 import RECIPES, other_pair, per_sample
from grid_sizes import text
from tables import case_arguments, save

from pdegen.families import family_from_recipe
from pdegen.recipe.schema import load_recipe

#: case -> (recipe, dimension, cells per axis, samples)
CASES = {
    "darcy2d-128": ("darcy.yaml", 2, 128, 12),
    "darcy2d-256": ("darcy.yaml", 2, 256, 8),
    "heat2d-128": ("heat.yaml", 2, 128, 6),
    "heat2d-256": ("heat.yaml", 2, 256, 4),
    "reaction2d-128": ("reaction-diffusion.yaml", 2, 128, 4),
    "nonlinear2d-128": ("nonlinear-diffusion.yaml", 2, 128, 6),
    "helmholtz2d-64": ("helmholtz.yaml", 2, 64, 12),
    "darcy3d-64": ("darcy.yaml", 3, 64, 4),
    "darcy3d-128": ("darcy.yaml", 3, 128, 3),
    "heat3d-64": ("heat.yaml", 3, 64, 3),
    "helmholtz3d-48": ("helmholtz3d.yaml", 3, 48, 4),
}


def main() -> None:
    args = case_arguments(__doc__)
    lines = [
        "| case | `auto` on n cells | `auto` on n + 1 points (same h) | cells / nodes | the "
        "family's other pair on the cells |",
        "|---|---|---|---|---|",
    ]
    rows = {}
    for case, (recipe_name, dim, n, samples) in CASES.items():
        if args.only and case not in args.only:
            continue
        on_cells = [f"grid.n={n}", f"grid.dim={dim}", "grid.layout=cells"]
        on_nodes = [f"grid.n={n - 1}", f"grid.dim={dim}"]
        recipe = load_recipe(RECIPES / recipe_name, settings=on_cells, samples=samples)
        family = family_from_recipe(recipe)
        cells = {
            "cells": per_sample(recipe_name, on_cells, samples, args.repeats),
            "nodes": per_sample(recipe_name, on_nodes, samples, args.repeats),
            "other": None,
        }
        other = other_pair(family)
        if other is not None:
            solver = [f"solver.method={other[0]}", f"solver.pc={other[1]}"]
            cells["other"] = per_sample(recipe_name, on_cells + solver, samples, args.repeats)
        rows[case] = cells
        ratio = cells["cells"]["seconds"] / cells["nodes"]["seconds"]
        lines.append(
            f"| {case} | {text(cells['cells'])} | {text(cells['nodes'])} | {ratio:.2f} "
            f"| {text(cells['other'])} |"
        )
        print(lines[-1], flush=True)
    note = (
        "Solver seconds per sample after the first, best of "
        f"{args.repeats} batches (mean iterations per sample: every solve of it)."
    )
    save("cell_layout", note + "\n\n" + "\n".join(lines), rows)


if __name__ == "__main__":
    main()
