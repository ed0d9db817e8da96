"""`pdegen check PATH`: verify a generated dataset without trusting it.

Why a separate verifier: the loader is built for speed and assumes the dataset is what its
index says (it reads the index, opens the shards it lists and serves their rows). A dataset
that was copied, synced, edited by hand or half-overwritten would be served without a word.
This module assumes nothing: it opens index.json and every file itself, recomputes what can be
recomputed (checksums, the schema of docs/format.md from the recipe stored in the shards, the
seeded splits, the field statistics, the plan's batches) and compares. With `deep` it also
re-assembles some samples' linear systems from their *stored* inputs and checks that the
stored solution solves them, and that the stored inputs are the recipe's own draw.

Every finding is a `Problem` (one line, `<path>: <what is wrong>`) and checking goes on: a bad
shard never stops the checks of the others. Samples flagged as not converged are part of the
format (stored on purpose, for inspection), so they are a notice in the summary, not a
problem; a sample flagged converged whose stored residual exceeds `solver.rtol` is a problem.
Nothing here writes to the dataset, takes its lock or imports PETSc.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pdegen.dataset.check.checker import Checker
from pdegen.dataset.check.common import LINES_PER_KIND
from pdegen.dataset.check.report import CheckReport, DeepResult, Problem
from pdegen.dataset.shards import FAILURES_NAME, INDEX_NAME
from pdegen.errors import PdegenError
from pdegen.families.residuals import ROUNDING_FACTOR, UNIT_ROUNDOFF
from pdegen.run.plan import PLAN_NAME


def check_dataset(path: str | Path, deep: int = 0, seed: int = 0) -> CheckReport:
    """Verify the dataset in directory `path`; `deep` samples (0: none) are re-assembled from
    their stored inputs, chosen by a generator seeded with `seed`.

    Raises PdegenError (a usage error, one line) when `path` is not a dataset directory or its
    index has a format_version this pdegen does not read; everything else is a `Problem` in
    the report.
    """
    root = Path(path)
    if isinstance(deep, bool) or not isinstance(deep, int) or deep < 0:
        raise PdegenError(f"--deep: {deep!r} is out of range (must be at least 1)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PdegenError(f"--seed: {seed!r} is out of range (must be at least 0)")
    if not root.exists():
        raise PdegenError(f"{root}: no such dataset directory")
    if not root.is_dir():
        raise PdegenError(f"{root}: not a directory")
    if not (root / INDEX_NAME).is_file():
        unfinished = (
            f" ({PLAN_NAME} without {INDEX_NAME}: an unfinished run; rerun `pdegen generate`)"
            if (root / PLAN_NAME).exists()
            else "; run `pdegen generate` first"
        )
        raise PdegenError(f"{root}: not a pdegen dataset (no {INDEX_NAME}){unfinished}")
    return Checker(root, deep, seed).run()


def run_check(path: str | Path, deep: int | None = None, seed: int = 0) -> int:
    """`pdegen check`: print one line per problem (stdout) and return 1, or the one-line
    summary and return 0."""
    if deep is not None and deep < 1:
        raise PdegenError(f"--deep: {deep} is out of range (must be at least 1)")
    report = check_dataset(path, deep or 0, seed)
    if report.ok:
        print(report.summary())
        return 0
    print("\n".join(report.lines()))
    print(f"pdegen check: {len(report.problems)} problem(s) in {report.path}", file=sys.stderr)
    return 1


__all__ = [
    "FAILURES_NAME",
    "LINES_PER_KIND",
    "ROUNDING_FACTOR",
    "UNIT_ROUNDOFF",
    "CheckReport",
    "DeepResult",
    "Problem",
    "check_dataset",
    "run_check",
]
