"""The dataset card: a finished directory explains itself, and its numbers are the data's."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from pdegen import open_dataset
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.generate import generate
from tests.helpers import ROOT, small_recipe_dict


@pytest.fixture(scope="module")
def carded(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    data = small_recipe_dict(samples=12, solver={"method": "cg", "pc": "jacobi"})
    (root / "r.yaml").write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pdegen.cli",
            "generate",
            "r.yaml",
            "--engine",
            "serial",
            "--out",
            "tiny",
            "--quiet",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return root / "tiny"


def section(text: str, title: str) -> str:
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_the_card_states_the_problem_laws_splits_and_solver(carded):
    text = (carded / "README.md").read_text()
    for title in (
        "The problem",
        "Random inputs",
        "Samples and splits",
        "Fields",
        "Solver",
        "Loading",
        "Figures",
        "Provenance",
        "Citation",
    ):
        assert f"## {title}" in text, title
    assert "-div(a grad u) = f" in section(text, "The problem")
    laws = section(text, "Random inputs")
    assert "α = 2, τ = 3, σ = 3 (the default τ^(α−d/2))" in laws  # 2D: tau^(alpha - 1) = 3
    assert "thresholded: 12 where the field ≥ 0, 3 elsewhere" in laws
    with open_dataset(carded) as ds:
        for split, members in ds.splits.items():
            assert f"| {split} | {len(members)} | {len(members)} |" in text
        stats = ds.field_stats()
        its = ds.stats()["iterations"]
    row = next(ln for ln in text.splitlines() if ln.startswith("| `solution` |"))
    assert f"{stats['solution']['mean']:.4g}" in row and f"{stats['solution']['max']:.4g}" in row
    solver = section(text, "Solver")
    assert "Method `cg` with preconditioner `jacobi`" in solver
    assert f"mean {its.mean():.1f}, min {its.min()}, max {its.max()}" in solver


def test_the_cards_recipe_reproduces_the_dataset(carded, tmp_path):
    text = (carded / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, flags=re.S).group(1)
    recipe = recipe_from_dict(yaml.safe_load(block))
    with open_dataset(carded) as ds:
        assert recipe.to_json() == ds.attrs()["recipe"]
        generate(recipe, out=tmp_path / "again", progress=False, engine="serial", card=False)
        with open_dataset(tmp_path / "again") as again:
            np.testing.assert_array_equal(again[3]["coefficient"], ds[3]["coefficient"])
    assert json.loads((carded / "index.json").read_text())["recipe_sha256"] in text


def test_the_cards_figures_exist_and_its_loading_code_runs(carded):
    text = (carded / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images and all((carded / image).is_file() for image in images)
    numpy_block = re.findall(r"```python\n(.*?)```", section(text, "Loading"), flags=re.S)[0]
    done = subprocess.run(  # from the dataset's parent, as someone who received it would
        [sys.executable, "-c", numpy_block + "\nprint(len(train), xy[0]['x'].shape)"],
        cwd=carded.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with open_dataset(carded, split="train") as train:
        assert done.stdout.split()[0] == str(len(train))


def test_library_callers_get_a_card_without_figures_unless_asked(tmp_path):
    recipe = recipe_from_dict(small_recipe_dict(samples=4))
    generate(recipe, out=tmp_path / "a", progress=False, engine="serial")
    assert (tmp_path / "a" / "README.md").is_file() and not (tmp_path / "a" / "figures").exists()
    generate(recipe, out=tmp_path / "b", progress=False, engine="serial", card=False)
    assert not (tmp_path / "b" / "README.md").exists()


RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipes_card_names_its_own_scheme_and_no_other(tmp_path, path):
    """Finite differences, Q1 elements or the MAC grid: the card says what this family's
    data were computed with (its declared `discretisation`), never another family's, and a
    trajectory's card states its time stepping as declared (`time_stepping`)."""
    from pdegen.families import FAMILIES, family_from_recipe
    from pdegen.recipe import load_recipe

    shorter = {  # as shipped: 25 s and more a sample
        "navier-stokes": ["problem.t_end=4", "problem.frames=4"],
        "navier-stokes-nu1e-4": ["problem.t_end=1", "problem.frames=2"],
    }
    recipe = load_recipe(path, shorter.get(path.stem), samples=2)
    generate(recipe, out=tmp_path / "ds", progress=False, engine="serial")
    text = (tmp_path / "ds" / "README.md").read_text()
    family = family_from_recipe(recipe)
    assert family.discretisation in text
    others = {cls.discretisation for cls in FAMILIES.values()} - {family.discretisation}
    assert not [other for other in others if other in text]
    stepping = family.time_stepping
    if stepping is None:
        assert "Time stepping" not in text
    else:
        assert f"Time stepping: {stepping.description}, internal step dt = {stepping.dt:g}" in text
        assert f"({stepping.steps} steps)" in text
        assert f"{len(stepping.frame_times)} frames" in text
