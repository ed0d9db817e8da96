"""The checker: the state every part of the check shares, and the order they run in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pdegen.dataset.check.common import ShardFindings
from pdegen.dataset.check.deep import DeepChecks
from pdegen.dataset.check.index import IndexChecks
from pdegen.dataset.check.report import CheckReport
from pdegen.dataset.check.shard import ShardChecks
from pdegen.dataset.check.whole import DatasetChecks
from pdegen.families import Family
from pdegen.recipe.schema import Recipe


class Checker(IndexChecks, ShardChecks, DatasetChecks, DeepChecks):
    """One run of `check_dataset` over one directory."""

    def __init__(self, root: Path, deep: int, seed: int):
        self.root = root
        self.report = CheckReport(root, deep_requested=deep)
        self.deep, self.seed = deep, seed
        self.index: dict[str, Any] = {}
        self.recipe: Recipe | None = None
        self.stored_recipe: dict[str, Any] = {}  # the recipe's JSON as stored (its vintage)
        self.family: Family | None = None
        self.shards: list[ShardFindings] = []

    def add(self, kind: str, where: Path | str, what: str) -> None:
        self.report.add(kind, self.root / where if isinstance(where, str) else where, what)

    def run(self) -> CheckReport:
        if self._read_index():
            self._check_index_keys()
            self._check_directory()
            self._find_recipe()
            for shard in self._entries():
                self._check_shard(shard)
            if self.recipe is not None:
                self._check_counts()
                self._check_splits()
                self._check_field_stats()
                self._check_plan()
                if self.deep:
                    self._check_deep()
        else:
            self._check_directory()
        return self.report
