"""Helmholtz: the complex-shifted Laplacian in real 2 x 2 block form against the real shift.

    python benchmarks/complex_shift.py            # 3D n = 31, two wavenumber bands; ~12 min

The preconditioner of Erlangga, Oosterlee and Vuik (2006), M = -div(a grad) - (1 - 0.5i) k^2,
applied to the real Helmholtz matrix A through the real equivalent form
(`solvers.real_equivalent`): GCRO-DR runs on kron(A, I2) with right-hand side (b, 0), the
preconditioner is M's 2 x 2 block form, either factorised exactly (what the best V-cycle
could approach) or a Galerkin V-cycle on the two-dof node grid with Gauss-Seidel smoothing.
Against it, what `pc: mg` runs: a V-cycle on the real shift -div(a grad) + k^2 / 2 I. Each
row is a chain of samples in pdegen's greedy order, GCRO-DR(40, 20), rtol 1e-8 on the true
residual of A x = b; cells: CPU per sample over the chain (assembly included) and mean
iterations. Writes benchmarks/results/complex_shift.md.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np
from multigrid import sorted_samples, text
from tables import save

from pdegen.families import Helmholtz
from pdegen.families.helmholtz import HelmholtzProblem
from pdegen.specs import RangeSpec
from solvers import ChainSolver
from solvers.baselines import make_ksp
from solvers.multigrid import MGSettings, configure_multigrid
from solvers.petsc import MatrixSlot, vec_from_array
from solvers.real_equivalent import RealEquivalent, interleave

#: the imaginary part of the shift, in units of k^2 (Erlangga, Oosterlee and Vuik's 0.5)
IMAGINARY_SHIFT = 0.5
CASES = {"k in [9, 14]": (9.0, 14.0, 6), "k in [18, 25]": (18.0, 25.0, 3)}


def real_shift(family, samples) -> dict:
    chain = ChainSolver(
        "gcrodr",
        "mg",
        rtol=1e-8,
        grid=family.interior_shape,
        max_iterations=5000,
        multigrid=family.multigrid_settings(),
    )
    cpu = time.process_time()
    results = [family.solve_sample(s, chain)[1][0] for s in samples]
    return cell(results, cpu)


def complex_shift(family, samples, preconditioner: str) -> dict:
    """GCRO-DR on the real equivalent form, preconditioned by the complex-shifted operator's
    block form: "lu" factorises it, "mg" is a V-cycle on it."""
    ksp = make_ksp("gcrodr", "mg", rtol=1e-8, max_iterations=5000)
    pc = ksp.getPC()
    if preconditioner == "lu":
        pc.setType("lu")
        pc.setFactorOrdering("nd")
    else:
        configure_multigrid(pc, family.interior_shape, MGSettings(smoother="gs"), dof=2)
    forms, slot, pslot = RealEquivalent(), MatrixSlot(), MatrixSlot()
    cpu = time.process_time()
    results = []
    for sample in samples:
        A, b = family.system(sample)
        k2 = sample.params["wavenumber"] ** 2
        K = slot.load(forms.real_operator(A))
        M = pslot.load(forms.shifted_operator(A, IMAGINARY_SHIFT * k2))
        rhs = vec_from_array(interleave(b))
        x = rhs.duplicate()
        x.zeroEntries()
        ksp.setOperators(K, M)
        ksp.solve(rhs, x)
        u = x.getArray()[0::2]
        residual = np.linalg.norm(b - A @ u) / np.linalg.norm(b)
        converged = bool(residual <= 1e-8 and ksp.getConvergedReason() > 0)
        results.append(SimpleNamespace(iterations=ksp.getIterationNumber(), converged=converged))
    return cell(results, cpu)


def cell(results, cpu_start: float) -> dict:
    """CPU per sample since `cpu_start`, and the results' mean iterations and convergence."""
    return {
        "cpu_per_sample": (time.process_time() - cpu_start) / len(results),
        "iterations": float(np.mean([r.iterations for r in results])),
        "converged": int(sum(r.converged for r in results)),
        "samples": len(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=31, help="interior nodes per axis (3D)")
    args = parser.parse_args()
    lines = [
        f"| 3D n={args.n}, GCRO-DR(40, 20) | real shift, V-cycle (`pc: mg`) | complex shift, "
        "exact (LU of its block form) | complex shift, V-cycle |",
        "|---|---|---|---|",
    ]
    data = {}
    for label, (k_min, k_max, count) in CASES.items():
        problem = HelmholtzProblem(
            wavenumber=RangeSpec(k_min, k_max), min_points_per_wavelength=4.0
        )
        family = Helmholtz(args.n, 3, problem)
        samples = sorted_samples(family, count)
        cells = {
            "real mg": real_shift(family, samples),
            "complex lu": complex_shift(family, samples, "lu"),
            "complex mg": complex_shift(family, samples, "mg"),
        }
        data[label] = cells
        row = [text(c, "cpu_per_sample") for c in cells.values()]
        lines.append(f"| {label} ({count} samples) | " + " | ".join(row) + " |")
    save("complex_shift", "\n".join(lines), data)


if __name__ == "__main__":
    main()
