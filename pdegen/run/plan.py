"""The global plan: which samples, in which order, cut into which batches.

The plan depends only on the recipe (samples, seed, ordering, shard size), never on who runs
it, so any engine with any number of workers produces the same shards. It is written to
plan.json in the dataset directory before solving starts and reused by a resumed run.
"""

from __future__ import annotations

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
from pdegen.recipe.sharding import shard_size_of
from solvers.ordering import chain_length, order_systems

PLAN_NAME = "plan.json"


def recipe_sha256(recipe: Recipe) -> str:
    return hashlib.sha256(recipe.to_json().encode()).hexdigest()


@dataclass
class Plan:
    recipe_sha256: str
    order: list[int]  # the solve chain: sample indices, neighbours similar
    batches: list[list[int]]  # contiguous segments of the chain, one shard each
    ordering_seconds: float
    chain_length: float | None  # None: not ordered, not measured

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls(**json.loads(text))


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
    size = shard_size_of(recipe)
    batches = [order[i : i + size].tolist() for i in range(0, len(order), size)]
    return Plan(recipe_sha256(recipe), order.tolist(), batches, seconds, length)


def read_plan(path: Path) -> Plan:
    """The plan stored at `path`, checked to be a whole plan: pdegen writes it by rename, so
    anything else was damaged or written by hand, and is reported rather than trusted."""
    try:
        plan = Plan.from_json(path.read_text())
        order = [int(i) for i in plan.order]
        chained = [int(i) for batch in plan.batches for i in batch]
        whole = (
            isinstance(plan.recipe_sha256, str)
            and sorted(order) == list(range(len(order)))
            and chained == order
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
