"""The levels rule's step by 3, measured: CG + `pc: mg` with and without it, and CG + GAMG.

Since issue 27 the levels rule takes no steps by 3 (uneven halving was as fast or faster:
`benchmarks/uneven_or_by3.py`, docs/benchmarks.md, "Uneven halving instead of steps by 3"),
so this script now measures the grids below on the rule as it is; its tables in
docs/benchmarks.md are the record of the step by 3.

Darcy 12 / 3 (the neural-operator benchmark's coefficient) on grids whose cells do not halve
down to a small coarsest level: FNO's 421 x 421 nodes (n = 419: 419 -> 209 -> 104 by 2, then
-> 52 unevenly; -> 34 by 3 when the record was taken), 256 x 256 nodes (n = 254, 255 cells:
254 -> 127 -> ... unevenly; -> 84 by 3 then) and the 64^3-node cube (n = 62, 63 cells: 62 ->
31 -> ... unevenly; 62 -> 20 -> 6 by 3 then). Side by side in one run, on the same samples:
the hierarchy of the levels rule; the exact-halving-only hierarchy where there is one
(`MGSettings(max_levels=...)` stops before the first uneven step);
and GAMG, which `pc: mg` fell back to on grids that do not halve. CG to rtol 1e-8. Each cell:
the mean per-sample seconds after the first sample (the chain's steady state), best of
`--repeats` fresh chains, and the mean CG iterations.

    python benchmarks/coarsening.py [--samples 4] [--repeats 2]
"""

from __future__ import annotations

import argparse

from mg_smoothers import COEFFICIENT, run
from tables import save

from pdegen.families import Darcy
from pdegen.families.darcy import DarcyProblem
from solvers.grids import coarsen
from solvers.multigrid import MGSettings

CASES = {
    "2D n=419 (421^2 nodes)": (419, 2),
    "2D n=254 (256^2 nodes)": (254, 2),
    "3D n=62 (64^3 nodes)": (62, 3),
}


def halving_levels(shape: tuple[int, ...]) -> int:
    """How many levels the rule has before its first step that is not an exact halving."""
    shapes = coarsen(shape).shapes
    for level, (fine, coarse) in enumerate(zip(shapes[:-1], shapes[1:], strict=True), start=1):
        if (fine[0] + 1) != 2 * (coarse[0] + 1):
            return level
    return len(shapes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    lines = [
        "| grid | mg, levels rule | mg, halving only | gamg |",
        "|---|---|---|---|",
    ]
    rows: dict[str, dict] = {}
    for case, (n, dim) in CASES.items():
        family = Darcy(n, dim, DarcyProblem(COEFFICIENT))
        shape = family.interior_shape
        systems = [family.system(family.sample(0, i)) for i in range(args.samples)]
        cells = {}
        rule = " -> ".join(str(s[0]) for s in coarsen(shape).shapes)
        cells["rule"] = run(systems, shape, MGSettings(), args.repeats) | {"levels": rule}
        halving = halving_levels(shape)
        if halving >= 2:
            capped = MGSettings(max_levels=halving)
            kept = " -> ".join(str(s[0]) for s in coarsen(shape, halving).shapes)
            cells["halving"] = run(systems, shape, capped, args.repeats) | {"levels": kept}
        cells["gamg"] = run(systems, shape, MGSettings(), args.repeats, pc="gamg")
        rows[case] = cells

        def text(cell: dict | None) -> str:
            if cell is None:
                return "(does not halve)"
            levels = f", {cell['levels']}" if "levels" in cell else ""
            return f"{cell['seconds'] * 1e3:.1f} ms ({cell['iterations']:.1f} it{levels})"

        lines.append(
            f"| {case} | {text(cells['rule'])} | {text(cells.get('halving'))} | "
            f"{text(cells['gamg'])} |"
        )
    note = (
        f"CG, rtol 1e-8, Darcy 12 / 3, {args.samples} samples; per-sample seconds after the "
        f"first, best of {args.repeats} chains (mean CG iterations, levels' interior n)."
    )
    save("coarsening", note + "\n\n" + "\n".join(lines), rows)


if __name__ == "__main__":
    main()
