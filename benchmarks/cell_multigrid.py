"""Geometric multigrid on cell-centred grids against the node grid (issue 27, point 2).

    cd benchmarks && ../.venv/bin/python cell_multigrid.py     # about 1 minute

Darcy's operator (thresholded GRF coefficient 12 / 3, alpha 2, tau 3, f = 1, u = 0 on the
walls) solved by CG + mg (Gauss-Seidel down, back up, V-cycle, Galerkin coarse operators, rtol
1e-8), 6 samples per grid, the median of the last 5 solves, each solution checked against
scipy's direct solve:
- on n cells (`cell_diffusion_operator`), with the hierarchy pdegen uses (`solvers.cells`:
  the centres halved as nodes) and with classic cell-centred coarsening (pairs of cells
  merged, bilinear interpolation between coarse centres: built here, measured, not kept);
- on the node grid of n + 1 points (n intervals, n - 1 interior unknowns), the neighbour a
  node-grid user would pick.

Then `recipes/darcy.yaml` as a user runs it, `auto`'s choice, through the batch path a
worker runs (`solve_rows`, best of 2 batches, seconds per sample after the first): n cells
(`--set grid.layout=cells --set grid.n=n`) against the node grids of n + 1 and n points per axis.
Writes benchmarks/results/cell_multigrid.md.
"""

from __future__ import annotations

import time
from unittest import mock

import numpy as np
import scipy.sparse.linalg as spl
from auto_by3 import per_sample
from tables import save

from pdegen.discretisation.fields import gaussian_random_field, sample_rng
from pdegen.discretisation.operators import cell_diffusion_operator, diffusion_operator
from solvers import cells
from solvers.multigrid import Levels, MGSettings, positions_interpolation
from solvers.sequence import ChainSolver

SIZES = (64, 100, 128, 255, 256)
SAMPLES = 6


def coefficient(points: np.ndarray, seed: int) -> np.ndarray:
    field = gaussian_random_field(sample_rng(1, seed), [points, points], 2.0, 3.0)
    return np.where(field >= 0.0, 12.0, 3.0)


class PairedCells(Levels):
    """Classic cell-centred coarsening: pairs of cells merged while every axis is even,
    linear interpolation between the cells' centres (3/4, 1/4; 1/2 next to a wall)."""

    def __init__(self, shape, max_levels=None, dof=1):
        shapes = [tuple(shape)]
        while all(c % 2 == 0 and c >= 2 for c in shapes[-1]):
            shapes.append(tuple(c // 2 for c in shapes[-1]))
        self.coarsening = cells.CellCoarsening(tuple(shapes))
        positions = []
        for level in shapes:  # centres in units of half the finest cell, walls around them
            width = 2 * shapes[0][0] // level[0]
            centres = width // 2 + width * np.arange(level[0])
            positions.append([np.concatenate([[0], centres, [2 * shapes[0][0]]])] * len(level))
        self.interpolations = [
            positions_interpolation(f, c, dof)
            for f, c in zip(positions[:-1], positions[1:], strict=True)
        ][::-1]


def solve(n: int, layout: str) -> tuple[list[int], float, str]:
    """(iterations, median seconds, preconditioner run) over `SAMPLES` solves."""
    if layout == "nodes":
        points, grid = np.linspace(0.0, 1.0, n + 1), (n - 1, n - 1)
    else:
        points, grid = (np.arange(n) + 0.5) / n, (n, n)
    settings = MGSettings(smoother="gs", layout="nodes" if layout == "nodes" else "cells")
    chain = ChainSolver("cg", pc="mg", rtol=1e-8, grid=grid, multigrid=settings)
    iterations, seconds = [], []
    for seed in range(SAMPLES):
        a = coefficient(points, seed)
        A = (
            diffusion_operator(a, 1.0 / n)[0]
            if layout == "nodes"
            else cell_diffusion_operator(a, 1.0 / n)
        )
        b = np.ones(A.shape[0])
        start = time.perf_counter()
        result = chain.solve(A, b)
        seconds.append(time.perf_counter() - start)
        iterations.append(result.iterations)
        exact = spl.spsolve(A.tocsc(), b)
        assert np.linalg.norm(result.x - exact) <= 1e-6 * np.linalg.norm(exact), (n, layout)
    return iterations, float(np.median(seconds[1:])), chain.pc


def main() -> None:
    lines = [
        "| n | cells: pdegen (centres halved) | cells: paired, bilinear | "
        "nodes: n + 1 points | pdegen cells / nodes | paired / pdegen cells |",
        "|---|---|---|---|---|---|",
    ]
    data = {}
    for n in SIZES:
        ours = solve(n, "cells")
        plan = mock.patch.object(
            cells, "coarsen_cells", lambda shape, m=None: PairedCells(shape).coarsening
        )
        with mock.patch.object(cells, "shared_cell_hierarchy", PairedCells), plan:
            paired = solve(n, "paired")
        nodes = solve(n, "nodes")
        data[n] = {"cells": ours, "paired": paired, "nodes": nodes}

        def cell(result):
            its, seconds, pc = result
            return f"{seconds * 1e3:.1f} ms, {min(its)}-{max(its)} its ({pc})"

        lines.append(
            f"| {n} | {cell(ours)} | {cell(paired)} | {cell(nodes)} | "
            f"{ours[1] / nodes[1]:.2f}x | {paired[1] / ours[1]:.2f}x |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        "| darcy.yaml, `auto` | n cells | n + 1 points (n - 1 interior nodes) | n points | "
        "cells / n + 1 points |",
        "|---|---|---|---|---|",
    ]
    for n, samples in ((128, 12), (256, 8)):
        runs = [
            per_sample("darcy.yaml", [f"grid.n={n}", "grid.layout=cells"], samples, 2),
            per_sample("darcy.yaml", [f"grid.n={n - 1}"], samples, 2),
            per_sample("darcy.yaml", [f"grid.n={n - 2}"], samples, 2),
        ]
        data[f"darcy.yaml {n}"] = runs
        cells_ = [
            f"{r['ran']}: {r['seconds'] * 1e3:.1f} ms ({r['iterations']:.1f} it)" for r in runs
        ]
        ratio = runs[0]["seconds"] / runs[1]["seconds"]
        lines.append(f"| {n} | " + " | ".join(cells_) + f" | {ratio:.2f}x |")
        print(lines[-1], flush=True)
    save("cell_multigrid", "\n".join(lines), data)


if __name__ == "__main__":
    main()
