"""Acoustic waves: what carrying a solver across Newmark's steps buys, and Newmark against the
explicit leapfrog at equal accuracy.

    python benchmarks/waves.py                 # recipes/acoustic.yaml's grid; about 3 minutes
    python benchmarks/waves.py --samples 2 --n 256

Every Newmark step solves (M + dt^2/4 S) a = r with one matrix per sample (`Acoustic`): a
method that keeps what it built (a factorisation, a preconditioner, a recycled space) for the
whole trajectory, against the same method rebuilt at every step (the matrix handed over as a
new object with the same pattern: PETSc redoes the numeric factorisation or set-up) and against
recycling across steps and samples (RCG). Every solve warm-starts from the previous
acceleration (the family's own first guess, the same for every method) at rtol 1e-8 on the true
residual. Cells: CPU seconds per sample (assembly and the march included), per step, and mean
iterations per step, one chain of `--samples` samples in pdegen's order.

Then Newmark (CG + Jacobi, the winner) and leapfrog at several steps, each against a reference
(Newmark at dt / 16, Cholesky): the error of the last frame relative to its norm, and the CPU
time per sample. Writes benchmarks/results/waves.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from tables import save

from pdegen.families import family_from_recipe
from pdegen.recipe.schema import load_recipe
from solvers import ChainSolver

RECIPE = "recipes/acoustic.yaml"
#: (label, method, pc, rebuilt every step)
SOLVERS = [
    ("Cholesky, factorised once per sample", "direct", "cholesky", False),
    ("Cholesky, refactorised every step", "direct", "cholesky", True),
    ("CG + Jacobi", "cg", "jacobi", False),
    ("CG + ICC, kept per sample", "cg", "icc", False),
    ("CG + ICC, rebuilt every step", "cg", "icc", True),
    ("CG + GAMG, hierarchy kept per sample", "cg", "gamg", False),
    ("CG + GAMG, rebuilt every step", "cg", "gamg", True),
    ("RCG + Jacobi, recycled across steps and samples", "rcg", "jacobi", False),
]


def family_at(n: int, **problem):
    recipe = load_recipe(RECIPE)
    recipe = dataclasses.replace(
        recipe,
        grid=dataclasses.replace(recipe.grid, n=n),
        problem=dataclasses.replace(recipe.problem, **problem),
    )
    return family_from_recipe(recipe)


def march(family, samples, method: str, pc: str, rebuild: bool) -> dict:
    chain = ChainSolver(method, pc, rtol=1e-8, max_iterations=10000)
    iterations, steps, failed = 0, 0, 0

    def solve(A, b, x0):
        nonlocal iterations, steps, failed
        # a new Mat state each step: copy the values into a new matrix object
        result = chain.solve(A.copy() if rebuild else A, b, x0)
        iterations += result.iterations
        steps += 1
        failed += not result.converged
        return result

    cpu = time.process_time()
    for sample in samples:
        medium = family.build_medium(sample.inputs)
        family.trajectory(medium, sample.inputs["initial_pressure"], None, solve)
    cpu = time.process_time() - cpu
    return {
        "per_sample": cpu / len(samples),
        "per_step": cpu / steps,
        "iterations": iterations / steps,
        "failed": failed,
    }


def last_frame(family, sample, solver=("cg", "jacobi")) -> tuple[np.ndarray, float]:
    chain = ChainSolver(*solver, rtol=1e-10, max_iterations=10000)
    cpu = time.process_time()
    medium = family.build_medium(sample.inputs)
    frames, _ = family.trajectory(medium, sample.inputs["initial_pressure"], None, chain.solve)
    return frames[-1], time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    family = family_at(args.n, scheme="newmark", dt=0.005)
    samples = [family.sample(0, i) for i in range(args.samples)]
    steps = family.time_stepping.steps
    lines = [
        f"Newmark, n = {args.n} ({args.n**2} unknowns), {steps} steps per sample, "
        f"{args.samples} samples",
        "",
        "| solver | CPU per sample | per step | iterations per step |",
        "|---|---|---|---|",
    ]
    data = {}
    for label, method, pc, rebuild in SOLVERS:
        cell = march(family, samples, method, pc, rebuild)
        data[label] = cell
        flag = f" !{cell['failed']} unconverged" if cell["failed"] else ""
        lines.append(
            f"| {label} | {cell['per_sample']:.2f} s | {cell['per_step'] * 1e3:.2f} ms | "
            f"{cell['iterations']:.1f}{flag} |"
        )
    # accuracy against time: one sample, both schemes, against a fine Newmark reference
    sample = samples[0]
    dt = family.problem.dt
    fine = family_at(args.n, scheme="newmark", dt=dt / 16)
    reference, _ = last_frame(fine, sample, ("direct", "cholesky"))
    scale = np.linalg.norm(reference)
    lines += [
        "",
        "| scheme | step | relative error of the last frame | CPU per sample |",
        "|---|---|---|---|",
    ]
    runs = [("newmark", {"dt": dt * f}) for f in (2.0, 1.0, 0.5, 0.25)]
    runs += [("leapfrog", {"cfl": c}) for c in (0.9, 0.5, 0.25)]
    for scheme, setting in runs:
        fam = family_at(args.n, **{"scheme": scheme, "dt": dt, **setting})
        frame, cpu = last_frame(fam, sample)
        error = np.linalg.norm(frame - reference) / scale
        if scheme == "leapfrog":
            count, step = fam.leapfrog_step(fam.build_medium(sample.inputs))
            words = f"cfl {setting['cfl']:g}: dt = {step:.2e}"
        else:
            words = f"dt = {setting['dt']:g}"
        data[f"{scheme} {words}"] = {"error": error, "cpu": cpu}
        lines.append(f"| {scheme} | {words} | {error:.2e} | {cpu:.2f} s |")
    save("waves", "\n".join(lines), data)


if __name__ == "__main__":
    main()
