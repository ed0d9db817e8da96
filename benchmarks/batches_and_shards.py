"""What telling batches from shards costs and buys (issue 26, point 1).

    cd benchmarks && ../.venv/bin/python batches_and_shards.py [--repeats 3]   # about 2 min

Darcy 2D at 64^2 nodes x 4000 samples (`recipes/darcy.yaml`, `auto`'s solver), the default
engine (local, 2 workers) from the shell, timed whole, with the same 16 batches of 250 cut
three ways, the cuts taking turns in each repeat:
- one batch per shard (`--shard-size 250`): 16 files, as every dataset was cut before;
- the default: shards of at most 128 MiB (2 of 2000 samples, 8 batches each), merged from
  their batches' parts;
- one shard (`--shard-size 4000 --batch-size 250`): the whole 250 MiB merged at the end.

The batches are the same, so the datasets hold the same values bit for bit (checked here,
sample by sample through the loader); only the files differ. Then the merge alone, in this
process: 16 parts of 250 samples merged into one shard. Writes
benchmarks/results/batches_and_shards.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tables import save

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLES, NODES = 4000, 64
ONE_SHARD = ["--shard-size", str(SAMPLES), "--batch-size", "250"]
CUTS = {
    "one batch per shard (--shard-size 250)": ["--shard-size", "250"],
    "default (shards of at most 128 MiB)": [],
    "one shard (--shard-size 4000 --batch-size 250)": ONE_SHARD,
}


def generate(out: Path, extra: list[str]) -> float:
    command = [sys.executable, "-m", "pdegen.cli", "generate", str(ROOT / "recipes/darcy.yaml"),
               "--set", f"grid.n={NODES - 2}", "--samples", str(SAMPLES), "--quiet",
               "--no-figures", "--workers", "2", "--out", str(out), *extra]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def files(out: Path) -> tuple[int, float]:
    shards = sorted(out.glob("shard-*.h5"))
    return len(shards), max(p.stat().st_size for p in shards) / 2**20


def same_values(a: Path, b: Path) -> bool:
    """Every sample's fields equal, looked up by sample index (the shards differ)."""
    from pdegen.dataset.loader import open_dataset

    with (
        open_dataset(a, include_unconverged=True) as x,
        open_dataset(b, include_unconverged=True) as y,
    ):  # noqa: E501
        if len(x) != len(y):
            return False
        return all(all(np.array_equal(x[i][k], y[i][k]) for k in x[i]) for i in range(0, len(x), 7))


def merge_alone(scratch: Path) -> float:
    """Seconds to merge 16 parts of 250 samples (the one-batch-per-shard run's files)."""
    from pdegen.dataset.parts import merge_parts
    from pdegen.dataset.shards import describe_shard

    source = sorted((scratch / "cut0").glob("shard-*.h5"))
    parts = []
    for number, shard in enumerate(source):
        part = scratch / "parts" / f"part-{number:05d}.h5"
        part.parent.mkdir(exist_ok=True)
        shutil.copy(shard, part)
        parts.append(part)
    entries = [describe_shard(p, p.name, n) for n, p in enumerate(parts)]
    start = time.perf_counter()
    merge_parts(scratch / "merged.h5", 0, parts, entries)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    names = list(CUTS)
    rows, layout = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for _ in range(args.repeats):
            seconds = {}
            for number, name in enumerate(names):
                out = scratch / f"cut{number}"
                shutil.rmtree(out, ignore_errors=True)
                seconds[name] = generate(out, CUTS[name])
                layout[name] = files(out)
            rows.append(seconds)
            print(seconds, flush=True)
        equal = all(same_values(scratch / "cut0", scratch / f"cut{n}") for n in (1, 2))
        merge = merge_alone(scratch)
        size = sum(p.stat().st_size for p in (scratch / "cut0").glob("shard-*.h5")) / 2**20
    lines = [
        f"Darcy 64² x {SAMPLES}, default engine (local, 2 workers), 16 batches of 250 in each "
        f"cut; whole runs in seconds, {args.repeats} repeats, the cuts in turn; same values in "
        f"every cut: {equal}",
        "",
        "| cut | files (largest MiB) | "
        + " | ".join(f"run {r + 1}" for r in range(len(rows)))
        + " | median | median / one batch per shard |",
        "|---|---|" + "---|" * len(rows) + "---|---|",
    ]
    base = float(np.median([r[names[0]] for r in rows]))
    for name in names:
        times = [r[name] for r in rows]
        median = float(np.median(times))
        count, largest = layout[name]
        lines.append(
            f"| {name} | {count} ({largest:.0f}) | " + " | ".join(f"{t:.2f}" for t in times)
            + f" | {median:.2f} | {median / base:.3f} |"
        )  # fmt: skip
    lines += ["", f"Merging 16 parts ({size:.0f} MiB) into one shard alone: {merge:.2f} s"]
    save("batches_and_shards", "\n".join(lines), {"runs": rows, "merge_seconds": merge})


if __name__ == "__main__":
    main()
