"""Where one batch's wall time goes: draw, assembly, copy into PETSc, solve, residual check,
packaging and shard write, measured on the real batch path (`pdegen.run.engines.base.run_batch`).

Each phase is timed by wrapping the function that does it (the family's `sample`,
`solver_system` and `system`, and Darcy's `DiffusionMatrix.fill_aij`, which computes the
matrix values inside the load; `MatrixSlot.load` and the right-hand side copy; the KSP
runner's solve, whose own `seconds` is the solve proper and the rest its true-residual
check; the shard writer's `add` and `finish`), each less the timed calls inside it; "other"
is the remainder of the batch's wall time. The issue-14 target:
everything but the solve under 10%.

    .venv/bin/python benchmarks/breakdown.py [--recipe recipes/darcy421.yaml] [--samples 8]
        [--set grid.n=62 --set grid.dim=3 ...]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from tables import save

import pdegen.dataset.shards
import pdegen.run.batch
import pdegen.run.engines.base as engine_base
import solvers.sequence
from pdegen.discretisation.operators import DiffusionMatrix
from pdegen.families import family_from_recipe
from pdegen.recipe.schema import load_recipe
from pdegen.run.plan import make_plan, recipe_sha256
from solvers.petsc import MatrixSlot

ROOT = Path(__file__).resolve().parents[1]
spent: dict[str, float] = defaultdict(float)


_inside: list[float] = []  # per timed call in progress: the time its timed callees took


def timed(phase: str, function):
    """`function`, its time added to `phase`, less what timed functions it calls took (they
    count to their own phases: Darcy's matrix values are computed inside `MatrixSlot.load`)."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        start = time.perf_counter()
        _inside.append(0.0)
        try:
            return function(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            spent[phase] += elapsed - _inside.pop()
            if _inside:
                _inside[-1] += elapsed

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes/darcy421.yaml"))
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--name", default="breakdown")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="batches run untimed first, as a worker has before its next batch (default 1)",
    )
    args = parser.parse_args()
    settings = [*args.set, f"output.shard_size={args.samples}"]
    recipe = load_recipe(args.recipe, settings=settings, samples=args.samples)
    family_cls = type(family_from_recipe(recipe))
    with tempfile.TemporaryDirectory() as tmp:
        plan = make_plan(recipe, family_from_recipe(recipe))
        for _ in range(args.warmup):
            job = engine_base.Job(recipe, Path(tmp), plan, [0], recipe_sha256(recipe))
            engine_base.run_batch(job, 0)
    family_cls.sample = timed("draw inputs", family_cls.sample)
    family_cls.solver_system = timed("assemble", family_cls.solver_system)
    family_cls.system = timed("assemble", family_cls.system)  # nested calls count once
    DiffusionMatrix.fill_aij = timed("assemble", DiffusionMatrix.fill_aij)  # into the Mat
    MatrixSlot.load = timed("copy into PETSc", MatrixSlot.load)
    solvers.sequence.vec_from_array = timed("copy into PETSc", solvers.sequence.vec_from_array)
    runner = solvers.sequence._KSPRunner
    results: list = []

    def solve(self, *a, _inner=runner.solve):
        result = _inner(self, *a)
        results.append(result)
        return result

    runner.solve = timed("solve + residual check", solve)
    writer = pdegen.dataset.shards.ShardWriter
    writer.add = timed("write shard", writer.add)  # each sample's rows, as they are solved
    writer.finish = timed("write shard", writer.finish)  # the rest, moments and checksum
    with tempfile.TemporaryDirectory() as tmp:
        job = engine_base.Job(recipe, Path(tmp), plan, [0], recipe_sha256(recipe))
        start = time.perf_counter()
        engine_base.run_batch(job, 0)
        wall = time.perf_counter() - start
    solve_only = sum(r.seconds for r in results)
    spent["residual check"] = spent.pop("solve + residual check") - solve_only
    spent["solve"] = solve_only
    spent["other (packaging, checks, statistics)"] = wall - sum(spent.values())
    n = args.samples
    method = family_from_recipe(recipe).resolve_for(recipe.solver.method, recipe.solver.pc)
    grid = "x".join([str(recipe.grid.n + 2)] * recipe.grid.dim)
    lines = [
        f"{recipe.name}: {recipe.family} {grid} nodes, {n} samples in one batch, "
        f"method {' + '.join(method)}",
        "",
        "| phase | ms per sample | share of wall time |",
        "|---|---|---|",
    ]
    order = [
        "draw inputs",
        "assemble",
        "copy into PETSc",
        "solve",
        "residual check",
        "write shard",
        "other (packaging, checks, statistics)",
    ]
    for phase in order:
        lines.append(f"| {phase} | {spent[phase] / n * 1e3:.1f} | {spent[phase] / wall:.1%} |")
    lines.append(
        f"| **all but the solve** | {(wall - solve_only) / n * 1e3:.1f} | "
        f"**{(wall - solve_only) / wall:.1%}** |"
    )
    lines.append(f"| wall | {wall / n * 1e3:.1f} | 100% |")
    save(args.name, "\n".join(lines), {"spent": dict(spent), "wall": wall, "samples": n})


if __name__ == "__main__":
    main()
