"""Sorted Krylov recycling against baselines, side by side in one run.

Every method solves the same systems through `solvers.solve_sequence`, with the same
preconditioner, tolerance and convergence test (||b - A x|| <= rtol ||b||, zero initial guess
unless the row says "warm"). Recycling rows are solved in the sorted order and their total
includes the sorting time; independent methods need no order and are timed in generation
order. A method that leaves any system unconverged is marked with "!" (its time is then a lower
bound). Writes benchmarks/results/<case>.{md,json} and prints the table.

    python benchmarks/recycling.py darcy        # 10^4 unknowns, 100 samples
    python benchmarks/recycling.py helmholtz    # indefinite, 3969 unknowns, 30 samples
    python benchmarks/recycling.py darcy3d      # 97336 unknowns, 20 samples
    python benchmarks/recycling.py helmholtz3d  # 27000 unknowns, 20 samples
    python benchmarks/recycling.py poisson|heat|convection  # the other families (2D)

Heat rows solve each sample's first time step (its trajectory reuses that one matrix).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np
from tables import save

from pdegen.families import ConvectionDiffusion, Darcy, Heat, Helmholtz, Poisson
from pdegen.families.convection import ConvectionProblem
from pdegen.families.darcy import DarcyProblem
from pdegen.families.heat import HeatProblem
from pdegen.families.helmholtz import HelmholtzProblem
from pdegen.families.poisson import PoissonProblem
from pdegen.specs import CoefficientSpec, RangeSpec
from solvers import ChainSolver, order_systems, solve_sequence


@dataclass
class Case:
    family: object
    samples: int
    pcs: list[str]
    methods: list[str]  # run with every pc
    extras: list[str]  # run with `extra_pc` only
    extra_pc: str
    max_iterations: int = 20000
    seed: int = 1
    notes: list[str] = field(default_factory=list)


CASES = {
    "darcy": lambda: Case(
        Darcy(100, 2, DarcyProblem(CoefficientSpec(kind="threshold"))),
        100,
        ["none", "jacobi", "sor", "bjacobi", "ilu", "gamg"],
        ["gmres", "gcrodr", "gcrodr k10", "cg", "rcg"],
        [
            "gcrodr u1",
            "gcrodr unsorted",
            "gcrodr warm",
            "cg warm",
            "rcg warm",
            "gcrotmk",
            "cg fischer",
            "direct",
        ],
        "jacobi",
    ),
    "helmholtz": lambda: Case(
        Helmholtz(63, 2, HelmholtzProblem()),
        30,
        ["none", "jacobi", "sor", "bjacobi", "ilu"],
        ["gmres", "gcrodr"],
        [
            "gcrodr u1",
            "gcrodr unsorted",
            "gcrodr warm",
            "gmres warm",
            "gcrotmk",
            "gmres pod",
            "direct",
        ],
        "jacobi",
        max_iterations=30000,
    ),
    "helmholtz3d": lambda: Case(
        Helmholtz(30, 3, HelmholtzProblem(wavenumber=RangeSpec(9.0, 14.0))),
        20,
        ["jacobi", "ilu"],
        ["gmres", "gcrodr"],
        ["gcrodr unsorted", "gcrodr warm", "direct"],
        "ilu",
        max_iterations=30000,
    ),
    "poisson": lambda: Case(
        Poisson(127, 2, PoissonProblem()),
        50,
        ["jacobi", "gamg"],
        ["gmres", "gcrodr", "cg", "rcg"],
        ["cg fischer", "direct"],
        "jacobi",
    ),
    "heat": lambda: Case(
        Heat(63, 2, HeatProblem()),
        30,
        ["jacobi", "ilu"],
        ["gmres", "gcrodr", "cg", "rcg"],
        ["direct"],
        "jacobi",
    ),
    "convection": lambda: Case(
        ConvectionDiffusion(63, 2, ConvectionProblem()),
        30,
        ["none", "jacobi", "ilu"],
        ["gmres", "gcrodr"],
        ["gcrodr unsorted", "gcrotmk", "direct"],
        "ilu",
    ),
    "darcy3d": lambda: Case(
        Darcy(46, 3, DarcyProblem(CoefficientSpec(kind="threshold"))),
        20,
        ["jacobi", "ilu", "gamg"],
        ["gmres", "gcrodr", "cg", "rcg"],
        ["gcrodr warm", "rcg warm", "direct"],
        "jacobi",
    ),
}


def run_row(label, systems, order, sort_seconds, pc, rtol, max_iterations, spd):
    parts = label.split()
    method, variant = parts[0], (parts[1] if len(parts) > 1 else "")
    sorted_run = method in ("gcrodr", "rcg", "gcrotmk") and variant != "unsorted"
    sorted_run = sorted_run or variant in ("warm", "fischer", "pod")
    chain = [systems[i] for i in order] if sorted_run else systems
    direct_pc = "cholesky" if spd else "lu"
    kwargs = dict(
        method=method,
        pc=direct_pc if method == "direct" else pc,
        rtol=rtol,
        max_iterations=max_iterations,
        warm_start=variant == "warm",
        guess=variant if variant in ("fischer", "pod") else None,
        recycle=int(variant[1:]) if variant.startswith("k") else (10 if method == "rcg" else 20),
        # "u1": refresh GCRO-DR's recycle space after every cycle (the default is every third)
        options={"ksp_gcrodr_update_every": variant[1:]}
        if re.fullmatch(r"u\d+", variant)
        else None,
    )
    results = solve_sequence(chain, **kwargs)
    solve = sum(r.seconds for r in results)
    its = [r.iterations for r in results]
    return {
        "method": label,
        "pc": kwargs["pc"],
        "rtol": rtol,
        "sorted": sorted_run,
        "sort_seconds": sort_seconds if sorted_run else 0.0,
        "solve_seconds": solve,
        "total_seconds": solve + (sort_seconds if sorted_run else 0),
        "iterations_mean": float(np.mean(its)),
        "iterations_max": int(np.max(its)),
        "converged": sum(r.converged for r in results),
        "systems": len(results),
    }


def solver_memory(systems, order, pc, counts):
    """Peak numpy allocation (tracemalloc) while a GCRO-DR chain runs, for several chain
    lengths; each solution is dropped as soon as it is returned, as a batch writer would."""
    peaks = {}
    for count in counts:
        tracemalloc.start()
        chain = ChainSolver("gcrodr", pc=pc)
        for i in order[:count]:
            chain.solve(*systems[i])
        peaks[count] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peaks


def markdown(case_name, case, rows, n, sort_seconds, memory):
    lines = [
        f"### {case_name}: {type(case.family).__name__} {case.family.dim}D, {n} unknowns, "
        f"{case.samples} samples",
        "",
        f"Sorting ({'greedy'}): {sort_seconds:.3f} s, counted in every sorted row. "
        "Cells: total seconds (mean iterations per solve); ratio = GMRES(40) time / "
        "this time, same preconditioner. `!k/N`: only k of N systems converged.",
        "",
    ]
    for rtol in sorted({r["rtol"] for r in rows}, reverse=True):
        sub = [r for r in rows if r["rtol"] == rtol]
        pcs = list(dict.fromkeys(r["pc"] for r in sub if not r["method"].startswith("direct")))
        lines += [
            f"rtol = {rtol:g}",
            "",
            "| method | " + " | ".join(pcs) + " |",
            "|---|" + "---|" * len(pcs),
        ]
        base = {r["pc"]: r for r in sub if r["method"] == "gmres"}
        for label in dict.fromkeys(r["method"] for r in sub):
            cells = []
            for pc in pcs:
                match = [
                    r
                    for r in sub
                    if r["method"] == label and (r["pc"] == pc or label.startswith("direct"))
                ]
                if not match or (label.startswith("direct") and pc != pcs[0]):
                    cells.append("")
                    continue
                r = match[0]
                ok, total = r["converged"], r["systems"]
                flag = "" if ok == total else f" !{ok}/{total}"
                ratio = ""
                if pc in base and not label.startswith("gmres "):
                    b = base[pc]
                    ratio = (
                        f", {'≥' if b['converged'] < b['systems'] else ''}"
                        f"{b['total_seconds'] / r['total_seconds']:.2f}x"
                    )
                name = f"{r['pc']}: " if label.startswith("direct") else ""
                cells.append(
                    f"{name}{r['total_seconds']:.2f} s ({r['iterations_mean']:.0f}{ratio}){flag}"
                )
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    if memory:
        lines.append(
            "GCRO-DR peak numpy memory by chain length: "
            + ", ".join(f"{k} systems: {v / 2**20:.1f} MiB" for k, v in memory.items())
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--rtol", type=float, nargs="+", default=[1e-5, 1e-8])
    parser.add_argument("--samples", type=int, help="override the case's sample count")
    parser.add_argument("--pcs", nargs="+", help="override the case's preconditioners")
    args = parser.parse_args()
    case = CASES[args.case]()
    if args.samples:
        case.samples = args.samples
    if args.pcs:
        case.pcs = args.pcs
    fam = case.family
    samples = [fam.sample(case.seed, i) for i in range(case.samples)]
    systems = [fam.system(s) for s in samples]
    start = time.perf_counter()
    order = order_systems(np.stack([fam.features(s) for s in samples]), "greedy")
    sort_seconds = time.perf_counter() - start
    rows = []
    for rtol in args.rtol:
        plan = [(m, pc) for pc in case.pcs for m in case.methods]
        plan += [(m, case.extra_pc) for m in case.extras]
        for label, pc in plan:
            row = run_row(
                label,
                systems,
                order,
                sort_seconds,
                pc,
                rtol,
                case.max_iterations,
                spd=fam.positive_definite,
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
    memory = solver_memory(systems, order, case.extra_pc, [max(2, case.samples // 4), case.samples])
    n = systems[0][0].shape[0]
    text = markdown(args.case, case, rows, n, sort_seconds, memory)
    machine = f"{platform.node()}, {platform.processor() or platform.machine()}"
    save(args.case, text, {"case": args.case, "machine": machine, "rows": rows, "memory": memory})


if __name__ == "__main__":
    main()
