"""Steps by 3 against uneven halving, on the grids where the levels rule used to take a step
by 3 (issue 27): each case twice, each in a fresh process, once with steps by 3 (the rule
before this comparison, restored by patching `solvers.grids._ratio`) and once with uneven
halving instead (the rule now), through the batch path a worker runs
(`benchmarks/auto_by3.py`'s `per_sample`: solver seconds per sample after the first, best of
`--repeats` batches, mean iterations per sample, every solve of it).

    cd benchmarks && ../.venv/bin/python uneven_or_by3.py      # about 6 minutes
"""

from __future__ import annotations

import json
import subprocess
import sys

from tables import case_arguments, save

#: case -> (recipe, dimension, interior nodes per axis, samples, solver or None for `auto`)
CASES = {
    "darcy2d-161": ("darcy.yaml", 2, 161, 10, ("cg", "mg")),
    "darcy2d-254": ("darcy.yaml", 2, 254, 8, ("cg", "mg")),
    "darcy2d-419": ("darcy.yaml", 2, 419, 6, ("cg", "mg")),
    "darcy3d-62": ("darcy.yaml", 3, 62, 4, ("cg", "mg")),
    "poisson3d-62": ("poisson.yaml", 3, 62, 6, ("cg", "mg")),
    "heat3d-62": ("heat.yaml", 3, 62, 3, ("cg", "mg")),
    "helmholtz3d-62": ("helmholtz3d.yaml", 3, 62, 3, ("gcrodr", "mg")),
}

#: run in a fresh process per rule: the hierarchies are cached per process
ONE_RULE = r"""
import json, sys
import solvers.grids as grids
rule, recipe, dim, n, samples, repeats, method, pc = sys.argv[1:]
if rule == "by 3":
    def _ratio(shape, _halve=grids._ratio):
        import math
        if _halve(shape) == 2:
            return 2
        cells = [m + 1 for m in shape]
        big = math.prod(shape) > 4096
        return 3 if big and all(c % 3 == 0 for c in cells) and min(cells) >= 6 else None
    grids._ratio = _ratio
from auto_by3 import per_sample
shape = (int(n),) * int(dim)
levels = [s[0] for s in grids.coarsen(shape).shapes]
settings = [f"grid.n={n}", f"grid.dim={dim}", f"solver.method={method}", f"solver.pc={pc}"]
print(json.dumps({"levels": levels, **per_sample(recipe, settings, int(samples), int(repeats))}))
"""


def run(rule: str, case: tuple, repeats: int) -> dict:
    recipe, dim, n, samples, (method, pc) = case
    args = [rule, recipe, str(dim), str(n), str(samples), str(repeats), method, pc]
    done = subprocess.run(
        [sys.executable, "-c", ONE_RULE, *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def text(cell: dict) -> str:
    levels = " → ".join(map(str, cell["levels"]))
    return f"{levels}: {cell['seconds'] * 1e3:.1f} ms ({cell['iterations']:.1f} it)"


def main() -> None:
    args = case_arguments(__doc__)
    lines = [
        "| case | steps by 3 (before) | uneven halving (now) | by 3 / uneven |",
        "|---|---|---|---|",
    ]
    rows = {}
    for case, spec in CASES.items():
        if args.only and case not in args.only:
            continue
        cells = {rule: run(rule, spec, args.repeats) for rule in ("by 3", "uneven")}
        rows[case] = cells
        ratio = cells["by 3"]["seconds"] / cells["uneven"]["seconds"]
        lines.append(f"| {case} | {text(cells['by 3'])} | {text(cells['uneven'])} | {ratio:.2f} |")
        print(lines[-1], flush=True)
    note = f"Solver seconds per sample after the first, best of {args.repeats} batches."
    save("uneven_or_by3", note + "\n\n" + "\n".join(lines), rows)


if __name__ == "__main__":
    main()
