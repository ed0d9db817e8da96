"""recipe -> plan -> solved batches -> shards -> index, resuming from finished shards."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdegen.batch import solve_batch
from pdegen.errors import PdegenError
from pdegen.families import family_from_recipe
from pdegen.plan import Plan, load_or_make_plan, recipe_sha256
from pdegen.progress import Progress
from pdegen.recipe import Recipe
from pdegen.shards import INDEX_NAME, read_index, shard_is_complete, write_index, write_shard


@dataclass
class Summary:
    directory: Path
    samples: int
    unconverged: int
    resumed_samples: int
    seconds: float
    solve_seconds: float
    ordering_seconds: float
    mean_iterations: float

    @property
    def samples_per_second(self) -> float:
        solved = self.samples - self.resumed_samples
        return solved / self.seconds if self.seconds > 0 else float("nan")

    def lines(self) -> list[str]:
        out = [
            f"dataset: {self.directory}",
            f"samples: {self.samples} ({self.unconverged} did not converge and are flagged)",
            f"time: {self.seconds:.2f} s ({self.samples_per_second:.1f} samples/s; "
            f"solves {self.solve_seconds:.2f} s, ordering {self.ordering_seconds:.2f} s)",
            f"iterations per solve: {self.mean_iterations:.1f}",
        ]
        if self.resumed_samples:
            out.append(f"resumed: {self.resumed_samples} samples were already complete")
        return out


def prepare_directory(directory: Path, recipe: Recipe) -> None:
    """Check the target before writing anything; create it. One-line errors."""
    if directory.exists() and not directory.is_dir():
        raise PdegenError(f"{directory}: output path exists and is not a directory")
    index_path = directory / INDEX_NAME
    if index_path.is_file():
        try:
            same = read_index(directory).get("recipe_sha256") == recipe_sha256(recipe)
        except (OSError, ValueError):
            same = False
        if not same:
            raise PdegenError(
                f"{directory}: holds a dataset made from a different recipe "
                "(choose another --out, or delete it)"
            )
    parent = directory.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise PdegenError(
            f"{directory}: cannot create the output directory (no write permission in {parent})"
        )
    directory.mkdir(parents=True, exist_ok=True)


def generate(recipe: Recipe, out: str | Path | None = None, progress: bool = True) -> Summary:
    """Generate (or finish) the dataset a recipe describes; returns the run's summary."""
    start = time.perf_counter()
    family = family_from_recipe(recipe)
    directory = Path(out) if out is not None else recipe.dataset_dir()
    prepare_directory(directory, recipe)
    sha = recipe_sha256(recipe)
    plan: Plan = load_or_make_plan(directory, recipe, family)
    old_entries = {}
    if (directory / INDEX_NAME).is_file():
        old_entries = {e["batch"]: e for e in read_index(directory)["shards"]}
    entries, resumed, todo = [], 0, []
    for batch, indices in enumerate(plan.batches):
        if shard_is_complete(directory, old_entries.get(batch), batch, sha):
            resumed += len(indices)
        else:
            todo.append(batch)
    bar = Progress(recipe.samples, initial=resumed, label=recipe.name, enabled=progress)
    for batch in todo:
        content = solve_batch(
            recipe,
            batch,
            plan.batches[batch],
            on_result=lambda i, r: bar.advance(),
            recipe_sha256=sha,
        )
        old_entries[batch] = write_shard(directory, content)
    bar.close()
    entries = [
        old_entries.get(b) or _entry_from_file(directory, b) for b in range(len(plan.batches))
    ]
    write_index(
        directory,
        {
            "dataset": recipe.name,
            "family": recipe.family,
            "recipe_sha256": sha,
            "samples": recipe.samples,
            "ordering_seconds": plan.ordering_seconds,
            "chain_length": plan.chain_length,
            "shards": entries,
        },
    )
    return _summarise(directory, resumed, time.perf_counter() - start, plan)


def _entry_from_file(directory: Path, batch: int) -> dict:
    """Index entry for a finished shard found on disk without one (an interrupted run)."""
    import h5py

    from pdegen.shards import file_sha256, shard_name

    path = directory / shard_name(batch)
    with h5py.File(path, "r") as f:
        indices = [int(i) for i in f["params/index"][()]]
    return {"file": path.name, "batch": batch, "indices": indices, "sha256": file_sha256(path)}


def _summarise(directory: Path, resumed: int, seconds: float, plan: Plan) -> Summary:
    from pdegen.loader import open_dataset

    with open_dataset(directory, include_unconverged=True) as ds:
        stats = ds.stats()
    return Summary(
        directory,
        len(stats["converged"]),
        int(np.sum(~stats["converged"])),
        resumed,
        seconds,
        float(np.sum(stats["seconds"])),
        plan.ordering_seconds,
        float(np.mean(stats["iterations"])),
    )
