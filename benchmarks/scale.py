"""Per-sample solve time and peak memory against unknowns, per method, with fitted exponents
and a log-log plot: Darcy, Helmholtz and heat's implicit step, 2D and 3D.

Each case (family, dimension, n, method) runs in its own fresh process, as one worker would:
a few samples through the one solve harness (`ChainSolver`, rtol 1e-8, the family's own
multigrid settings), time per sample after the first (set-up amortised, as in a dataset),
and the process's peak resident memory (`wait4`'s ru_maxrss: Python, PETSc, the matrices,
the preconditioner and the Krylov space together), which is the memory one worker needs.
A method is dropped at larger sizes once one case passes `--budget` seconds per sample.

- darcy: threshold 12 / 3 (the FNO law), one solve per sample.
- helmholtz: fixed wavenumbers (2D k in [10, 15], 3D k in [9, 14]) as the grid refines, the
  samples in the greedy chain order pdegen solves them in (recycling depends on it); time per
  sample over the whole chain.
- heat: Crank-Nicolson, dt = 0.002, 10 steps per trajectory; time per implicit step (a
  trajectory's matrix is factorised or set up once and serves all its steps).

    .venv/bin/python benchmarks/scale.py darcy [--samples 3] [--budget 20]
    .venv/bin/python benchmarks/scale.py helmholtz --samples 4
    .venv/bin/python benchmarks/scale.py heat

Writes benchmarks/results/scale_<family>.md (.json) and docs/scale_<family>.png
(docs/scale.png for darcy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tables import save

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"

#: per family: sizes per dimension, methods per dimension, the largest n per (dim, method)
CASES: dict[str, dict] = {
    "darcy": {
        "sizes": {2: (63, 127, 255, 511, 1023), 3: (15, 31, 63, 95, 127)},
        "methods": {
            2: [("cg", "mg"), ("direct", "cholesky"), ("cg", "gamg"), ("cg", "ilu")],
            3: [("cg", "mg"), ("cg", "ilu"), ("cg", "gamg"), ("direct", "cholesky")],
        },
        # a 3D factorisation at 64^3 takes minutes per sample
        "largest": {(3, "direct", "cholesky"): 31},
    },
    "helmholtz": {
        "sizes": {2: (63, 127, 255, 511), 3: (31, 47, 63, 95)},
        "methods": {
            2: [("direct", "lu"), ("gcrodr", "mg"), ("gcrodr", "ilu")],
            3: [("gcrodr", "mg"), ("gcrodr", "ilu"), ("direct", "lu")],
        },
        "largest": {(3, "direct", "lu"): 31},
    },
    "heat": {
        "sizes": {2: (63, 127, 255, 511, 1023), 3: (15, 31, 63, 95)},
        "methods": {
            2: [("direct", "cholesky"), ("cg", "mg"), ("cg", "jacobi"), ("cg", "ilu")],
            3: [("cg", "ilu"), ("cg", "mg"), ("cg", "jacobi"), ("direct", "cholesky")],
        },
        "largest": {(3, "direct", "cholesky"): 31},
    },
}


def make_family(name: str, n: int, dim: int):
    from pdegen.families import Darcy, Heat, Helmholtz
    from pdegen.families.darcy import DarcyProblem
    from pdegen.families.heat import HeatProblem
    from pdegen.families.helmholtz import HelmholtzProblem
    from pdegen.specs import CoefficientSpec, RangeSpec

    threshold = CoefficientSpec(kind="threshold", alpha=2.0, tau=3.0, high=12.0, low=3.0)
    if name == "darcy":
        return Darcy(n, dim, DarcyProblem(threshold))
    if name == "helmholtz":
        k = RangeSpec(10.0, 15.0) if dim == 2 else RangeSpec(9.0, 14.0)
        return Helmholtz(n, dim, HelmholtzProblem(wavenumber=k))
    return Heat(n, dim, HeatProblem(steps=10))


def run_case(name: str, n: int, dim: int, method: str, pc: str, samples: int) -> dict:
    """One case in this process: seconds per sample (heat: per step) after the first, and
    mean iterations (per solve)."""
    from multigrid import sorted_samples

    from solvers import ChainSolver

    family = make_family(name, n, dim)
    if name == "helmholtz":  # in the greedy chain order pdegen solves them in
        drawn = sorted_samples(family, samples)
    else:
        drawn = [family.sample(0, i) for i in range(samples)]
    chain = ChainSolver(
        method,
        pc,
        rtol=1e-8,
        grid=family.interior_shape,
        max_iterations=5000,
        multigrid=family.multigrid_settings(),
    )
    per_sample = [family.solve_sample(s, chain)[1] for s in drawn]
    converged = all(r.converged for results in per_sample for r in results)
    # a recycling chain (Helmholtz): its mean over the whole chain; else after the first
    kept = per_sample if name == "helmholtz" else per_sample[1:] or per_sample
    solves = [r for results in kept for r in results]
    unit = sum(len(results) for results in kept) if name == "heat" else len(kept)
    return {
        "seconds": sum(r.seconds for r in solves) / unit,
        "iterations": float(np.mean([r.iterations for r in solves])),
        "converged": converged,
        "pc": chain.pc,
    }


def in_fresh_process(name, n, dim, method, pc, samples) -> dict:
    """`run_case` in a child process: its result and its peak resident memory (MiB)."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(HERE)!r}); from scale import run_case; "
        "print('RESULT', json.dumps(run_case(*json.loads(sys.argv[1]))))"
    )
    args = json.dumps([name, n, dim, method, pc, samples])
    proc = subprocess.Popen(
        [sys.executable, "-c", code, args], stdout=subprocess.PIPE, text=True, cwd=HERE
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{name} {dim}D n={n} {method}+{pc} failed (exit {proc.returncode})")
    result = json.loads(lines[-1][len("RESULT ") :])
    result["peak_mib"] = usage.ru_maxrss / 1024
    return result


def fitted_exponent(points: list[tuple[int, float]]) -> float:
    pts = [(u, s) for u, s in points if np.isfinite(s) and s > 0]
    if len(pts) < 2:
        return float("nan")
    return float(np.polyfit(np.log([u for u, _ in pts]), np.log([s for _, s in pts]), 1)[0])


def plot(name: str, data: dict, fits: dict, unit: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for ax, dim in zip(axes, (2, 3), strict=True):
        for key, points in data.items():
            if not key.startswith(f"{dim}D"):
                continue
            pts = [(u, s) for u, s in points if np.isfinite(s)]
            label = f"{key[3:]} (p = {fits.get(key, float('nan')):.2f})"
            ax.loglog([u for u, _ in pts], [s for _, s in pts], "o-", label=label)
        ax.set_xlabel("unknowns")
        ax.set_ylabel(f"seconds per {unit}")
        ax.set_title(f"{name} {dim}D, rtol 1e-8")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    target = DOCS / ("scale.png" if name == "darcy" else f"scale_{name}.png")
    fig.savefig(target, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=list(CASES))
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per sample")
    parser.add_argument("--dims", default="2,3")
    args = parser.parse_args()
    spec = CASES[args.family]
    unit = "step" if args.family == "heat" else "sample"
    rows, data = [], {}
    for dim in map(int, args.dims.split(",")):
        alive = dict.fromkeys(spec["methods"][dim], True)
        for n in spec["sizes"][dim]:
            for method, pc in spec["methods"][dim]:
                if not alive[(method, pc)] or n > spec["largest"].get((dim, method, pc), n):
                    continue
                start = time.perf_counter()
                cell = in_fresh_process(args.family, n, dim, method, pc, args.samples)
                if time.perf_counter() - start > args.budget * args.samples:
                    alive[(method, pc)] = False  # the next size would take far too long
                seconds = cell["seconds"] if cell["converged"] else float("nan")
                data.setdefault(f"{dim}D {method}+{pc}", []).append((n**dim, seconds))
                rows.append((dim, n, method, cell["pc"], cell))
                flag = "" if cell["converged"] else " NOT CONVERGED"
                print(
                    f"{dim}D n={n} {method}+{cell['pc']}: {cell['seconds'] * 1e3:.1f} ms "
                    f"({cell['iterations']:.1f} it, {cell['peak_mib']:.0f} MiB){flag}",
                    flush=True,
                )
    lines = [
        f"| dim | n | unknowns | method | ms per {unit} | iterations | peak MiB per worker |",
        "|---|---|---|---|---|---|---|",
    ]
    for dim, n, method, pc, cell in rows:
        ms = f"{cell['seconds'] * 1e3:.1f}" + ("" if cell["converged"] else " (not converged)")
        lines.append(
            f"| {dim}D | {n} | {n**dim} | {method} + {pc} | {ms} | {cell['iterations']:.1f} "
            f"| {cell['peak_mib']:.0f} |"
        )
    lines += ["", "| method | fitted exponent (time ~ unknowns^p) | sizes |", "|---|---|---|"]
    fits = {key: fitted_exponent(points) for key, points in data.items()}
    for key, p in fits.items():
        if np.isfinite(p):
            lines.append(f"| {key} | {p:.2f} | {len(data[key])} |")
    save(f"scale_{args.family}", "\n".join(lines), {"rows": rows, "fits": fits})
    plot(args.family, data, fits, unit)


if __name__ == "__main__":
    main()
