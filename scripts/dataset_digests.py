"""Digest every array a dataset stores, for every recipe: the check that a refactor changed no bit.

    .venv/bin/python scripts/dataset_digests.py > before.txt     # on the old commit
    .venv/bin/python scripts/dataset_digests.py > after.txt      # on the new one
    diff before.txt after.txt                                    # empty: bit-identical

Each recipe in `recipes/` is generated with `--samples 4` on the serial engine into a scratch
directory, and every HDF5 dataset of every shard is hashed (SHA-256 of its raw bytes, with its
dtype and shape), except what a run cannot reproduce: wall-clock times and peak memory in
/stats, and the provenance attributes (host, versions, dates). Prints `recipe path digest`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: /stats columns that measure the run rather than the result
UNREPRODUCIBLE = ("seconds", "time", "memory", "rss", "setup")


def digest_dataset(path: Path) -> dict[str, str]:
    """name -> digest of every reproducible array in the dataset's shards."""
    digests: dict[str, str] = {}
    for shard in sorted(path.glob("shard-*.h5")):
        with h5py.File(shard, "r") as f:

            def visit(name: str, obj: object, shard_name: str = shard.name) -> None:
                if not isinstance(obj, h5py.Dataset):
                    return
                if obj.dtype.names:  # a table: hash the reproducible columns one by one
                    for column in obj.dtype.names:
                        if any(word in column for word in UNREPRODUCIBLE):
                            continue
                        digests[f"{shard_name}/{name}.{column}"] = _hash(obj[column])
                    return
                if name.startswith("stats/") and any(w in name for w in UNREPRODUCIBLE):
                    return
                digests[f"{shard_name}/{name}"] = _hash(obj[()])

            f.visititems(visit)
    return digests


def _hash(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())
    return h.hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", help="recipe files (default: every recipes/*.yaml)")
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    recipes = [Path(r) for r in args.recipes] or sorted((ROOT / "recipes").glob("*.yaml"))
    # this checkout's pdegen, whatever the environment has installed (so an old commit's
    # worktree can be digested with the same environment)
    pdegen = [sys.executable, "-m", "pdegen.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as scratch:
        for recipe in recipes:
            out = Path(scratch) / recipe.stem
            subprocess.run(
                [*pdegen, "generate", str(recipe), "--out", str(out), "--engine", "serial",
                 "--samples", str(args.samples), "--quiet", "--no-figures"],
                check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env,
            )  # fmt: skip
            for name, value in sorted(digest_dataset(out).items()):
                print(recipe.stem, name, value, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
