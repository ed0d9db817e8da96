"""Samples per second of every engine against the generator a user writes by hand, and where
the default engine's whole run goes (issue 26).

    cd benchmarks && ../.venv/bin/python engines.py [--quick] [--only 2d|3d]   # about 15 min
    cd benchmarks && ../.venv/bin/python engines.py --repeats 3     # the 64^2 targets, 3 min

Darcy (`recipes/darcy.yaml`'s law: FNO's thresholded coefficient, `auto`'s solver) in 2D at
32^2 ... 421^2 nodes and in 3D at 16^3 ... 128^3 (`SIZES`: samples chosen so that each run
takes seconds; --quick: a quarter of them). Each engine as a user runs it, from the shell, in
a fresh process, timed whole (start-up, workers, plan, solves, shards, index, card; no
figures): the default (`local`, 2 workers), `--engine dask` (a local Dask cluster, 2
workers), `mpirun -n 2 --engine mpi`, `--engine serial`, and `naive_darcy.py` (2D: scipy's
spsolve; 3D: scipy's CG + Jacobi to rtol 1e-8, since spsolve takes 107 s for one 48^3 sample;
a pool of 2 processes, one HDF5 file). The engines take turns within each size, so that the
machine's drift hits them alike. Then one default-engine run at 64^2 x 4000 in this process,
its phases timed by wrapping the functions that do them, after the time a fresh process
takes to import what `pdegen generate` imports. Writes benchmarks/results/engines.md.
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
PDEGEN = [sys.executable, "-m", "pdegen.cli", "generate"]
DEFAULT = "default (local, 2 workers)"
NAIVE = "naive (scipy, 2 processes)"
#: (dimension, nodes per axis, samples, samples of the naive generator: fewer where it is slow)
SIZES = [
    (2, 32, 8000, 8000),
    (2, 64, 4000, 4000),
    (2, 128, 1000, 1000),
    (2, 421, 200, 20),
    (3, 16, 4000, 4000),
    (3, 32, 400, 400),
    (3, 64, 40, 8),
    (3, 128, 4, 2),
]


def timed_run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def engine_commands(
    dim: int, nodes: int, samples: int, naive_samples: int, scratch: Path
) -> dict[str, tuple[list[str], int]]:
    """Each engine's command line and the samples it makes."""
    recipe = str(ROOT / ("recipes/darcy.yaml" if dim == 2 else "recipes/darcy3d.yaml"))
    common = [recipe, "--set", f"grid.n={nodes - 2}", "--samples", str(samples), "--quiet",
              "--no-figures"]  # fmt: skip
    commands = {
        DEFAULT: [*PDEGEN, *common, "--out", str(scratch / "l"), "--workers", "2"],
        "dask (local cluster, 2 workers)": [
            *PDEGEN,
            *common,
            "--out",
            str(scratch / "d"),
            "--engine",
            "dask",
            "--workers",
            "2",
        ],  # fmt: skip
        "serial": [*PDEGEN, *common, "--out", str(scratch / "s"), "--engine", "serial"],
    }
    mpirun = shutil.which("mpirun")
    if mpirun:
        commands["mpi (mpirun -n 2)"] = [mpirun, "-n", "2", *PDEGEN, *common, "--out",
                                         str(scratch / "m"), "--engine", "mpi"]  # fmt: skip
    made = {name: (command, samples) for name, command in commands.items()}
    made[NAIVE] = (
        [sys.executable, str(HERE / "naive_darcy.py"), str(scratch / "naive.h5"),
         "--nodes", str(nodes), "--dim", str(dim), "--samples", str(naive_samples)],
        naive_samples,
    )  # fmt: skip
    return made


def import_seconds() -> float:
    """A fresh process's start and the imports of `pdegen generate` (the CLI, the run)."""
    return timed_run([sys.executable, "-c", "import pdegen.cli, pdegen.run.generate"])


