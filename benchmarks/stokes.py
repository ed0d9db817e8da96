"""Stokes (MAC saddle point): every usable solver on the same chain of samples, side by side.

Each row solves the same systems (lognormal viscosity, random force: the shipped recipe's
problem, `--sigma` for other viscosity contrasts) through `ChainSolver` and the family's own
`solve_sample`, so the direct solve gets the family's factor ordering and `fieldsplit` its
blocks and Schur matrix. Same tolerance (rtol 1e-8) and convergence test
(||b - A x|| <= rtol ||b||, zero initial guess) for every iterative row; time per system is
the harness's (preconditioner set-up and iterations, the factorisation for `direct`, which
keeps its symbolic phase from sample to sample). The GCRO-DR rows solve the greedily sorted
chain and their total includes the sorting time. A row that leaves a system unconverged is
marked "!k/N". Writes benchmarks/results/<name>.{md,json} (default name: stokes).

    python benchmarks/stokes.py --samples 10  # n = 31, 63, 127; 10 samples (5 at 127)
                                              # (GMRES + ILU up to n = 63: it fails at 31)
    python benchmarks/stokes.py --n 255 --samples 3 --only "minres + fieldsplit" --name stokes255
    python benchmarks/stokes.py --dim 3 --samples 6 --name stokes3d   # n = 15, 31
    python benchmarks/stokes.py --n 63 --sigma 0.5 2 5 --only "minres + fieldsplit" \
        --name stokes-contrast
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from tables import save

from pdegen.families import Stokes
from pdegen.families.stokes import StokesProblem, ViscositySpec
from solvers import ChainSolver, order_systems

#: (label, method, pc, velocity block preconditioner for fieldsplit)
ROWS = [
    ("direct (LU, rcm)", "direct", "lu", None),
    ("minres + fieldsplit(gamg)", "minres", "fieldsplit", "gamg"),
    ("minres + fieldsplit(icc)", "minres", "fieldsplit", "icc"),
    ("minres + fieldsplit(lu)", "minres", "fieldsplit", "lu"),
    ("minres + fieldsplit(cholesky)", "minres", "fieldsplit", "cholesky"),
    ("gmres + fieldsplit(gamg)", "gmres", "fieldsplit", "gamg"),
    ("gmres + fieldsplit(cholesky)", "gmres", "fieldsplit", "cholesky"),
    ("gcrodr + fieldsplit(gamg), sorted", "gcrodr", "fieldsplit", "gamg"),
    ("gcrodr + fieldsplit(cholesky), sorted", "gcrodr", "fieldsplit", "cholesky"),
    ("gmres + ilu", "gmres", "ilu", None),
]


def run_row(family: Stokes, samples: list, method: str, pc: str, velocity: str | None) -> dict:
    chain = ChainSolver(method, pc, rtol=1e-8, max_iterations=4000)
    if velocity is not None:
        chain.use_field_splits(family.field_splits(), velocity_pc=velocity)
    order = list(range(len(samples)))
    sorting = 0.0
    if method == "gcrodr":
        start = time.perf_counter()
        order = order_systems(np.array([family.features(s) for s in samples]), "greedy")
        sorting = time.perf_counter() - start
    results = [family.solve_sample(samples[i], chain)[1][0] for i in order]
    return {
        "seconds": sum(r.seconds for r in results) + sorting,
        "sorting": sorting,
        "iterations": float(np.mean([r.iterations for r in results])),
        "unconverged": sum(not r.converged for r in results),
        "worst_residual": max(r.residual for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=None, help="default 31 63 127")
    parser.add_argument("--dim", type=int, default=2, choices=(2, 3))
    parser.add_argument("--sigma", type=float, nargs="*", default=[2.0], help="viscosity sigma")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--only", default="", help="run the rows whose label contains this")
    parser.add_argument("--name", default="stokes", help="benchmarks/results/<name>.md")
    args = parser.parse_args()
    lines = [
        f"Stokes {args.dim}D, rtol 1e-8, {platform.node()}: mean time per sample (ms) and "
        "iterations "
        "(GCRO-DR: sorting included)",
        "",
        "| n (unknowns) | sigma (mean max/min of nu) | solver | ms / sample | iterations "
        "| unconverged |",
        "|---|---|---|---|---|---|",
    ]
    data = {}
    sizes = args.n or ([31, 63, 127] if args.dim == 2 else [15, 31])
    cases = [(n, sigma) for n in sizes for sigma in args.sigma]
    for n, sigma in cases:
        family = Stokes(n, args.dim, StokesProblem(viscosity=ViscositySpec(sigma=sigma)))
        count = args.samples if n**args.dim < 127**2 else max(1, args.samples // 2)
        samples = [family.sample(0, i) for i in range(count)]
        contrast = np.mean(
            [s.inputs["viscosity"].max() / s.inputs["viscosity"].min() for s in samples]
        )
        for label, method, pc, velocity in ROWS:
            if pc == "ilu" and n**args.dim > 63**2:  # fails at n = 31 (4000 iterations)
                continue
            if method == "direct" and args.dim == 3 and n > 15:  # RCM's fill: many GiB at 31
                continue
            if args.only not in label:
                continue
            row = run_row(family, samples, method, pc, velocity)
            data[f"{n} {sigma} {label}"] = {**row, "contrast": contrast}
            mark = f"!{row['unconverged']}/{count}" if row["unconverged"] else "0"
            lines.append(
                f"| {n} ({family.unknowns}) | {sigma:g} ({contrast:.1f}) | {label} | "
                f"{1e3 * row['seconds'] / count:.1f} | {row['iterations']:.1f} | {mark} |"
            )
            print(lines[-1], flush=True)
    save(args.name, "\n".join(lines), data)


if __name__ == "__main__":
    main()
