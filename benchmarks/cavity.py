"""Cavity flow: recycling across the Oseen momentum steps against the same methods without it.

    python benchmarks/cavity.py          # n = 63 and 127, dt = 0.02 and 0.1; about 7 minutes
    python benchmarks/cavity.py --family channel   # the channel past cylinders; about 4 minutes

Every step of `Cavity` solves a nonsymmetric momentum system whose convection part changes
with the last step's velocity; this compares, on the same chains of steps and samples,
GCRO-DR (its recycled space carried across steps and samples) with GMRES (restarted every
step) under the same preconditioner, and a sparse LU refactorised at every step (the matrix
changes). GAMG is left out: on this nonsymmetric operator it left 16 of 20 steps unconverged
at 5000 iterations (n = 127, dt = 0.02). Every solve warm-starts from the last step's
velocity (the family's first guess, the same for every method) and converges to rtol 1e-8 on
the true residual. Cells: CPU seconds per
sample for the whole march (assembly and the pressure solves included, the same for every
row), per momentum step, and mean iterations per momentum step. A last table runs the same
march with the coupled Oseen step (`coupled`) instead of the projection, GMRES against
GCRO-DR. Writes benchmarks/results/cavity.md (cavity3d.md with --dim 3, channel.md with
--family channel: `Channel`'s steps, whose operator also changes with the sample's obstacles).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
from tables import save

from pdegen.families.cavity import Cavity, CavityProblem
from pdegen.families.channel import Channel, ChannelProblem
from pdegen.specs import RangeSpec
from solvers import ChainSolver

SOLVERS = [
    ("gmres", "ilu", {}),
    ("gcrodr", "ilu", {"recycle": 10}),
    ("gcrodr", "ilu", {"recycle": 20}),
    ("gmres", "asm", {}),
    ("gcrodr", "asm", {"recycle": 10}),
    ("direct", "lu", {}),
]
#: (n, dim, dt, t_end): the recipe's step on its grid and on Ghia's, the large step that
#: marches to a steady state (tests/test_cavity.py), and the 3D recipe's grid
CASES = [(63, 2, 0.02, 2.0), (127, 2, 0.02, 2.0), (127, 2, 0.1, 5.0), (31, 3, 0.02, 1.0)]
#: (n, dt, t_end) of the channel: the recipe's grid (256 x 64 cells) and step, from rest
#: through the start of shedding, and a 5x larger step
CHANNEL_CASES = [(64, 0.01, 3.0), (64, 0.05, 5.0)]


def channel_table(samples_count: int) -> None:
    """The solver table for `Channel`: Re in [20, 200], 1 to 3 cylinders per sample."""
    lines, data = [], {}
    for n, dt, t_end in CHANNEL_CASES:
        family = Channel(n, 2, ChannelProblem(t_end=t_end, frames=4, dt=dt))
        samples = [family.sample(0, i) for i in range(samples_count)]
        march(family, samples[:1], "gmres", "ilu", {})  # warm-up
        title = (
            f"channel, n = {n} ({family.nx} x {n} cells, {family.unknowns} velocity unknowns), "
            f"dt = {dt:g}, {family.time_stepping.steps} steps per sample, {samples_count} "
            "samples, Re in [20, 200]"
        )
        lines += solver_table(title, family, samples, f"channel n={n} dt={dt:g}", data)
    save("channel", "\n".join(lines), data)


def solver_table(title, family, samples, key, data, skip=()) -> list[str]:
    """One case's table: every momentum solver of SOLVERS (but the methods in `skip`) on
    the same samples; each cell also goes to `data` under `key` and the solver's label."""
    lines = [
        title,
        "",
        "| momentum solver | CPU per sample | per step | iterations per step |",
        "|---|---|---|---|",
    ]
    for method, pc, extra in SOLVERS:
        if method in skip:
            continue
        label = f"{method} + {pc}" + (f" (k = {extra['recycle']})" if extra else "")
        cell = march(family, samples, method, pc, extra)
        data[f"{key} {label}"] = cell
        flag = f" !{cell['unconverged']} unconverged" if cell["unconverged"] else ""
        lines.append(
            f"| {label} | {cell['per_sample']:.2f} s | {cell['per_step'] * 1e3:.1f} ms | "
            f"{cell['iterations']:.1f}{flag} |"
        )
    return [*lines, ""]


def march(family, samples, method, pc, extra) -> dict:
    chain = ChainSolver(method, pc, rtol=1e-8, max_iterations=5000, **extra)
    pressure = ChainSolver("direct", "cholesky", rtol=1e-12)
    cpu = time.process_time()
    momentum = []
    for sample in samples:
        _, results = family.trajectory(sample, chain.solve, lambda L, b: pressure.solve(L, b))
        momentum += results[0::2]
    cpu = time.process_time() - cpu
    return {
        "per_sample": cpu / len(samples),
        "per_step": cpu / len(momentum),
        "iterations": float(np.mean([r.iterations for r in momentum])),
        "unconverged": sum(not r.converged for r in momentum),
    }


