"""The periodic families: what each recipe's step rule costs and leaves, and time against size.

    cd benchmarks && ../.venv/bin/python periodic.py [--samples 3] [--skip-sizes]

Part 1, per recipe in recipes/ of a periodic family (as shipped; navier-stokes over its first
10 time units, 10 frames, to keep the table minutes long): seconds per sample (the solve of
`Family.solve_sample`, one process), internal steps per sample, the median spectral tail,
and two errors against the same samples solved with an 8x smaller CFL number and largest
step (`cfl / 8`, `dt / 8`): the worst frame's relative L2 error over the whole trajectory,
and the worst over single frame intervals marched from the same stored frame (what a model
trained on frame t -> t + 1 sees; for the chaotic Kuramoto-Sivashinsky the only meaningful
one, since any perturbation grows to order one over its 200 time units). Every recipe is run
with every point stored (`stored_points: null`), so each interval can be restarted.

Part 2, time against size: FNO's Burgers (nu 0.1, t in [0, 1], one frame) on 256 .. 8192
points and FNO's Navier-Stokes (nu 1e-3, t in [0, 1], one frame) on 64^2 .. 512^2: seconds per
sample, steps, seconds per step, and the exponents of a least-squares fit of log time against
log N (N the points: seconds per step should grow as N log N, exponent a little above 1).

Writes results/periodic.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from pdegen.families import FAMILIES, family_from_recipe
from pdegen.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
SHORTER = {
    "navier-stokes": ["problem.t_end=10", "problem.frames=10"],
    "navier-stokes-nu1e-4": ["problem.t_end=2", "problem.frames=2"],
}


def periodic_recipes() -> list[Path]:
    return [
        p for p in sorted((ROOT / "recipes").glob("*.yaml"))
        if not FAMILIES[load_recipe(p).family].linear_systems
    ]  # fmt: skip


def solve(family, samples: int) -> tuple[list[np.ndarray], float, list[int], list[float]]:
    frames, steps, tails, seconds = [], [], [], 0.0
    for sample in drawn(family, samples):
        start = time.perf_counter()
        out, results = family.solve_sample(sample, None)
        seconds += time.perf_counter() - start
        frames.append(out[family.trajectory])
        steps.append(sum(r.iterations for r in results))
        tails.append(family.sample_stats(results)["spectral_tail"])
    return frames, seconds / samples, steps, tails


def drawn(family, samples: int) -> list:
    return [family.sample(0, index) for index in range(samples)]


def interval_error(family, fine, samples: list, trajectories: list[np.ndarray]) -> float | None:
    """The worst relative error of one frame interval marched by `family`'s step rule against
    `fine`'s, from the same stored frame (five intervals per sample, frame 0's left out: the
    whole-trajectory error covers the initial layer)."""
    times = family.time_stepping.frame_times
    if len(times) < 3:
        return None  # one interval (FNO's Burgers): the trajectory error is that interval's
    worst = 0.0
    for sample, frames in zip(samples, trajectories, strict=True):
        inputs, params = sample.solve_inputs, sample.params
        ours, theirs = family.integrator(inputs, params), fine.integrator(inputs, params)
        for k in range(1, len(frames) - 1, max(1, (len(frames) - 1) // 5)):
            start = family.grid.forward(frames[k])
            a, _ = family.march(ours, start, params, times[k], times[k + 1])
            b, _ = fine.march(theirs, start, params, times[k], times[k + 1])
            a, b = family.grid.inverse(a), family.grid.inverse(b)
            worst = max(worst, float(np.linalg.norm(a - b) / np.linalg.norm(b)))
    return worst


def worst_error(ours: list[np.ndarray], fine: list[np.ndarray]) -> float:
    worst = 0.0
    for a, b in zip(ours, fine, strict=True):
        for fa, fb in zip(a[1:], b[1:], strict=True):
            worst = max(worst, float(np.linalg.norm(fa - fb) / np.linalg.norm(fb)))
    return worst


def recipe_table(samples: int) -> list[str]:
    lines = [
        "| recipe | grid | seconds per sample | steps per sample | median spectral tail | "
        "worst frame error against cfl/8, dt/8 | worst one-interval error |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in periodic_recipes():
        settings = [*SHORTER.get(path.stem, []), "problem.stored_points=null"]
        recipe = load_recipe(path, settings)
        family = family_from_recipe(recipe)
        ours, seconds, steps, tails = solve(family, samples)
        p = recipe.problem
        finer = [f"problem.cfl={p.cfl / 8}", f"problem.dt={family.max_step / 8}"]
        fine_family = family_from_recipe(load_recipe(path, settings + finer))
        fine, *_ = solve(fine_family, samples)
        one = interval_error(family, fine_family, drawn(family, samples), ours)
        grid = "x".join([str(recipe.grid.n)] * recipe.grid.dim)
        note = f" (t to {recipe.problem.t_end:g})" if path.stem in SHORTER else ""
        lines.append(
            f"| {path.stem}{note} | {grid} | {seconds:.3f} | {np.mean(steps):.0f} | "
            f"{np.median(tails):.1e} | {worst_error(ours, fine):.1e} | "
            f"{'—' if one is None else format(one, '.1e')} |"
        )
        print(lines[-1], flush=True)
    return lines


def fit(n: list[int], t: list[float]) -> float:
    return float(np.polyfit(np.log(n), np.log(t), 1)[0])


def size_table(name: str, recipe: str, sizes: list[int], settings: list[str]) -> list[str]:
    lines = [
        f"{name}:",
        "",
        "| grid | points N | seconds per sample | steps | ms per step |",
        "|---|---|---|---|---|",
    ]
    points, per_sample, per_step = [], [], []
    for n in sizes:
        extra = [f"grid.n={n}", "problem.stored_points=null", *settings]
        family = family_from_recipe(load_recipe(ROOT / "recipes" / recipe, extra))
        _, seconds, steps, _ = solve(family, 2)
        N = n**family.dim
        points.append(N)
        per_sample.append(seconds)
        per_step.append(seconds / np.mean(steps))
        grid = "x".join([str(n)] * family.dim)
        lines.append(
            f"| {grid} | {N} | {seconds:.3f} | {np.mean(steps):.0f} | {1e3 * per_step[-1]:.3f} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        f"Fitted exponents (time ~ N^p): per step p = {fit(points, per_step):.2f}, per sample "
        f"p = {fit(points, per_sample):.2f}; over the largest half: per step p = "
        f"{fit(points[len(points) // 2 :], per_step[len(points) // 2 :]):.2f}.",
        "",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--skip-sizes", action="store_true")
    args = parser.parse_args()
    lines = ["Per recipe (one process, solve only):", "", *recipe_table(args.samples), ""]
    if not args.skip_sizes:
        lines += size_table(
            "FNO's Burgers, nu 0.1, t in [0, 1]", "burgers.yaml",
            [256, 512, 1024, 2048, 4096, 8192], [],
        )  # fmt: skip
        lines += size_table(
            "FNO's Navier-Stokes, nu 1e-3, t in [0, 1]", "navier-stokes.yaml",
            [64, 128, 256, 512], ["problem.t_end=1", "problem.frames=1"],
        )  # fmt: skip
    text = "\n".join(lines)
    print(text)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "periodic.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
