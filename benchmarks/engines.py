"""Samples per second of every engine against the generator a user writes by hand, and where
the default engine's whole run goes (issue 26).

    cd benchmarks && ../.venv/bin/python engines.py [--quick]     # about 3 minutes (--quick: 1)

Darcy (`recipes/darcy.yaml`: FNO's thresholded coefficient, `auto`'s solver) at 64^2 nodes x
4000 samples, 128^2 x 1000 and 421^2 x 200 (--quick: a quarter of the samples): each engine
as a user runs it, from the shell, in a fresh process, timed whole (start-up, cluster, plan,
solves, shards, index, card; no figures): the default engine (Dask, 2 workers), `mpirun -n
2 --engine mpi`, `--engine serial`, and `naive_darcy.py` (scipy's spsolve in a pool of 2
processes, one HDF5 file). Then one default-engine run at 64^2 in this process, its phases
timed by wrapping the functions that do them: the cluster's start (in the background while
the root plans), the plan, the batches (each batch's own wall time on its worker, summed), and
what follows them (index, card, summary). Writes benchmarks/results/engines.md.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tables import save

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PDEGEN = [sys.executable, "-m", "pdegen.cli", "generate", str(ROOT / "recipes/darcy.yaml")]
SIZES = [(64, 4000), (128, 1000), (421, 200)]


def timed_run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def engine_commands(nodes: int, samples: int, scratch: Path) -> dict[str, list[str]]:
    common = ["--set", f"grid.n={nodes - 2}", "--samples", str(samples), "--quiet",
              "--no-figures"]  # fmt: skip
    mpirun = shutil.which("mpirun")
    commands = {
        "default (dask, 2 workers)": [
            *PDEGEN,
            *common,
            "--out",
            str(scratch / "d"),
            "--workers",
            "2",
        ],
        "serial": [*PDEGEN, *common, "--out", str(scratch / "s"), "--engine", "serial"],
        "naive (spsolve, 2 processes)": [
            sys.executable,
            str(HERE / "naive_darcy.py"),
            str(scratch / "naive.h5"),
            "--nodes",
            str(nodes),
            "--samples",
            str(samples),
        ],  # fmt: skip
    }
    if mpirun:
        commands["mpi (mpirun -n 2)"] = [mpirun, "-n", "2", *PDEGEN, *common, "--out",
                                         str(scratch / "m"), "--engine", "mpi"]  # fmt: skip
    return commands


def phases(nodes: int, samples: int, scratch: Path) -> dict[str, float]:
    """One default-engine run in this process, its phases timed (module docstring)."""
    import pdegen.run.generate as generate_module
    from pdegen.recipe.schema import load_recipe
    from pdegen.run.engines import dask_engine

    spent: dict[str, float] = {}
    batches: list[float] = []

    def timing(name, function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                result = function(*args, **kwargs)
                if name == "batches (wall)":  # (done, failed): each batch's own wall time
                    batches.extend(outcome.seconds for outcome in result[0])
                return result
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

        return run

    originals = {
        (dask_engine.DaskEngine, "_start_local"): "cluster start (background)",
        (dask_engine.DaskEngine, "_connect"): "waiting for the cluster",
        (dask_engine.DaskEngine, "run"): "batches (wall)",
        (generate_module, "_plan_job"): "plan",
        (generate_module, "write_index"): "index",
        (generate_module, "write_dataset_card"): "card",
        (generate_module, "_summarise"): "summary",
    }
    saved = {key: getattr(*key) for key in originals}
    try:
        for (owner, name), phase in originals.items():
            setattr(owner, name, timing(phase, saved[owner, name]))
        recipe = load_recipe(ROOT / "recipes/darcy.yaml", settings=[f"grid.n={nodes - 2}"],
                             samples=samples)  # fmt: skip
        start = time.perf_counter()
        summary = generate_module.generate(
            recipe, out=scratch / "phases", progress=False, engine="dask", workers=2
        )
        spent["whole run"] = time.perf_counter() - start
    finally:
        for (owner, name), function in saved.items():
            setattr(owner, name, function)
    spent["solves (sum over samples)"] = summary.solve_seconds
    spent["batches (sum of their walls, both workers)"] = sum(batches)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the samples")
    args = parser.parse_args()
    lines, data = [], {}
    header = (
        "| nodes x samples | "
        + " | ".join(engine_commands(64, 1, Path(".")))
        + " | default / serial | default / naive |"
    )
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for nodes, samples in SIZES:
        samples = samples // 4 if args.quick else samples
        with tempfile.TemporaryDirectory() as scratch:
            seconds = {
                name: timed_run(cmd)
                for name, cmd in engine_commands(nodes, samples, Path(scratch)).items()
            }
        data[f"{nodes}x{samples}"] = seconds
        default = seconds["default (dask, 2 workers)"]
        cells = [f"{samples / s:.0f}/s ({s:.1f} s)" for s in seconds.values()]
        ratios = [seconds["serial"] / default, seconds["naive (spsolve, 2 processes)"] / default]
        lines.append(
            f"| {nodes}² x {samples} | "
            + " | ".join(cells)
            + f" | {ratios[0]:.2f}x | {ratios[1]:.2f}x |"
        )
    samples = SIZES[0][1] // 4 if args.quick else SIZES[0][1]
    with tempfile.TemporaryDirectory() as scratch:
        spent = phases(64, samples, Path(scratch))
    data["phases"] = spent
    lines += ["", f"The default engine's run at 64² x {samples}, by phase (seconds):", "",
              "| phase | seconds |", "|---|---|"]  # fmt: skip
    lines += [f"| {name} | {value:.2f} |" for name, value in spent.items()]
    save("engines", "\n".join(lines), data)


if __name__ == "__main__":
    main()
