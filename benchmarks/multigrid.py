"""Geometric multigrid (`pc: mg`) side by side with what `auto` runs today, and Helmholtz's
shift beta. A quick comparison, not the final benchmark: a handful of samples per cell.

    python benchmarks/multigrid.py darcy      # 2D n = 419: CG+mg vs Cholesky; 3D n = 63: vs ILU
    python benchmarks/multigrid.py shift      # Helmholtz: GCRO-DR + shifted mg, beta 0 .. 2
    python benchmarks/multigrid.py helmholtz  # 3D n = 47: GCRO-DR + mg vs + ILU vs LU
    python benchmarks/multigrid.py sweep      # 3D n = 47: each pc at its best recycled space

Cells: seconds per sample (first sample / mean of the rest; for recycling chains the mean over
the whole sorted chain), best of `--repeats` fresh chains, and mean iterations. Every run goes
through `Family.solve_sample`, so `pc: mg` gets Helmholtz's shifted Laplacian as pdegen
gives it. Writes benchmarks/results/multigrid_<case>.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tables import save

from pdegen.families import Darcy, Helmholtz
from pdegen.families.darcy import DarcyProblem
from pdegen.families.helmholtz import HelmholtzProblem
from pdegen.specs import CoefficientSpec, RangeSpec
from solvers import ChainSolver, order_systems
from solvers.multigrid import MGSettings

THRESHOLD = CoefficientSpec(kind="threshold", alpha=2.0, tau=3.0, high=12.0, low=3.0)


def sorted_samples(family, count: int) -> list:
    """The samples in the greedy chain order pdegen solves them in (recycling depends on it)."""
    samples = [family.sample(0, i) for i in range(count)]
    order = order_systems(np.array([family.features(s) for s in samples]), "greedy")
    return [samples[i] for i in order]


def run(
    family,
    samples,
    method: str,
    pc: str,
    repeats: int,
    restart: int = 40,
    recycle: int = 20,
    multigrid: MGSettings | None = None,
    on_shifted: bool = False,
    best_by: str = "mean",
) -> dict:
    best = None
    for _ in range(repeats):
        chain = ChainSolver(
            method,
            pc,
            rtol=1e-8,
            restart=restart,
            recycle=recycle,
            grid=family.interior_shape,
            max_iterations=5000,
            multigrid=multigrid or family.multigrid_settings(),
        )
        cpu = time.process_time()
        if on_shifted:  # the preconditioner on the shifted operator whatever `pc` is
            results = []
            for sample in samples:
                A, b = family.system(sample)
                P = family.preconditioner_operator(sample, A)
                results.append(chain.solve(A, b, P=P))
        else:
            results = [family.solve_sample(s, chain)[1][0] for s in samples]
        cpu = time.process_time() - cpu  # the whole chain, assembly included
        seconds = [r.seconds for r in results]
        cell = {
            "cpu_per_sample": cpu / len(results),
            "first": seconds[0],
            "rest": float(np.mean(seconds[1:])) if len(seconds) > 1 else seconds[0],
            "mean": float(np.mean(seconds)),
            "iterations": float(np.mean([r.iterations for r in results])),
            "converged": sum(r.converged for r in results),
            "samples": len(results),
            "pc": chain.pc,
        }
        if best is None or cell[best_by] < best[best_by]:
            best = cell
    return best


def text(cell: dict, key: str = "rest") -> str:
    done, count = cell["converged"], cell["samples"]
    flag = "" if done == count else f" !{done}/{count}"
    return f"{cell[key] * 1e3:.0f} ms ({cell['iterations']:.1f} it){flag}"


def darcy(args) -> tuple[str, dict]:
    cases = [
        ("2D n=419 (421^2 nodes)", Darcy(419, 2, DarcyProblem(THRESHOLD)), ["direct"]),
        ("3D n=63 (64^3 cells)", Darcy(63, 3, DarcyProblem(THRESHOLD)), ["ilu"]),
    ]
    lines = ["| case | solver | first sample | per sample after | ", "|---|---|---|---|"]
    data = {}
    for label, family, baselines in cases:
        samples = [family.sample(0, i) for i in range(args.samples)]
        solvers = [("cg", "mg"), ("rcg", "mg"), ("cg", "gamg")]
        solvers += [("direct", "cholesky") if b == "direct" else ("cg", b) for b in baselines]
        for method, pc in solvers:
            cell = run(family, samples, method, pc, args.repeats)
            data[f"{label}: {method}+{pc}"] = cell
            lines.append(
                f"| {label} | {method} + {pc} | {cell['first'] * 1e3:.0f} ms | {text(cell)} |"
            )
    return "\n".join(lines), data


SHIFT_CASES = {
    "2D n=63, k in [6, 12]": (63, 2, (6.0, 12.0), 20),
    "2D n=127, k in [15, 25]": (127, 2, (15.0, 25.0), 10),
    "3D n=31, k in [9, 14]": (31, 3, (9.0, 14.0), 8),
    "2D n=255, k in [20, 40]": (255, 2, (20.0, 40.0), 6),
}


def shift(args) -> tuple[str, dict]:
    betas = (0.0, 0.5, 1.0, 2.0)
    lines = ["| case | " + " | ".join(f"beta = {b:g}" for b in betas) + " |"]
    lines.append("|---" * (len(betas) + 1) + "|")
    data = {}
    for label, (n, dim, k, count) in SHIFT_CASES.items():
        family = Helmholtz(n, dim, HelmholtzProblem(wavenumber=RangeSpec(*k)))
        samples = sorted_samples(family, count)
        row = []
        for beta in betas:
            # the instance's beta, for this measurement only
            family.shift_by_dim = {**Helmholtz.shift_by_dim, family.dim: beta}
            cell = run(family, samples, "gcrodr", "mg", 1)
            data[f"{label}: beta={beta}"] = cell
            row.append(text(cell, "mean"))
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    # Does the coarsest grid have to resolve k? Fewer levels against all 7 (127 -> ... -> 1),
    # and an exact solve with the shifted operator (pc lu on P) as the ideal V-cycle.
    family = Helmholtz(127, 2, HelmholtzProblem(wavenumber=RangeSpec(15.0, 25.0)))
    samples = sorted_samples(family, 10)
    variants = {f"{levels} levels": MGSettings(max_levels=levels) for levels in (2, 3, 4, 5)}
    variants["all 7 levels"] = MGSettings()
    lines += ["", "| 2D n=127, k in [15, 25], beta = 1 | GCRO-DR(40, 20) |", "|---|---|"]
    for label, settings in variants.items():
        cell = run(family, samples, "gcrodr", "mg", 1, multigrid=settings)
        data[f"levels: {label}"] = cell
        lines.append(f"| mg, {label} | {text(cell, 'mean')} |")
    cell = run(family, samples, "gcrodr", "lu", 1, on_shifted=True)
    data["levels: exact"] = cell
    lines.append(f"| exact solve with the shifted operator (lu) | {text(cell, 'mean')} |")
    return "\n".join(lines), data


def helmholtz(args) -> tuple[str, dict]:
    family = Helmholtz(47, 3, HelmholtzProblem(wavenumber=RangeSpec(9.0, 14.0)))
    samples = sorted_samples(family, args.samples)
    lines = [
        "| solver | per sample (whole chain) | first sample | CPU per sample, with assembly |",
        "|---|---|---|---|",
    ]
    data = {}
    for method, pc, count, repeats, restart, recycle in (
        ("gcrodr", "mg", len(samples), args.repeats, 40, 20),
        ("gcrodr", "mg", len(samples), 1, 80, 40),
        ("gmres", "mg", len(samples), 1, 40, 20),
        ("gcrodr", "ilu", len(samples), args.repeats, 40, 20),
        ("gcrodr", "ilu", len(samples), 1, 80, 40),
        ("direct", "lu", 2, 1, 40, 20),  # tens of seconds per factorisation
    ):
        cell = run(family, samples[:count], method, pc, repeats, restart, recycle)
        name = f"{method}({restart}, {recycle})" if method == "gcrodr" else method
        data[f"{name}+{pc}"] = cell
        lines.append(
            f"| {name} + {pc} | {text(cell, 'mean')} | {cell['first']:.2f} s "
            f"| {cell['cpu_per_sample'] * 1e3:.0f} ms |"
        )
    return "\n".join(lines), data


#: GCRO-DR's (restart, recycle) settings the sweep tries for each preconditioner
SWEEP = (
    (40, 20),
    (60, 20),
    (60, 30),
    (80, 10),
    (80, 20),
    (80, 30),
    (80, 40),
    (100, 20),
    (100, 40),
    (100, 50),
    (120, 40),
    (120, 60),
)


def helmholtz_sweep(args) -> tuple[str, dict]:
    """Each preconditioner at its own best recycled space: the fair version of the 2x target
    (a baseline tuned as well as the method it is compared with). CPU time per sample over
    the whole chain, which load on the machine distorts less than wall time."""
    family = Helmholtz(47, 3, HelmholtzProblem(wavenumber=RangeSpec(9.0, 14.0)))
    samples = sorted_samples(family, args.samples)
    lines = [
        "| GCRO-DR(restart, recycle) | + mg: CPU per sample | + ilu: CPU per sample | ilu / mg |",
        "|---|---|---|---|",
    ]
    data: dict = {}
    for restart, recycle in SWEEP:
        row = {}
        for pc in ("mg", "ilu"):
            row[pc] = run(
                family,
                samples,
                "gcrodr",
                pc,
                args.repeats,
                restart,
                recycle,
                best_by="cpu_per_sample",
            )
            data[f"gcrodr({restart}, {recycle})+{pc}"] = row[pc]
        cells = [
            f"{c['cpu_per_sample'] * 1e3:.0f} ms ({c['iterations']:.1f} it)"
            + ("" if c["converged"] == c["samples"] else f" !{c['converged']}/{c['samples']}")
            for c in (row["mg"], row["ilu"])
        ]
        ratio = row["ilu"]["cpu_per_sample"] / row["mg"]["cpu_per_sample"]
        lines.append(f"| ({restart}, {recycle}) | {cells[0]} | {cells[1]} | {ratio:.2f} |")
    best = {
        pc: min(
            (k for k in data if k.endswith(f"+{pc}") and data[k]["converged"] == args.samples),
            key=lambda k: data[k]["cpu_per_sample"],
        )
        for pc in ("mg", "ilu")
    }
    ratio = data[best["ilu"]]["cpu_per_sample"] / data[best["mg"]]["cpu_per_sample"]
    lines.append(f"| **best of each** | {best['mg']} | {best['ilu']} | **{ratio:.2f}** |")
    data["best"] = {**best, "ratio": ratio}
    return "\n".join(lines), data


CASES = {"darcy": darcy, "shift": shift, "helmholtz": helmholtz, "sweep": helmholtz_sweep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=list(CASES))
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.samples is None:
        args.samples = {"darcy": 5, "shift": 0, "helmholtz": 10, "sweep": 10}[args.case]
    table, data = CASES[args.case](args)
    repeats = {
        "shift": "one chain per cell",
        "darcy": f"best of {args.repeats} chains",
        "helmholtz": f"best of {args.repeats} chains for the (40, 20) rows, one for the others",
        "sweep": f"3D n = 47, k in [9, 14], {args.samples} samples, best of {args.repeats} "
        "chains per cell",
    }[args.case]
    head = f"rtol 1e-8, {repeats}; cells: time (mean iterations)."
    save(f"multigrid_{args.case}", head + "\n\n" + table, data)


if __name__ == "__main__":
    main()
