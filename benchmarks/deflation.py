"""How much can deflating CG gain at best? Recycling CG against CG and against an oracle.

Recycling CG (solvers.rcg) pays for its deflation with two passes over its k recycled vectors
in every iteration, about as much memory traffic as CG's own iteration at these sizes. It can
only win if deflation cuts the iterations by more than that. This script bounds what any
choice of deflation space can give: the "exact" row deflates every solve with the k true
smallest eigenvectors of M^{-1} A for that very matrix (computed by scipy's shift-invert
Lanczos, not timed), the best k-dimensional space in the CG convergence bound. Rows, side by
side in one run, same preconditioner and tolerance:
    cg     PETSc CG, unpreconditioned-residual test (the baseline);
    rcg    recycling CG carrying its Ritz space from solve to solve (the product's method);
    exact  the same deflated CG with the exact eigenvectors (the ceiling).

    python benchmarks/deflation.py           # writes benchmarks/results/deflation.md

Cases: Poisson (one matrix, several right-hand sides: the easiest case for recycling) and the
Darcy chain (a new matrix every sample), 2D, jacobi, rtol 1e-8, k = 10.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from tables import save

from pdegen.families import Darcy, Poisson
from pdegen.families.darcy import DarcyProblem
from pdegen.families.poisson import PoissonProblem
from pdegen.specs import CoefficientSpec
from solvers import ChainSolver

RTOL, K, SOLVES, PC = 1e-8, 10, 10, "jacobi"


def systems(case: str) -> list[tuple[sp.csr_matrix, np.ndarray]]:
    """Poisson hands every sample the same matrix object (Family.shared_operator)."""
    if case == "poisson":
        family = Poisson(127, 2, PoissonProblem())
    else:
        family = Darcy(100, 2, DarcyProblem(CoefficientSpec(kind="threshold")))
    return [family.system(family.sample(1, i)) for i in range(SOLVES)]


def smallest_eigenvectors(A: sp.csr_matrix, k: int) -> np.ndarray:
    """Rows: the k eigenvectors of D^{-1} A (D = diag A, the jacobi preconditioner) with the
    smallest eigenvalues, from the symmetric pencil A v = lambda D v."""
    D = sp.diags(A.diagonal()).tocsc()
    _, V = spla.eigsh(A.tocsc(), k=k, M=D, sigma=0, which="LM")
    return V.T


def run(label: str, chain: list, method: str, exact: bool) -> dict:
    solver = ChainSolver(method, PC, RTOL, recycle=K)
    its, seconds = [], 0.0
    for A, b in chain:
        if exact:
            solver.context.deflate_with(smallest_eigenvectors(A, K))
        start = time.perf_counter()
        result = solver.solve(A, b)
        seconds += time.perf_counter() - start
        if not result.converged:
            raise SystemExit(f"{label}: a solve did not converge ({result.reason})")
        its.append(result.iterations)
    # "exact" runs k products with A per solve to form A W, counted in its time like rcg's
    # own refresh; the eigensolve is outside the timer.
    return {"row": label, "iterations": float(np.mean(its)), "seconds": seconds / len(chain)}


def main() -> None:
    lines = [
        "Cells: mean iterations per solve, mean seconds per solve (eigensolves excluded), "
        f"ratios against CG in the same case. pc = {PC}, rtol = {RTOL:g}, k = {K}, "
        f"{SOLVES} solves per case.",
        "",
        "| case | method | iterations | ms per solve | CG its / its | CG time / time |",
        "|---|---|---|---|---|---|",
    ]
    data = []
    for case in ("poisson", "darcy"):
        chain = systems(case)
        rows = [
            run("cg", chain, "cg", False),
            run("rcg", chain, "rcg", False),
            run("exact", chain, "rcg", True),
        ]
        base = rows[0]
        for row in rows:
            lines.append(
                f"| {case} | {row['row']} | {row['iterations']:.0f} | "
                f"{1e3 * row['seconds']:.1f} | {base['iterations'] / row['iterations']:.2f}x | "
                f"{base['seconds'] / row['seconds']:.2f}x |"
            )
            data.append({"case": case, **row})
    save("deflation", "\n".join(lines), {"rows": data})


if __name__ == "__main__":
    main()
