"""The grid sizes people pick against their multigrid-friendly neighbours (issue 27).

128 and 256 points per axis (127 and 255 cells: a prime, and 3 * 5 * 17) against 129 and 257
(128 and 256 cells), and in 3D 64 and 128 points against 65 and 129: what `auto` runs on each,
side by side in one run, from each family's own recipe with the grid changed, through the
batch path a worker runs (`pdegen.run.batch.solve_rows`). Cells: solver seconds per sample
(`/stats/seconds`: every solve of the sample, time steps included) after the first sample,
best of `--repeats` batches, and mean iterations. Where the family has a multigrid pair
(`auto_multigrid`) and the grid coarsens, its other pair at the size people pick is measured
too (without multigrid where `auto` runs it, with it where `auto` does not), so that the
table shows whether `auto` picks the faster.

    cd benchmarks && ../.venv/bin/python grid_sizes.py            # about 15 minutes
    cd benchmarks && ../.venv/bin/python grid_sizes.py --only darcy2d-128
"""

from __future__ import annotations

from auto_by3 import RECIPES, other_pair, per_sample
from tables import case_arguments, save

from pdegen.families import family_from_recipe
from pdegen.recipe.schema import load_recipe
from solvers.grids import coarsen, is_exact_step

#: case -> (recipe, dimension, interior nodes of the size people pick, of its neighbour,
#: samples); points per axis are interior nodes + 2
CASES = {
    "darcy2d-128": ("darcy.yaml", 2, 126, 127, 12),
    "darcy2d-256": ("darcy.yaml", 2, 254, 255, 8),
    "poisson2d-128": ("poisson.yaml", 2, 126, 127, 12),
    "poisson2d-256": ("poisson.yaml", 2, 254, 255, 8),
    "heat2d-128": ("heat.yaml", 2, 126, 127, 6),
    "heat2d-256": ("heat.yaml", 2, 254, 255, 4),
    "darcy3d-48": ("darcy.yaml", 3, 46, 47, 4),
    "darcy3d-64": ("darcy.yaml", 3, 62, 63, 4),
    "darcy3d-128": ("darcy.yaml", 3, 126, 127, 3),
    "heat3d-64": ("heat.yaml", 3, 62, 63, 3),
    "heat3d-128": ("heat.yaml", 3, 126, 127, 2),
    "poisson3d-64": ("poisson.yaml", 3, 62, 63, 4),
    "poisson3d-128": ("poisson.yaml", 3, 126, 127, 3),
    "helmholtz3d-48": ("helmholtz3d.yaml", 3, 46, 47, 4),
}

#: cases whose other pair is left out: Poisson's one Cholesky of 126^3 = 2M unknowns in 3D,
#: whose factor (fill growing as N^(4/3)) alone would take minutes and gigabytes, and which
#: already lost 3x to CG + mg at 62^3
NO_OTHER = {"poisson3d-128"}


def text(cell: dict | None) -> str:
    if cell is None:
        return "—"
    return f"{cell['ran']}: {cell['seconds'] * 1e3:.1f} ms ({cell['iterations']:.1f} it)"


def levels(shape: tuple[int, ...]) -> str:
    """The hierarchy's sizes per axis, an uneven halving marked with ~."""
    shapes = coarsen(shape).shapes
    out = [str(shapes[0][0])]
    for fine, coarse in zip(shapes[:-1], shapes[1:], strict=True):
        out.append(("" if is_exact_step(fine, coarse) else "~") + str(coarse[0]))
    return " → ".join(out)


def main() -> None:
    args = case_arguments(__doc__)
    lines = [
        "| case | levels (~: uneven halving) | `auto` at the size people pick | `auto` at the "
        "neighbour (one more point) | pick / neighbour | the family's other pair (with or "
        "without mg) at the size people pick |",
        "|---|---|---|---|---|---|",
    ]
    rows = {}
    for case, (recipe_name, dim, n, neighbour, samples) in CASES.items():
        if args.only and case not in args.only:
            continue
        grid = [f"grid.n={n}", f"grid.dim={dim}"]
        recipe = load_recipe(RECIPES / recipe_name, settings=grid, samples=samples)
        family = family_from_recipe(recipe)
        shape = family.interior_shape
        cells = {
            "pick": per_sample(recipe_name, grid, samples, args.repeats),
            "neighbour": per_sample(
                recipe_name, [f"grid.n={neighbour}", f"grid.dim={dim}"], samples, args.repeats
            ),
            "other": None,
        }
        other = other_pair(family)  # without mg, or its mg pair
        if other is not None and case not in NO_OTHER:
            solver = [f"solver.method={other[0]}", f"solver.pc={other[1]}"]
            cells["other"] = per_sample(recipe_name, grid + solver, samples, args.repeats)
        rows[case] = cells
        ratio = cells["pick"]["seconds"] / cells["neighbour"]["seconds"]
        lines.append(
            f"| {case} | {levels(shape)} | {text(cells['pick'])} | {text(cells['neighbour'])} "
            f"| {ratio:.2f} | {text(cells['other'])} |"
        )
        print(lines[-1], flush=True)
    note = (
        "Solver seconds per sample after the first, best of "
        f"{args.repeats} batches (mean iterations per sample: every solve of it)."
    )
    save("grid_sizes", note + "\n\n" + "\n".join(lines), rows)


if __name__ == "__main__":
    main()
