"""Newton-Krylov on the nonlinear families: recycling across Newton steps, time steps and
samples against fresh Krylov per step, side by side in one run.

Every row solves the same samples through the family's own `solve_sample` (what a batch
runs): one ChainSolver for the whole chain of samples, one SNES over it (`solvers.newton`),
Newton tolerance rtol 1e-8 on ||F||, every linear solve to ||b - J x|| <= 1e-8 ||b||.
Newton's linear systems solve for the update, so every row starts each linear solve from
zero, except the rows named "warm", which start from the previous Newton step's update (the
chain's warm start, where it beats zero), so that warm starts are measured apart from
recycling. "sorted" rows solve the samples in the greedy order of `Family.features` (sorting
time counted); the others in generation order. "k<N>" rows keep N recycled vectors instead
of 20; "per-sample" rows drop the space at each new sample. A row whose samples do not all
converge is marked `!k/N`. The rows run in `--repeat` interleaved rounds (default 3;
iteration counts must agree between rounds) and each time is the smallest of its rounds: the
machines are shared and noisy.

Columns: Newton steps and linear iterations summed over the chain (ratio: GMRES+ILU's / this
row's), the linear solve time (the chain's own timing: preconditioner set-up, recycled-space
refresh, iterations; the copy into PETSc excluded) and the whole Newton wall time (function
and Jacobian assembly included, identical for every row), with the ratio GMRES+ILU / row.

    python benchmarks/newton.py nonlinear2d            # 63^2 unknowns, 20 samples
    python benchmarks/newton.py nonlinear2d-127        # 127^2, 10 samples
    python benchmarks/newton.py nonlinear3d            # 15^3, 10 samples
    python benchmarks/newton.py nonlinear3d-31         # 31^3, 4 samples
    python benchmarks/newton.py reaction2d             # 63^2, 6 trajectories of 20 steps
    python benchmarks/newton.py reaction2d-127         # 127^2, 3 trajectories
    python benchmarks/newton.py reaction2d-indefinite  # 63^2, dt = 0.002 > epsilon^2
    python benchmarks/newton.py reaction3d             # 15^3, 4 trajectories
    python benchmarks/newton.py reaction3d-31          # 31^3, 2 trajectories

Writes benchmarks/results/newton-<case>.{md,json}.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from tables import save

from pdegen.families import NonlinearDiffusion, ReactionDiffusion
from pdegen.families.nonlinear_diffusion import NonlinearDiffusionProblem
from pdegen.families.reaction_diffusion import ReactionDiffusionProblem
from solvers import ChainSolver, order_systems

CASES = {
    "nonlinear2d": (lambda: NonlinearDiffusion(63, 2, NonlinearDiffusionProblem()), 20),
    "nonlinear2d-127": (lambda: NonlinearDiffusion(127, 2, NonlinearDiffusionProblem()), 10),
    "nonlinear3d": (lambda: NonlinearDiffusion(15, 3, NonlinearDiffusionProblem()), 10),
    "nonlinear3d-31": (lambda: NonlinearDiffusion(31, 3, NonlinearDiffusionProblem()), 4),
    "reaction2d": (lambda: ReactionDiffusion(63, 2, ReactionDiffusionProblem()), 6),
    "reaction2d-127": (lambda: ReactionDiffusion(127, 2, ReactionDiffusionProblem()), 3),
    "reaction2d-indefinite": (
        lambda: ReactionDiffusion(63, 2, ReactionDiffusionProblem(dt=0.002)),
        6,
    ),
    "reaction3d": (lambda: ReactionDiffusion(15, 3, ReactionDiffusionProblem()), 4),
    "reaction3d-31": (lambda: ReactionDiffusion(31, 3, ReactionDiffusionProblem()), 2),
}
ROWS = [
    "gmres ilu",
    "gmres ilu warm",
    "gcrodr ilu",
    "gcrodr ilu sorted",
    "gcrodr ilu per-sample",
    "gcrodr ilu warm",
    "direct lu",
    "gmres mg",
    "gcrodr mg",
    "gmres gamg",
]


def run_row(label: str, family, samples: list, features: np.ndarray) -> dict:
    method, pc, *variant = label.split()
    recycle = next((int(v[1:]) for v in variant if v[0] == "k" and v[1:].isdigit()), 20)
    chain = ChainSolver(
        method, pc, rtol=1e-8, restart=40, recycle=recycle, warm_start="warm" in variant,
        grid=family.interior_shape,
    )  # fmt: skip
    family._newton = None
    sort_seconds = 0.0
    order = list(range(len(samples)))
    if "sorted" in variant:
        start = time.perf_counter()
        order = list(order_systems(features, "greedy"))
        sort_seconds = time.perf_counter() - start
    newton_steps = linear = converged = 0
    linear_seconds, wall = sort_seconds, sort_seconds
    for i in order:
        if "per-sample" in variant and chain.context is not None:
            chain.context.forget()  # recycle across Newton (and time) steps only
        start = time.perf_counter()
        _, results = family.solve_sample(samples[i], chain)
        wall += time.perf_counter() - start
        newton_steps += sum(r.newton_iterations for r in results)
        linear += sum(r.iterations for r in results)
        linear_seconds += sum(r.linear_seconds for r in results)
        converged += all(r.converged for r in results)
    return {
        "row": label,
        "newton_steps": newton_steps,
        "linear_iterations": linear,
        "linear_seconds": linear_seconds,
        "wall_seconds": wall,
        "sort_seconds": sort_seconds,
        "converged": converged,
        "samples": len(samples),
        "pc_run": chain.pc,
    }


def markdown(name: str, family, rows: list[dict]) -> str:
    base = rows[0]
    lines = [
        f"### newton {name}: {type(family).__name__} {family.dim}D, {family.unknowns} "
        f"unknowns, {base['samples']} samples",
        "",
        "| row | Newton steps | linear iterations (per Newton step) | ratio | linear solve s "
        "| ratio | Newton wall s | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        flag = "" if r["converged"] == r["samples"] else f" !{r['converged']}/{r['samples']}"
        per_step = r["linear_iterations"] / max(r["newton_steps"], 1)
        label = r["row"] if r["pc_run"] in r["row"] else f"{r['row']} (ran {r['pc_run']})"
        lines.append(
            f"| {label}{flag} | {r['newton_steps']} | {r['linear_iterations']} "
            f"({per_step:.1f}) | {base['linear_iterations'] / max(r['linear_iterations'], 1):.2f}x "
            f"| {r['linear_seconds']:.2f} | {base['linear_seconds'] / r['linear_seconds']:.2f}x "
            f"| {r['wall_seconds']:.2f} | {base['wall_seconds'] / r['wall_seconds']:.2f}x |"
        )
    best = min(rows, key=lambda r: r["wall_seconds"] if r["converged"] == r["samples"] else 1e30)
    lines += ["", f"Fastest converged row (Newton wall time): `{best['row']}`."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--rows", nargs="*", default=None, help="a subset of the rows")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each time is the min")
    args = parser.parse_args()
    make, count = CASES[args.case]
    family = make()
    count = args.samples or count
    samples = [family.sample(1, i) for i in range(count)]
    features = np.stack([family.features(s) for s in samples])
    labels = args.rows or ROWS
    rounds = [[run_row(label, family, samples, features) for label in labels]]
    for _ in range(args.repeat - 1):  # interleaved rounds: a noisy moment hits every row
        rounds.append([run_row(label, family, samples, features) for label in labels])
    rows = []
    for runs in zip(*rounds, strict=True):
        assert len({(r["newton_steps"], r["linear_iterations"]) for r in runs}) == 1, runs
        keys = ("linear_seconds", "wall_seconds", "sort_seconds")
        rows.append({**runs[0], **{k: min(r[k] for r in runs) for k in keys}})
    text = markdown(args.case, family, rows)
    save(
        f"newton-{args.case}",
        text,
        {"case": args.case, "machine": platform.processor() or platform.machine(), "rows": rows},
    )


if __name__ == "__main__":
    main()
