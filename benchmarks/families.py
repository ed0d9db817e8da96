"""Samples per second for every recipe in recipes/, as a user runs it: `pdegen generate` on
the default engine (`local`: forked worker processes, one per core; the README's numbers were
measured on a local Dask cluster, the default then), whole run timed (workers' start,
ordering, solves, shards, index, card), from the shell.

    cd benchmarks && ../.venv/bin/python families.py [--samples 64] [--workers 2] [recipes ...]

Each recipe runs at its own grid and problem with its sample count capped at --samples (a
minute or two for all of them on 2 cores); the table goes to stdout and
results/families.md. The README's families table quotes these numbers.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def run(recipe: Path, samples: int, workers: int, scratch: Path) -> tuple[int, float]:
    """(samples generated, wall seconds) of one `pdegen generate` from a fresh process."""
    count = min(samples, int(yaml.safe_load(recipe.read_text())["samples"]))
    command = [sys.executable, "-m", "pdegen.cli", "generate", str(recipe),
               "--out", str(scratch / recipe.stem), "--samples", str(count),
               "--workers", str(workers), "--quiet", "--no-figures"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return count, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", help="recipe files (default: every recipe)")
    parser.add_argument("--samples", type=int, default=64, help="at most this many each")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    recipes = [Path(r) for r in args.recipes] or sorted((ROOT / "recipes").glob("*.yaml"))
    lines = [
        f"| recipe | samples | seconds | samples/s ({args.workers} workers, whole run) |",
        "|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for recipe in recipes:
            count, seconds = run(recipe, args.samples, args.workers, Path(scratch))
            lines.append(f"| `{recipe.name}` | {count} | {seconds:.1f} | {count / seconds:.2g} |")
            print(lines[-1], flush=True)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "families.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
