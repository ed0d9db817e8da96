"""Train/valid/test splits: each sample's split drawn from its own seed, never from a count.

Why per sample: a split computed from the sample count (a shuffled permutation cut at 80%)
moves samples between splits whenever samples are added, which silently leaks test data into
training across dataset versions. Here sample `i` of a recipe with seed `s` draws one uniform
number from its own stream, `SeedSequence(s, spawn_key=(i, SPLIT_STREAM))` (independent of the
stream its inputs are drawn from), and the cumulative fractions map it to a split: adding
samples, changing the shard size or the engine never moves an existing sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

SPLITS = ("train", "valid", "test")
#: the second spawn-key entry of a sample's split stream (its inputs use spawn_key=(i,))
SPLIT_STREAM = 0x5EED5


def split_draw(seed: int, index: int) -> float:
    """The uniform number in [0, 1) that places sample `index` in its split."""
    stream = np.random.SeedSequence(entropy=seed, spawn_key=(index, SPLIT_STREAM))
    return float(np.random.default_rng(stream).random())


def split_of(seed: int, index: int, fractions: Mapping[str, float]) -> str:
    """The split of one sample; `fractions` maps every name of SPLITS to its share."""
    u, edge = split_draw(seed, index), 0.0
    last = [name for name in SPLITS if fractions[name] > 0][-1]
    for name in SPLITS:
        edge += fractions[name]
        if u < edge and fractions[name] > 0:
            return name
    return last  # u beyond a sum that rounding left just under 1


def assign_splits(
    seed: int, indices: Iterable[int], fractions: Mapping[str, float]
) -> dict[str, list[int]]:
    """{split: sorted generation indices} for the given samples (every split present)."""
    out: dict[str, list[int]] = {name: [] for name in SPLITS}
    for index in sorted(int(i) for i in indices):
        out[split_of(seed, index, fractions)].append(index)
    return out


__all__ = ["SPLITS", "SPLIT_STREAM", "assign_splits", "split_draw", "split_of"]