def phases(nodes: int, samples: int, scratch: Path) -> dict[str, float]:
    """One default-engine run in this process, its phases timed (module docstring)."""
    import pdegen.run.generate as generate_module
    from pdegen.recipe.schema import load_recipe
    from pdegen.run.engines import local_engine

    spent: dict[str, float] = {"Python start and imports (a fresh process)": import_seconds()}
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
        (generate_module, "_plan_job"): "plan",
        (local_engine.LocalEngine, "run"): "batches (wall)",
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
            recipe, out=scratch / "phases", progress=False, engine="local", workers=2
        )
        spent["generate() whole"] = time.perf_counter() - start
    finally:
        for (owner, name), function in saved.items():
            setattr(owner, name, function)
    spent["solves (sum over samples)"] = summary.solve_seconds
    spent["batches (sum of their walls, both workers)"] = sum(batches)
    return spent


def repeats(count: int) -> None:
    """The targets' row (64^2 x 4000: default, serial, naive) `count` times in turn: the
    spread of each ratio on a noisy machine. Writes benchmarks/results/engines_repeats.md."""
    dim, nodes, samples, naive_samples = SIZES[1]
    names = [DEFAULT, "serial", NAIVE]
    lines = ["| run | " + " | ".join(names) + " | default / serial | default / naive |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    rows = []
    for run in range(count):
        with tempfile.TemporaryDirectory() as scratch:
            runs = engine_commands(dim, nodes, samples, naive_samples, Path(scratch))
            seconds = {name: timed_run(runs[name][0]) for name in names}
        rows.append(seconds)
        ratios = (seconds["serial"] / seconds[DEFAULT], seconds[NAIVE] / seconds[DEFAULT])
        cells = " | ".join(f"{seconds[n]:.2f} s" for n in names)
        lines.append(f"| {run + 1} | {cells} | {ratios[0]:.2f}x | {ratios[1]:.2f}x |")
    save("engines_repeats", "\n".join(lines), {"runs": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the samples")
    parser.add_argument("--only", choices=("2d", "3d"), help="one dimension's sizes")
    parser.add_argument("--repeats", type=int, help="only the 64^2 targets' row, this many times")
    args = parser.parse_args()
    if args.repeats:
        repeats(args.repeats)
        return
    lines, data = [], {}
    names = list(engine_commands(2, 64, 1, 1, Path(".")))
    header = "| nodes x samples | " + " | ".join(names) + " | default / serial | default / naive |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for dim, nodes, samples, naive_samples in SIZES:
        if args.only and args.only != f"{dim}d":
            continue
        if args.quick:
            samples, naive_samples = max(samples // 4, 2), max(naive_samples // 4, 2)
        with tempfile.TemporaryDirectory() as scratch:
            runs = engine_commands(dim, nodes, samples, naive_samples, Path(scratch))
            rates = {name: made / timed_run(command) for name, (command, made) in runs.items()}
            seconds = {name: runs[name][1] / rate for name, rate in rates.items()}
        key = f"{nodes}^{dim} x {samples}"
        data[key] = {"seconds": seconds, "samples": {n: r[1] for n, r in runs.items()}}
        cells = [f"{rates[n]:.3g}/s ({seconds[n]:.1f} s)" for n in names]
        ratios = [rates[DEFAULT] / rates["serial"], rates[DEFAULT] / rates[NAIVE]]
        sizes = f"{nodes}{'²' if dim == 2 else '³'} x {samples}"
        if naive_samples != samples:
            sizes += f" (naive: {naive_samples})"
        lines.append(
            f"| {sizes} | " + " | ".join(cells) + f" | {ratios[0]:.2f}x | {ratios[1]:.2f}x |"
        )
    if args.only != "3d":
        samples = SIZES[1][2] // 4 if args.quick else SIZES[1][2]
        with tempfile.TemporaryDirectory() as scratch:
            spent = phases(64, samples, Path(scratch))
        data["phases"] = spent
        lines += ["", f"The default engine's run at 64² x {samples}, by phase (seconds):", "",
                  "| phase | seconds |", "|---|---|"]  # fmt: skip
        lines += [f"| {name} | {value:.2f} |" for name, value in spent.items()]
    save("engines", "\n".join(lines), data)


if __name__ == "__main__":
    main()