def coupled(family, samples, method: str, recycle: int = 20) -> dict:
    """The same march with the coupled Oseen step instead of the projection: per step the
    saddle point [[F, G], [G^T, 0]] (F the momentum matrix, the first cell's pressure pinned,
    as `stokes` pins it) by `method` with PCFIELDSPLIT: an upper block triangular Schur
    factorisation, ILU(0) on F, and an exact LU of PETSc's "selfp" Schur approximation
    G^T diag(F)^-1 G (the SIMPLE pressure operator: F is diagonally dominant at these steps).
    Warm-started from the last step's velocity and pressure."""
    from petsc4py import PETSc

    from pdegen.families.cavity import Projection
    from pdegen.families.stokes import _gradient
    from solvers.baselines import make_ksp
    from solvers.fieldsplit import configure_fieldsplit
    from solvers.petsc import MatrixSlot, vec_from_array

    n, h, dt = family.n, family.h, family.problem.dt
    velocities, cells = family.velocity_unknowns, (family.n + 1) ** 2
    G = (h * _gradient(n, 2))[:, 1:].tocsr()  # the first cell's pressure pinned
    zero = sp.csr_matrix((np.zeros(cells - 1), (np.arange(cells - 1),) * 2))
    ksp = make_ksp(method, "fieldsplit", rtol=1e-8, max_iterations=5000, recycle=recycle)
    pc = ksp.getPC()
    blocks = {"velocity": np.arange(velocities), "pressure": velocities + np.arange(cells - 1)}
    configure_fieldsplit(pc, blocks, "ilu")
    pc.setFieldSplitSchurPreType(PETSc.PC.FieldSplitSchurPreType.SELFP)
    pc.setFieldSplitSchurFactType(PETSc.PC.FieldSplitSchurFactType.UPPER)
    PETSc.Options().setValue(f"{pc.getOptionsPrefix() or ''}fieldsplit_pressure_pc_type", "lu")
    pc.setFromOptions()
    slot, iterations, failed = MatrixSlot(), [], 0
    cpu = time.process_time()
    for sample in samples:
        march = Projection(family, sample.inputs["viscosity"], sample.params["lid_speed"])
        x = np.zeros(velocities + cells - 1)
        for _ in range(family.time_stepping.steps):
            F, b = march.momentum(x[:velocities], np.zeros(cells), dt)
            K = sp.bmat([[F, G], [G.T, zero]], format="csr")
            K.sort_indices()
            rhs = vec_from_array(np.concatenate([b, np.zeros(cells - 1)]))
            solution = vec_from_array(x)
            ksp.setInitialGuessNonzero(True)
            mat = slot.load(K)
            ksp.setOperators(mat, mat)
            ksp.solve(rhs, solution)
            x = solution.getArray().copy()
            iterations.append(ksp.getIterationNumber())
            failed += ksp.getConvergedReason() <= 0
    cpu = time.process_time() - cpu
    return {
        "per_sample": cpu / len(samples),
        "iterations": float(np.mean(iterations)),
        "unconverged": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--dim", type=int, choices=(2, 3), help="only the cases of this dim")
    parser.add_argument("--family", choices=("cavity", "channel"), default="cavity")
    args = parser.parse_args()
    if args.family == "channel":
        channel_table(args.samples)
        return
    lines = []
    data = {}
    for n, dim, dt, t_end in CASES:
        if args.dim and dim != args.dim:
            continue
        problem = CavityProblem(reynolds=RangeSpec(100.0, 1000.0), t_end=t_end, frames=4, dt=dt)
        family = Cavity(n, dim, problem)
        samples = [family.sample(0, i) for i in range(args.samples)]
        march(family, samples[:1], "gmres", "ilu", {})  # warm-up: imports, caches, first set-ups
        title = (
            f"{dim}D, n = {n} ({family.velocity_unknowns} velocity unknowns), dt = {dt:g}, "
            f"{family.time_stepping.steps} steps per sample, {args.samples} samples, "
            "Re in [100, 1000]"
        )
        # a 3D LU per step: minutes a sample (its fill), far behind already
        skip = ("direct",) if dim == 3 else ()
        lines += solver_table(title, family, samples, f"{dim}D n={n} dt={dt:g}", data, skip)
    if args.dim == 3:
        save("cavity3d", "\n".join(lines), data)
        return
    lines += [
        "The coupled Oseen step against the projection (n = 63, 2 samples; CPU per sample, "
        "iterations per step of the momentum or the coupled solve):",
        "",
        "| dt | projection, gmres + ilu | coupled, gmres + fieldsplit | coupled, gcrodr + "
        "fieldsplit (k = 20) |",
        "|---|---|---|---|",
    ]
    for dt, t_end in ((0.02, 1.0), (0.1, 2.0)):
        problem = CavityProblem(reynolds=RangeSpec(100.0, 1000.0), t_end=t_end, frames=1, dt=dt)
        family = Cavity(63, 2, problem)
        samples = [family.sample(0, i) for i in range(2)]
        cells = [march(family, samples, "gmres", "ilu", {})]
        cells += [coupled(family, samples, "gmres"), coupled(family, samples, "gcrodr")]
        data[f"coupled dt={dt:g}"] = cells
        row = []
        for cell in cells:
            flag = f" !{cell['unconverged']}" if cell["unconverged"] else ""
            row.append(f"{cell['per_sample']:.2f} s ({cell['iterations']:.1f} it){flag}")
        lines.append(f"| {dt:g} | " + " | ".join(row) + " |")
    save("cavity", "\n".join(lines), data)


if __name__ == "__main__":
    main()
