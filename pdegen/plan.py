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

from pdegen.families import Family
from pdegen.recipe import Recipe
from pdegen.shards import atomic_path
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
    chain_length: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls(**json.loads(text))


def make_plan(recipe: Recipe, family: Family) -> Plan:
    """Sample every input (by per-sample seeds), order the chain, cut it into batches."""
    start = time.perf_counter()
    features = np.stack(
        [family.features(family.sample(recipe.seed, i)) for i in range(recipe.samples)]
    )
    order = order_systems(features, recipe.solver.ordering)
    seconds = time.perf_counter() - start
    size = recipe.output.shard_size
    batches = [order[i : i + size].tolist() for i in range(0, len(order), size)]
    return Plan(
        recipe_sha256(recipe), order.tolist(), batches, seconds, chain_length(features, order)
    )


def load_or_make_plan(directory: Path, recipe: Recipe, family: Family) -> Plan:
    path = directory / PLAN_NAME
    if path.is_file():
        plan = Plan.from_json(path.read_text())
        if plan.recipe_sha256 == recipe_sha256(recipe):
            return plan
    plan = make_plan(recipe, family)
    with atomic_path(path) as tmp:
        tmp.write_text(plan.to_json())
    return plan
