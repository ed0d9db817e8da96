"""The result of a check: its problems (one line each), notices and the deep re-check's
residuals, and how they are printed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pdegen.dataset.check.common import LINES_PER_KIND, listing


@dataclass
class Problem:
    kind: str  # groups the lines for the per-kind cap
    where: Path
    what: str

    def line(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class DeepResult:
    """One re-assembled sample: its worst relative residual (over the steps of a trajectory)
    and the bound it was held to."""

    index: int
    residual: float
    bound: float


@dataclass
class CheckReport:
    """What `check_dataset` found; `ok` when no problem."""

    path: Path
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    samples: int = 0
    shards: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    unconverged: list[int] = field(default_factory=list)
    deep_requested: int = 0
    deep: list[DeepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, where: Path, what: str) -> None:
        self.problems.append(Problem(kind, where, what))

    def lines(self, per_kind: int = LINES_PER_KIND) -> list[str]:
        """One line per problem, in the order found; past `per_kind` lines of one kind the
        rest of that kind is counted in one closing line (a dataset with 10000 bad shards
        says so in 11 lines, not 10000)."""
        shown: Counter[str] = Counter()
        out = []
        for problem in self.problems:
            shown[problem.kind] += 1
            if shown[problem.kind] <= per_kind:
                out.append(problem.line())
        for kind, count in shown.items():
            if count > per_kind:
                out.append(f"{self.path}: ... and {count - per_kind} more problems of kind {kind}")
        return out

    def summary(self) -> str:
        """The one line of a clean check."""
        splits = ", ".join(f"{name} {count}" for name, count in self.splits.items())
        parts = [
            f"{self.path}: ok: {self.samples} samples in {self.shards} shard(s)"
            + (f" (splits: {splits})" if splits else ""),
            f"{len(self.unconverged)} flagged as not converged"
            + (f" (samples {listing(self.unconverged)})" if self.unconverged else ""),
        ]
        if self.deep_requested:
            worst = max(self.deep, key=lambda d: d.residual / d.bound, default=None)
            parts.append(
                f"deep: {len(self.deep)} of {self.deep_requested} requested samples "
                "re-assembled"
                + (
                    f", worst relative residual {worst.residual:.2e} (bound {worst.bound:.2e}, "
                    f"sample {worst.index})"
                    if worst
                    else ""
                )
            )
        return "; ".join(parts + self.notices)
