"""The cell-centred layout (`grid.layout: cells`, issue 27 point 1) for Darcy: second-order
convergence to a manufactured solution, agreement with the node grid as h -> 0, and a
dataset end to end (generate, check, loader, stride); other families refuse it in one line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse.linalg as spl
import yaml

from pdegen import open_dataset
from pdegen.errors import PdegenError, RecipeError
from pdegen.families import Darcy
from pdegen.recipe.schema import recipe_from_dict
from pdegen.specs import CoefficientSpec
from tests.helpers import cli, recipe_dict


def cell_darcy(n: int, coefficient: CoefficientSpec | None = None) -> Darcy:
    family = Darcy.square(n, coefficient)
    family.use_cells()
    return family


def test_darcy_on_cells_converges_at_second_order_to_a_manufactured_solution():
    """-div(a grad u) = f, u = sin(pi x) sin(pi y) (zero on the walls), a = 1 + x y."""
    errors = []
    for n in (16, 32, 64):
        family = cell_darcy(n)
        X, Y = np.meshgrid(family.x, family.x, indexing="ij")
        u = np.sin(np.pi * X) * np.sin(np.pi * Y)
        a = 1.0 + X * Y
        ux = np.pi * np.cos(np.pi * X) * np.sin(np.pi * Y)
        uy = np.pi * np.sin(np.pi * X) * np.cos(np.pi * Y)
        f = -(Y * ux + X * uy) + 2 * np.pi**2 * a * u
        A, b = family.assemble(a, f)
        errors.append(np.abs(spl.spsolve(A.tocsc(), b) - u.ravel()).max())
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert (rates > 1.8).all(), (errors, rates)


def test_cells_and_nodes_agree_as_the_grid_refines():
    """A smooth lognormal coefficient with a fixed number of modes is the same function on
    every grid; the n-cell solution at its centres against the node grid of 2n intervals,
    whose odd nodes are those centres: the gap falls at second order."""
    spec = CoefficientSpec(kind="lognormal", alpha=3.0, tau=4.0, modes=6)
    gaps = []
    for n in (16, 32, 64):
        cells = cell_darcy(n, spec)
        nodes = Darcy.square(2 * n - 1, spec)
        solved = []
        for family in (cells, nodes):
            sample = family.sample(5, 0)
            A, b = family.system(sample)
            solved.append(family.solution_field(sample, spl.spsolve(A.tocsc(), b)))
        on_centres = solved[1][1::2, 1::2]
        np.testing.assert_allclose(nodes.x[1::2], cells.x, atol=1e-15)
        gaps.append(np.abs(solved[0] - on_centres).max() / np.abs(on_centres).max())
    rates = np.log2(np.array(gaps[:-1]) / np.array(gaps[1:]))
    assert gaps[-1] < 2e-3 and (rates > 1.7).all(), (gaps, rates)


def cells_recipe(**solver) -> dict:
    data = recipe_dict(samples=6, grid={"n": 128, "layout": "cells"})
    data["solver"] = {"method": "auto", "pc": "auto", "rtol": 1e-8, **solver}
    return data


def test_a_cell_dataset_end_to_end(tmp_path):
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(cells_recipe()))
    done = cli(["generate", "r.yaml", "--out", "d", "--quiet", "--no-figures"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "note:" not in done.stdout  # mg on the cell grid, no fallback
    checked = cli(["check", "d", "--deep", "2"], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with open_dataset(tmp_path / "d") as ds:
        assert ds[0]["solution"].shape == ds[0]["coefficient"].shape == (128, 128)
        np.testing.assert_allclose(ds.coordinates()["x"], (np.arange(128) + 0.5) / 128)
        assert (ds.stats()["iterations"] <= 14).all()
        item = ds[0]
    with open_dataset(tmp_path / "d", stride=2) as coarse:
        np.testing.assert_array_equal(coarse[0]["solution"], item["solution"][::2, ::2])
    with open_dataset(tmp_path / "d", stride=4, average=True) as coarse:
        # each of the 32 x 32 coarse cells: the mean of the 4 x 4 fine cells it covers, at
        # its own centre (j + 1/2) / 32
        blocks = item["coefficient"].reshape(32, 4, 32, 4)
        np.testing.assert_allclose(coarse[0]["coefficient"], blocks.mean(axis=(1, 3)))
        np.testing.assert_allclose(coarse.coordinates()["x"], (np.arange(32) + 0.5) / 32)
        assert coarse[0]["solution"].shape == (32, 32)
    with pytest.raises(PdegenError, match=r"stride: 3 does not divide the grid of coefficient"):
        open_dataset(tmp_path / "d", stride=3, average=True)
    card = (tmp_path / "d" / "README.md").read_text()
    assert "128 cells per axis" in card and "finite volumes on the cell-centred grid" in card


def test_the_layout_is_refused_where_it_does_not_apply_and_kept_out_of_node_hashes():
    with pytest.raises(
        RecipeError,
        match=r"grid.layout: 'cells' is not allowed for poisson \(allowed: nodes, or leave it "
        r"out\): its input is the random Dirichlet values on the boundary nodes",
    ):
        recipe_from_dict(
            {**recipe_dict(), "family": "poisson", "grid": {"n": 31, "layout": "cells"},
             "problem": {}, "solver": {}}
        )  # fmt: skip
    with pytest.raises(RecipeError, match=r"solver.ranks_per_sample: 2: a cell-centred grid"):
        recipe_from_dict(cells_recipe(ranks_per_sample=2))
    nodes = recipe_from_dict(recipe_dict())
    assert "layout" not in nodes.to_json()  # node recipes hash as before the field existed
    cells = recipe_from_dict(cells_recipe())
    assert '"layout": "cells"' in cells.to_json()
    assert dataclasses.replace(cells.grid, layout="nodes") != cells.grid


def test_the_run_says_what_runs_on_a_small_cell_grid():
    """64 cells: the node grid's rule would give one level (65 intervals), the cell grid's
    halves down to 2, so `pc: mg` runs mg and the summary has no fallback note; the memory
    refusal never proposes ranks per sample, which cells refuse."""
    from pdegen.recipe.resources import estimate, smallest_ranks
    from pdegen.run.batch import solver_note

    data = cells_recipe(method="cg", pc="mg")
    data["grid"]["n"] = 64
    assert solver_note(recipe_from_dict(data)) is None
    data["grid"]["n"] = 1500  # too large for 70% of its estimate: nodes would take 3 ranks
    cells = recipe_from_dict(data)
    nodes = recipe_from_dict({**data, "grid": {"n": 1499}})
    assert smallest_ranks(nodes, 0.7 * estimate(nodes).total) == 3
    assert smallest_ranks(cells, 0.7 * estimate(cells).total) is None


def test_every_family_takes_cells_or_says_why_not():
    """Issue 27 asks for the cell layout wherever it makes sense, and a reason where not."""
    from pdegen.families import FAMILIES

    takes = {name for name, family in FAMILIES.items() if "cells" in family.layouts}
    assert {"darcy", "heat", "reaction-diffusion", "nonlinear-diffusion", "helmholtz"} <= takes
    for name, family in FAMILIES.items():
        assert ("cells" in family.layouts) != bool(family.why_no_cells), name
