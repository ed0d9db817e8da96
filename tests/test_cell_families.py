"""The families that also solve on the cell-centred layout (issue 27, points 1 and 5), Darcy
aside (tests/test_cell_layout.py): heat's eigenmode against the exact solution at second order
in space, heat on cells against heat on nodes as h -> 0 with a variable coefficient,
Helmholtz against a manufactured solution and its multigrid-preconditioned solves (real and
complex shifts) against direct ones, and heat, reaction-diffusion, nonlinear-diffusion and
Helmholtz datasets end to end (generate, `check --deep`, the loader's coordinates and stride).
Reaction-diffusion's and nonlinear diffusion's manufactured solutions on cells are in their
own test files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse.linalg as spl
import yaml

from pdegen import open_dataset
from pdegen.errors import RecipeError
from pdegen.families import Heat, Helmholtz
from pdegen.families.heat import HeatProblem
from pdegen.families.helmholtz import HelmholtzProblem
from pdegen.recipe.schema import recipe_from_dict
from pdegen.specs import CoefficientSpec, FieldSpec, RangeSpec
from solvers import ChainSolver
from tests.helpers import cli


class _Solved:
    def __init__(self, x: np.ndarray):
        self.x = x


def direct_solve(A, b, x0=None):
    return _Solved(spl.spsolve(A.tocsc(), b))


def heat(n: int, problem: HeatProblem, cells: bool = True) -> Heat:
    family = Heat(n, 2, problem)
    if cells:
        family.use_cells()
    return family


def test_heat_on_cells_converges_at_second_order_in_space_to_the_exact_decay():
    """a = 1, u0 = sin(pi x) sin(pi y): the exact solution decays as exp(-2 pi^2 t). On the
    centres the sine is an exact eigenvector of the cell operator (the wall closure is the
    odd reflection through the wall), with eigenvalue 8/h^2 sin^2(pi h / 2): the error at
    t = 0.005 is that eigenvalue's, O(h^2), and Crank-Nicolson's O(dt^2) is far below it."""
    problem = HeatProblem(scheme="crank-nicolson", dt=1e-4, steps=50)
    errors = []
    for n in (16, 32, 64):
        family = heat(n, problem)
        X, Y = np.meshgrid(family.x, family.x, indexing="ij")
        u0 = np.sin(math.pi * X) * np.sin(math.pi * Y)
        u, _ = family.trajectory(np.ones_like(u0), u0, direct_solve)
        assert u.shape == (51, n, n)
        np.testing.assert_array_equal(u[0], u0)  # frame 0 is the initial state, unmasked
        end = 50 * 1e-4
        errors.append(np.abs(u[-1] - math.exp(-2 * math.pi**2 * end) * u0).max())
        semi = 8 / family.h**2 * math.sin(math.pi * family.h / 2) ** 2
        cn = ((1 - semi * 5e-5) / (1 + semi * 5e-5)) ** 50  # the scheme on the exact mode
        np.testing.assert_allclose(u[-1], cn * u0, rtol=0, atol=1e-12)
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert (rates > 1.95).all(), (errors, rates)


def test_heat_on_cells_and_on_nodes_agree_as_the_grid_refines():
    """A smooth lognormal coefficient and initial state with a fixed number of modes are the
    same functions on every grid: the last frame on n cells against the node grid of 2n
    intervals, whose odd nodes are the centres; the gap falls at second order."""
    problem = HeatProblem(
        coefficient=CoefficientSpec(kind="lognormal", alpha=3.0, tau=4.0, modes=6),
        initial=FieldSpec(alpha=3.0, tau=4.0, sigma=5.0, modes=6),
        dt=1e-3,
        steps=10,
    )
    gaps = []
    for n in (16, 32, 64):
        cells, nodes = heat(n, problem), heat(2 * n - 1, problem, cells=False)
        x = cells.x
        X, Y = np.meshgrid(x, x, indexing="ij")
        u0 = np.sin(math.pi * X) * np.sin(math.pi * Y) * (1 + X)  # zero on the walls
        Xn, Yn = np.meshgrid(nodes.x, nodes.x, indexing="ij")
        u0n = np.sin(math.pi * Xn) * np.sin(math.pi * Yn) * (1 + Xn)
        ends = []
        for family, start in ((cells, u0), (nodes, u0n)):
            a = family.sample(3, 0).inputs["coefficient"]
            u, _ = family.trajectory(a, start, direct_solve)
            ends.append(u[-1])
        on_centres = ends[1][1::2, 1::2]
        gaps.append(np.abs(ends[0] - on_centres).max() / np.abs(on_centres).max())
    rates = np.log2(np.array(gaps[:-1]) / np.array(gaps[1:]))
    assert gaps[-1] < 2e-3 and (rates > 1.7).all(), (gaps, rates)


def trajectory_recipe(family: str, n: int, **problem) -> dict:
    return {
        "name": f"{family}-cells",
        "family": family,
        "samples": 4,
        "seed": 2,
        "grid": {"n": n, "dim": 2, "layout": "cells"},
        "problem": {"steps": 5, **problem},
        "solver": {"method": "auto", "pc": "auto", "rtol": 1e-8},
        "output": {"shard_size": 2},
    }


def generate_and_check(tmp_path, data: dict) -> None:
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    done = cli(["generate", "r.yaml", "--out", "d", "--quiet", "--no-figures"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "coarsens too little" not in done.stdout  # multigrid ran on its cell hierarchy
    checked = cli(["check", "d", "--deep", "2"], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    card = (tmp_path / "d" / "README.md").read_text()
    n = data["grid"]["n"]
    assert f"{n} cells per axis" in card and "finite volumes" in card


@pytest.mark.parametrize(
    "family,problem", [("heat", {}), ("reaction-diffusion", {"reaction": "fisher-kpp"})]
)
def test_a_cell_trajectory_dataset_end_to_end(tmp_path, family, problem):
    generate_and_check(tmp_path, trajectory_recipe(family, 32, **problem))
    with open_dataset(tmp_path / "d") as ds:
        item = ds[0]
        assert item["solution"].shape == (6, 32, 32) and item["initial"].shape == (32, 32)
        np.testing.assert_array_equal(item["solution"][0], item["initial"])
        np.testing.assert_allclose(ds.coordinates()["y"], (np.arange(32) + 0.5) / 32)
    with open_dataset(tmp_path / "d", stride=2) as coarse:
        np.testing.assert_array_equal(coarse[0]["solution"], item["solution"][:, ::2, ::2])
    with open_dataset(tmp_path / "d", stride=2, average=True) as coarse:
        means = item["solution"].reshape(6, 16, 2, 16, 2).mean(axis=(2, 4))  # per frame
        np.testing.assert_allclose(coarse[0]["solution"], means, rtol=1e-14)
        window = coarse.windows()[0]  # frame 0 (and the coefficient) -> frame 1, averaged
        np.testing.assert_allclose(window["y"][0], means[1], rtol=1e-6)
        assert window["x"].shape[1:] == (16, 16)


@pytest.mark.parametrize(
    "family,grid,problem,solver",
    [
        ("nonlinear-diffusion", {"n": 64, "dim": 2}, {}, ("gmres", "mg")),
        ("helmholtz", {"n": 32, "dim": 3}, {"wavenumber": {"min": 9.0, "max": 12.0}},
         ("gcrodr", "mg")),
        ("helmholtz", {"n": 32, "dim": 3},
         {"wavenumber": {"min": 9.0, "max": 12.0}, "damping": 0.05}, ("gcrodr", "mg")),
    ],
)  # fmt: skip
def test_a_steady_cell_dataset_end_to_end(tmp_path, family, grid, problem, solver):
    """Multigrid on the cell hierarchy (Helmholtz: the real and the complex-shifted
    Laplacian's V-cycles), checked by re-assembling the residuals from the stored fields."""
    data = {
        "name": f"{family}-cells",
        "family": family,
        "samples": 4,
        "seed": 5,
        "grid": {**grid, "layout": "cells"},
        "problem": problem,
        "solver": {"method": solver[0], "pc": solver[1], "rtol": 1e-8},
    }
    generate_and_check(tmp_path, data)
    with open_dataset(tmp_path / "d") as ds:
        assert ds[0]["solution"].shape == (grid["n"],) * grid["dim"]
        assert ds.stats()["converged"].all()


def helmholtz_on_cells(n: int, dim: int, k: tuple[float, float], damping: float = 0.0):
    problem = HelmholtzProblem(wavenumber=RangeSpec(*k), damping=damping)
    family = Helmholtz(n, dim, problem)
    family.use_cells()
    return family


def test_helmholtz_on_cells_converges_at_second_order_to_a_manufactured_solution():
    """-div(a grad u) - k^2 u = f with u = sin(pi x) sin(2 pi y), a = 1 + x y, k = 12
    (indefinite: k^2 = 144 above the lowest eigenvalues)."""
    errors = []
    k = 12.0
    for n in (32, 64, 128):
        family = helmholtz_on_cells(n, 2, (10.0, 14.0))
        X, Y = np.meshgrid(family.x, family.x, indexing="ij")
        u = np.sin(np.pi * X) * np.sin(2 * np.pi * Y)
        a = 1.0 + X * Y
        ux = np.pi * np.cos(np.pi * X) * np.sin(2 * np.pi * Y)
        uy = 2 * np.pi * np.sin(np.pi * X) * np.cos(2 * np.pi * Y)
        f = -(Y * ux + X * uy) + 5 * np.pi**2 * a * u - k**2 * u
        A, b = family.assemble(a, k, f)
        errors.append(np.abs(spl.spsolve(A.tocsc(), b) - u.ravel()).max())
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert (rates > 1.8).all(), (errors, rates)


@pytest.mark.parametrize("damping", [0.0, 0.05])
def test_helmholtz_multigrid_on_cells_matches_a_direct_solve(damping):
    """GCRO-DR with `pc: mg` on the cell hierarchy (the real shift, or with damping the
    complex shift on two unknowns per cell) against LU of the same systems, in 3D."""
    family = helmholtz_on_cells(20, 3, (9.0, 11.0), damping)  # small for the LU
    settings = family.multigrid_settings()
    assert settings.layout == "cells"
    chains = [
        ChainSolver(
            method, pc, rtol=1e-10, max_iterations=500, grid=family.interior_shape,
            multigrid=settings, **family.vector_layout(),
        )
        for method, pc in (("gcrodr", "mg"), ("direct", "lu"))
    ]  # fmt: skip
    for index in range(2):
        sample = family.sample(1, index)
        (iterative, [result]), (direct, _) = (family.solve_sample(sample, c) for c in chains)
        assert result.converged and result.iterations < 150
        for name in family.output_names:
            error = np.abs(iterative[name] - direct[name]).max()
            assert error <= 1e-7 * np.abs(direct[name]).max(), name
    assert chains[0].pc == "mg" and chains[0].hierarchy.dof == (2 if damping else 1)


def test_an_interface_is_measured_against_the_cell_spacing():
    """Allen-Cahn asks epsilon >= h: on 20 cells h = 1/20 = 0.05, on 20 interior nodes 1/21."""
    data = trajectory_recipe("reaction-diffusion", 20, epsilon=0.049)
    with pytest.raises(RecipeError, match=r"problem.epsilon: 0.049 is below the grid spacing 0.05"):
        recipe_from_dict(data)
    recipe_from_dict({**data, "grid": {"n": 20, "dim": 2}})  # nodes: h = 0.0476
