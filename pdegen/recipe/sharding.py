"""How many samples a shard and a batch hold when a recipe leaves them out.

A shard is the unit of storage: one HDF5 file. A batch is the unit of work: one worker solves
its samples in a row, carrying what it can from each to the next. A shard holds one batch or
several consecutive ones (`pdegen.run.plan`), so the two sizes answer different questions:

- **Shards by bytes.** Files of tens to a hundred MiB read fast and are few: a shard holds at
  most `SHARD_BYTES` of stored fields, and a dataset gets as few shards as the bytes allow,
  all of one size but the last, which may be shorter. Why not larger: a shard of several batches
  is merged from their parts once its last batch is done, a copy of its bytes and a hash
  (about 0.16 s per 100 MiB, `pdegen.dataset.parts`), and the last shard's merge ends the
  run; at 128 MiB the tail is at most about 0.2 s, and the first shards merge while later
  batches run (measured at 64^2 x 4000: docs/benchmarks.md, "Batches and shards").
- **Batches by count.** Enough batches to keep every worker busy to the end: at least
  `MIN_BATCHES` once there are that many samples (measured: 4 samples of 128^3 in one batch
  kept one of two workers idle, and 200 samples of 421^2 in batches of 64, 64, 64 and 8 left
  one worker a third of the run alone, docs/benchmarks.md, "Engines at small samples").

A recipe that names `output.shard_size` but no `solver.batch_size` is cut as before batches
and shards were told apart: each shard is one batch. The choice depends on the recipe only,
never on the engine or its workers, so every engine cuts the same batches and writes the same
bits; the resolved recipe stored with the data holds the numbers chosen.
"""

from __future__ import annotations

import math

import numpy as np

#: the most bytes of stored fields a shard gets by default (inputs and outputs)
SHARD_BYTES = 128 * 2**20
#: the fewest batches a run is cut into by default (fewer only with fewer samples); a run on
#: more workers than this wants a smaller `solver.batch_size` (`generate` says so)
MIN_BATCHES = 16


def stored_bytes_per_sample(family, dtype: str) -> int:
    """Bytes of one sample's stored inputs and outputs (`Family.field_axes` over the family's
    coordinates, at the recipe's `output.dtype`)."""
    sizes = {axis: len(points) for axis, points in family.coordinates.items()}
    values = sum(math.prod(sizes[a] for a in axes) for axes in family.field_axes().values())
    return values * np.dtype(dtype).itemsize


def default_shard_size(samples: int, bytes_per_sample: int) -> int:
    """Samples per shard: the fewest shards that keep each within `SHARD_BYTES`, sized alike
    (the samples divided by that count, rounded up; the last shard holds what is left, which
    may be fewer). Integer arithmetic: any sample count a recipe allows."""
    per_shard = max(1, SHARD_BYTES // max(bytes_per_sample, 1))
    shards = -(-samples // per_shard)
    return max(1, -(-samples // shards))


def default_batch_size(samples: int, shard_size: int) -> int:
    """Samples per batch: few enough to leave at least `MIN_BATCHES` batches, and no more than
    a shard holds."""
    return max(1, min(shard_size, samples // MIN_BATCHES))


def resolved_sizes(recipe) -> tuple[int, int]:
    """(`output.shard_size`, `solver.batch_size`) of `recipe`, each chosen here where the
    recipe leaves it out (module notes). A batch larger than its shard is cut to the shard:
    a batch never spans two files."""
    shard_size, batch_size = recipe.output.shard_size, recipe.solver.batch_size
    if shard_size is None:
        from pdegen.families import family_from_recipe

        per_sample = stored_bytes_per_sample(family_from_recipe(recipe), recipe.output.dtype)
        shard_size = default_shard_size(recipe.samples, per_sample)
        if batch_size is None:
            batch_size = default_batch_size(recipe.samples, shard_size)
    elif batch_size is None:
        batch_size = shard_size  # a shard size alone: each shard one batch, as before
    return shard_size, min(batch_size, shard_size)


def with_resolved_sizes(recipe):
    """`recipe` with `output.shard_size` and `solver.batch_size` as `resolved_sizes` gives
    them: what recipe loading stores, and what `generate` stores for a recipe built in
    Python, so that the stored recipe and its hash hold the cut the plan makes."""
    import dataclasses

    shard_size, batch_size = resolved_sizes(recipe)
    return dataclasses.replace(
        recipe,
        output=dataclasses.replace(recipe.output, shard_size=shard_size),
        solver=dataclasses.replace(recipe.solver, batch_size=batch_size),
    )


def shard_size_of(recipe) -> int:
    """`output.shard_size`, chosen here when the recipe was built without one (a `Recipe`
    made in Python rather than through `recipe_from_dict`, which resolves it)."""
    return resolved_sizes(recipe)[0]


def batch_size_of(recipe) -> int:
    """`solver.batch_size`, chosen here when the recipe was built without one."""
    return resolved_sizes(recipe)[1]
