"""Shared helpers: small recipes written into temporary directories."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

DELETE = object()  # marks a field to remove from the recipe


def small_recipe_dict(**changes) -> dict:
    recipe = {
        "name": "tiny",
        "family": "darcy",
        "samples": 10,
        "seed": 7,
        "grid": {"n": 15},
        "problem": {"coefficient": {"kind": "threshold", "alpha": 2.0, "tau": 3.0}},
        "solver": {"method": "cg", "pc": "jacobi", "rtol": 1e-8},
        "output": {"dir": "data", "shard_size": 4},
    }
    for key, value in changes.items():
        if value is DELETE:
            del recipe[key]
        elif isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return recipe


@pytest.fixture
def write_recipe(tmp_path: Path):
    def write(data: dict, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write
