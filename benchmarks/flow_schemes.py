"""Backward Euler against BDF2 for the flows on the MAC grid: error against cost.

    .venv/bin/python benchmarks/flow_schemes.py      # about 3 minutes on 2 cores

For `cavity` (the recipe's 64^2 cells at Re = 1000, t = 8) and `channel` (the recipe's 256 x 64
cells, one cylinder sample at Re = 150, t = 4, shedding under way), each scheme at three
steps: the largest relative error of the stored velocity_x over the frames, against BDF2 at
dt = 0.0025 on the same grid (the time error only; the space error is the same for every
row), and the CPU seconds of the march (GMRES + ILU, as `auto`, rtol 1e-10). Writes
benchmarks/results/flow_schemes.md.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from tables import save

from pdegen.families.cavity import Cavity, CavityProblem
from pdegen.families.channel import Channel, ChannelProblem, CylindersSpec
from pdegen.specs import RangeSpec
from solvers import ChainSolver

STEPS = (0.04, 0.02, 0.01)
REFERENCE = 0.0025


def run(family, sample) -> tuple[np.ndarray, float]:
    chain = ChainSolver("gmres", "ilu", rtol=1e-10, max_iterations=5000)
    cpu = time.process_time()
    outputs, results = family.solve_sample(sample, chain)
    assert all(r.converged for r in results)
    return outputs["velocity_x"], time.process_time() - cpu


def cases():
    cavity = CavityProblem(reynolds=RangeSpec(1000.0, 1000.0), t_end=8.0, frames=8)
    channel = ChannelProblem(
        reynolds=RangeSpec(150.0, 150.0),
        cylinders=CylindersSpec(count=1, radius=RangeSpec(0.08, 0.08)),
        t_end=4.0,
        frames=8,
    )
    yield "cavity, 64^2 cells, Re = 1000, t in [0, 8]", Cavity, 63, cavity
    yield "channel, 256 x 64 cells, one cylinder, Re = 150, t in [0, 4]", Channel, 64, channel


def main() -> None:
    lines, data = [], {}
    for title, cls, n, problem in cases():
        reference_family = cls(n, 2, dataclasses.replace(problem, dt=REFERENCE, scheme="bdf2"))
        sample = reference_family.sample(0, 0)
        reference, _ = run(reference_family, sample)
        scale = np.max(np.abs(reference))
        lines += [
            f"{title}; error: the largest |u - u_ref| over the frames / max |u_ref|",
            "",
            "| scheme | dt | steps | CPU | relative error |",
            "|---|---|---|---|---|",
        ]
        for scheme in ("euler", "bdf2"):
            for dt in STEPS:
                family = cls(n, 2, dataclasses.replace(problem, dt=dt, scheme=scheme))
                u, cpu = run(family, sample)
                error = float(np.max(np.abs(u - reference)) / scale)
                data[f"{cls.name} {scheme} {dt}"] = {"cpu": cpu, "error": error}
                steps = family.time_stepping.steps
                lines.append(f"| {scheme} | {dt:g} | {steps} | {cpu:.2f} s | {error:.2e} |")
        lines.append("")
    save("flow_schemes", "\n".join(lines), data)


if __name__ == "__main__":
    main()
