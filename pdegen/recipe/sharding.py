"""How many samples a batch, and so a shard, holds when a recipe leaves `output.shard_size` out.

A batch is the unit of work (one worker solves it, carrying what it can from sample to
sample) and, written whole, of storage. Two things pull its size: files of tens of MiB,
which read fast and are few (a shard at most `SHARD_BYTES`), and enough batches to keep every
worker busy to the end (at least `MIN_BATCHES` once there are that many samples; measured:
4 samples of 128^3 in one batch of 20 kept one of two workers idle, and 200 samples of 421^2
in batches of 64, 64, 64 and 8 left one worker a third of the run alone, docs/benchmarks.md,
"Engines at small samples"). The choice depends on the recipe only, never on the engine or
its workers, so every engine cuts the same batches and writes the same bits; the resolved
recipe stored with the data holds the number chosen.
"""

from __future__ import annotations

import math

import numpy as np

#: the most bytes of stored fields a shard gets by default (inputs and outputs)
SHARD_BYTES = 64 * 2**20
#: the fewest batches a run is cut into by default (fewer only with fewer samples); a run on
#: more workers than this wants a smaller `output.shard_size` (`generate` says so)
MIN_BATCHES = 16


def stored_bytes_per_sample(family, dtype: str) -> int:
    """Bytes of one sample's stored inputs and outputs (`Family.field_axes` over the family's
    coordinates, at the recipe's `output.dtype`)."""
    sizes = {axis: len(points) for axis, points in family.coordinates.items()}
    values = sum(math.prod(sizes[a] for a in axes) for axes in family.field_axes().values())
    return values * np.dtype(dtype).itemsize


def default_shard_size(samples: int, bytes_per_sample: int) -> int:
    """Samples per batch: as many as fit `SHARD_BYTES`, but few enough to leave at least
    `MIN_BATCHES` batches (integer arithmetic: any sample count a recipe allows)."""
    by_bytes = SHARD_BYTES // max(bytes_per_sample, 1)
    by_count = samples // MIN_BATCHES
    return max(1, min(by_bytes, by_count))


def shard_size_of(recipe) -> int:
    """`output.shard_size`, chosen here when the recipe was built without one (a `Recipe`
    made in Python rather than through `recipe_from_dict`, which resolves it)."""
    if recipe.output.shard_size is not None:
        return recipe.output.shard_size
    from pdegen.families import family_from_recipe

    per_sample = stored_bytes_per_sample(family_from_recipe(recipe), recipe.output.dtype)
    return default_shard_size(recipe.samples, per_sample)
