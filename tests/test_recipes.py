"""Every recipe in recipes/ generates, solves and loads back end to end (few samples)."""

from pathlib import Path

import numpy as np
import pytest

from pdegen import open_dataset
from pdegen.families import family_from_recipe
from pdegen.recipe.schema import load_recipe
from pdegen.run.generate import generate

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))
#: recipes run shorter in time here (as shipped: 25 s per sample, FNO's 50 time units)
SHORTER = {
    "navier-stokes": ["problem.t_end=4", "problem.frames=4"],
    "navier-stokes-nu1e-4": ["problem.t_end=1", "problem.frames=2"],
}


def test_every_family_has_a_recipe():
    from pdegen.families import FAMILIES

    assert {load_recipe(p).family for p in RECIPES} == set(FAMILIES)


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_end_to_end(path, tmp_path):
    recipe = load_recipe(path, SHORTER.get(path.stem), samples=3)
    recipe = recipe.replace(output=recipe.output.__class__(dir=str(tmp_path), shard_size=2))
    summary = generate(recipe, progress=False)
    assert summary.samples == 3 and summary.unconverged == 0
    family = family_from_recipe(recipe)
    with open_dataset(tmp_path / recipe.name) as ds:
        assert len(ds) == 3
        item = ds[1]
        sample = family.sample(recipe.seed, int(item["index"]))
        for name, value in sample.inputs.items():
            np.testing.assert_array_equal(item[name], value)
        for name, value in sample.params.items():
            assert item[name] == value
        assert ds.axes == family.field_axes()  # declared by the family, labelled in the shards
        for name in ds.axes:
            assert item[name].shape == family.field_shape(name)
        outputs = [item[name] for name in family.output_names]  # elasticity: per component
        assert all(np.isfinite(u).all() for u in outputs)
        assert max(np.abs(u).max() for u in outputs) > 0
        assert (ds.stats()["residual"] <= recipe.solver.rtol).all()
