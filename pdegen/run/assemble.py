"""Which shards of a run are complete, and merging a shard once its last batch is done.

Runs on the root process only (the one that writes the index), fed every finished batch as
its engine reports it: a shard of one batch is complete when that batch is; a shard of
several is merged from its batches' parts as soon as the last of them is done
(`pdegen.dataset.parts`), so merging overlaps the batches still running and a run killed at
any moment keeps every finished batch (a part, or a shard). A merge that fails is said after
the run, in one line; its parts stay for a rerun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pdegen.dataset.parts import merge_parts
from pdegen.dataset.shards import part_path, shard_name
from pdegen.errors import PdegenError
from pdegen.run.engines.base import one_line
from pdegen.run.plan import Plan


class Assembler:
    """The run's complete shards (`complete`: shard number -> index entry) and finished
    parts (`parts`: batch number -> entry) of shards not merged yet."""

    def __init__(
        self,
        directory: Path,
        plan: Plan,
        complete: dict[int, dict[str, Any]],
        parts: dict[int, dict[str, Any]],
    ):
        self.directory, self.plan = Path(directory), plan
        self.complete, self.parts = complete, parts
        self.failures: list[str] = []  # one line per merge that failed

    def batch_done(self, batch: int, entry: dict[str, Any]) -> None:
        """Batch `batch` wrote its file (`entry`): its shard's, or its part, merged into the
        shard here if it was the shard's last."""
        shard = self.plan.shard_of(batch)
        if self.plan.whole_shard(shard):
            self.complete[shard] = entry
            return
        self.parts[batch] = entry
        self._merge_if_ready(shard)

    def finish(self) -> None:
        """Merge every shard whose parts are all done (those a resumed run found finished)."""
        for shard in range(len(self.plan.shards)):
            if shard not in self.complete and not self.plan.whole_shard(shard):
                self._merge_if_ready(shard)

    def _merge_if_ready(self, shard: int) -> None:
        batches = self.plan.shards[shard]
        if not all(batch in self.parts for batch in batches):
            return
        path = self.directory / shard_name(shard)
        parts = [part_path(self.directory, batch) for batch in batches]
        try:
            entries = [self.parts[batch] for batch in batches]
            self.complete[shard] = merge_parts(path, shard, parts, entries)
        except Exception as err:  # noqa: BLE001 - any failure: said after the run, in one line
            why = err.strerror if isinstance(err, OSError) and err.strerror else one_line(err)
            self.failures.append(
                f"{path}: cannot merge its {len(parts)} batches' parts ({why}); the parts are "
                "kept, rerun to merge them"
            )
            return
        for batch in batches:
            del self.parts[batch]

    def raise_failures(self) -> None:
        """One line for the merges that failed (after the run: raised from an engine's
        report of a batch, it would stop the run mid-batch, and under MPI leave a group's
        other ranks waiting in a collective)."""
        if self.failures:
            more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
            raise PdegenError(self.failures[0] + more)
