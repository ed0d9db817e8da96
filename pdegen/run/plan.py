"""The global plan: which samples, in which order, cut into which shards and batches.

The sorted chain is cut into shards of `output.shard_size` samples (the last one shorter),
and each shard into as few batches of at most `solver.batch_size` as that allows, their
samples shared out evenly (a shard of 250 with batches of at most 100: 83, 83 and 84). A
batch is the unit of work; a shard of several batches is merged from their parts
(`pdegen.run.assemble`). The plan depends only on the recipe, never on who runs it, so any
engine with any number of workers produces the same shards. It is written to plan.json in
the dataset directory before solving starts and reused by a resumed run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdegen.dataset.shards import atomic_path
from pdegen.errors import PdegenError
from pdegen.families import Family
from pdegen.recipe.schema import Recipe
from pdegen.recipe.sharding import resolved_sizes
from solvers.ordering import chain_length, order_systems

PLAN_NAME = "plan.json"


def recipe_sha256(recipe: Recipe) -> str:
    return hashlib.sha256(recipe.to_json().encode()).hexdigest()


@dataclass
class Plan:
    recipe_sha256: str
    order: list[int]  # the solve chain: sample indices, neighbours similar
    batches: list[list[int]]  # contiguous segments of the chain: the units of work
    ordering_seconds: float
    chain_length: float | None  # None: not ordered, not measured
    #: the batch numbers of each shard, consecutive; None (a plan written before shards held
    #: several batches): each batch is one shard
    shards: list[list[int]] | None = None

    def __post_init__(self) -> None:
        if self.shards is None:
            self.shards = [[batch] for batch in range(len(self.batches))]

    def to_json(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls(**json.loads(text))

    def shard_of(self, batch: int) -> int:
        """The number of the shard that holds batch `batch`."""
        return self._owners[batch]

    @functools.cached_property
    def _owners(self) -> list[int]:
        """Each batch's shard number (not a field: not in plan.json)."""
        return [s for s, batches in enumerate(self.shards) for _ in batches]

    def shard_indices(self, shard: int) -> list[int]:
        """The samples of shard `shard`, in its rows' order (its batches' in turn)."""
        return [i for batch in self.shards[shard] for i in self.batches[batch]]

    def whole_shard(self, shard: int) -> bool:
        """Whether shard `shard` is one batch (written directly, no parts to merge)."""
        return len(self.shards[shard]) == 1


def make_plan(recipe: Recipe, family: Family) -> Plan:
    """Sample every input (by per-sample seeds), order the chain, cut it into batches.

    With no ordering (`solver.ordering` resolved to `none`: nothing carries from one solve to
    the next) the chain is the generation order and no sample is drawn here at all: drawing
    1050 fields of 421 x 421 only to compare them took 22 s before any solve started. The
    chain length is then not measured (null).
    """
    start = time.perf_counter()
    if recipe.solver.ordering == "none":
        order = np.arange(recipe.samples)
        length = None
    else:
        features = np.stack(
            [family.features(family.sample(recipe.seed, i)) for i in range(recipe.samples)]
        )
        order = order_systems(features, recipe.solver.ordering)
        length = chain_length(features, order)
    seconds = time.perf_counter() - start
    batches, shards = cut(order.tolist(), *resolved_sizes(recipe))
    return Plan(recipe_sha256(recipe), order.tolist(), batches, seconds, length, shards)


def chain_positions(count: int, batch_size: int) -> np.ndarray:
    """Each row's position in its batch's chain, in a shard of `count` samples cut into
    batches of at most `batch_size` (as `cut` cuts it): 0, 1, ... from each batch's start."""
    batches, _ = cut(list(range(count)), max(count, 1), batch_size)
    return np.concatenate([np.arange(len(b)) for b in batches] or [np.zeros(0)]).astype(np.int32)


def cut(order: list[int], shard_size: int, batch_size: int) -> tuple[list, list]:
    """(batches, shards): the chain `order` cut into shards of `shard_size` samples, each
    shard into the fewest batches of at most `batch_size`, evenly (module notes)."""
    batches, shards = [], []
    for start in range(0, len(order), shard_size):
        samples = order[start : start + shard_size]
        pieces = -(-len(samples) // batch_size)
        bounds = [k * len(samples) // pieces for k in range(pieces + 1)]
        first = len(batches)
        batches += [samples[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        shards.append(list(range(first, len(batches))))
    return batches, shards


def read_plan(path: Path) -> Plan:
    """The plan stored at `path`, checked to be a whole plan: pdegen writes it by rename, so
    anything else was damaged or written by hand, and is reported rather than trusted."""
    try:
        plan = Plan.from_json(path.read_text())
        order = [int(i) for i in plan.order]
        chained = [int(i) for batch in plan.batches for i in batch]
        owned = [int(b) for batches in plan.shards for b in batches]
        whole = (
            isinstance(plan.recipe_sha256, str)
            and sorted(order) == list(range(len(order)))
            and chained == order
            and owned == list(range(len(plan.batches)))
            and all(plan.shards)
            and all(plan.batches)
        )
    except (OSError, UnicodeDecodeError) as err:
        raise PdegenError(f"{path}: cannot read the plan ({err})") from None
    except (ValueError, TypeError, AttributeError):
        whole = False
    if not whole:
        raise PdegenError(
            f"{path}: damaged or not a pdegen plan; delete it to plan again "
            "(finished shards are kept and checked)"
        )
    return plan


def load_or_make_plan(directory: Path, recipe: Recipe, family: Family) -> Plan:
    """The stored plan of this recipe, else a new one written by rename. A plan of another
    recipe is refused earlier (`pdegen.run.generate.check_same_recipe`), never replaced here."""
    path = directory / PLAN_NAME
    if path.exists():
        plan = read_plan(path)
        if plan.recipe_sha256 == recipe_sha256(recipe):
            return plan
        raise PdegenError(f"{path}: belongs to a different recipe")
    plan = make_plan(recipe, family)
    with atomic_path(path) as tmp:
        tmp.write_text(plan.to_json())
    return plan
