"""Nonlinear diffusion -div(a k(u) grad u) = f by Newton: second order against a manufactured
solution through the full Newton solve (2D, 3D, both laws), exact Jacobian (finite
differences, quadratic convergence), every allowed method agrees with LU, and the per-sample
statistics hold Newton and linear iterations. For both Newton families (this and
reaction-diffusion): SPD-only solvers are refused, and failed Newton solves are flagged and
left out. That the engines write the same dataset: tests/test_engines.py."""

import itertools
import subprocess
import sys

import h5py
import numpy as np
import pytest

from pdegen import open_dataset
from pdegen.dataset.check import check_dataset
from pdegen.errors import RecipeError
from pdegen.families import NonlinearDiffusion
from pdegen.families.nonlinear_diffusion import NonlinearDiffusionProblem, conductivity_law
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.generate import generate
from solvers.sequence import ChainSolver
from tests.helpers import nonlinear_diffusion_recipe, reaction_diffusion_recipe


def manufactured(n: int, dim: int, law: str, beta: float = 1.0, cells: bool = False):
    """u* = 1.5 prod sin(pi x_d), a = exp(0.5 prod cos(pi x_d)), and the source
    f = -div(a k(u*) grad u*) = -(grad a . grad u*) k - a k'(u*) |grad u*|^2 - a k lap u*,
    written out by hand (no code shared with the scheme); on n cells per axis when `cells`."""
    family = NonlinearDiffusion(n, dim, NonlinearDiffusionProblem(k=law, beta=beta))
    if cells:
        family.use_cells()
    x = np.meshgrid(*([family.x] * dim), indexing="ij")
    s = [np.sin(np.pi * xi) for xi in x]
    c = [np.cos(np.pi * xi) for xi in x]
    u = 1.5 * np.prod(s, axis=0)
    a = np.exp(0.5 * np.prod(c, axis=0))
    grad_u = [1.5 * np.pi * c[d] * np.prod([s[e] for e in range(dim) if e != d], axis=0)
              for d in range(dim)]  # fmt: skip
    grad_a = [a * 0.5 * -np.pi * s[d] * np.prod([c[e] for e in range(dim) if e != d], axis=0)
              for d in range(dim)]  # fmt: skip
    lap_u = -dim * np.pi**2 * u
    k, dk = conductivity_law(law, beta)
    dot = sum(ga * gu for ga, gu in zip(grad_a, grad_u, strict=True))
    f = -dot * k(u) - a * dk(u) * sum(g * g for g in grad_u) - a * k(u) * lap_u
    return family, a, f, u


@pytest.mark.parametrize(
    "dim,sizes,law,cells",
    [
        (2, (15, 31, 63), "quadratic", False),
        (2, (15, 31, 63), "exponential", False),
        (3, (7, 15), "quadratic", False),
        (2, (16, 32, 64), "quadratic", True),
        (2, (32, 64, 128), "exponential", True),  # 1.84 at 16 -> 32: the wall's O(h) layer
        (3, (8, 16), "quadratic", True),
    ],
)
def test_second_order_against_a_manufactured_solution_through_newton(dim, sizes, law, cells):
    """On the node grid and on the cell-centred one (u = 0 on the walls, half a cell out)."""
    errors = []
    for n in sizes:
        family, a, f, exact = manufactured(n, dim, law, cells=cells)
        result = family.solve_fields(a, f, ChainSolver("direct", "lu"))
        assert result.converged and result.newton_iterations >= 3  # nonlinear, not one solve
        u = family.solution_field(None, result.x)
        errors.append(np.abs(u - exact).max())
    orders = np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))
    assert np.all(orders > 1.85), (errors, orders)


def test_the_jacobian_is_the_derivative_of_the_residual():
    """Central differences of F along random directions (both laws, 2D and 3D)."""
    rng = np.random.default_rng(3)
    cases = [("quadratic", 2, 9), ("exponential", 2, 9), ("quadratic", 3, 5)]
    for (law, dim, n), cells in itertools.product(cases, (False, True)):
        family, a, f, _ = manufactured(n, dim, law, beta=0.7, cells=cells)
        F, J = family.newton_problem(a, f)
        u, v = rng.standard_normal((2, family.unknowns))
        eps = 1e-6
        difference = (F(u + eps * v) - F(u - eps * v)) / (2 * eps)
        exact = J(u) @ v
        assert np.linalg.norm(difference - exact) <= 1e-7 * np.linalg.norm(exact)
        assert abs(J(u) - J(u).T).max() > 0  # the k'(u) grad u term: not symmetric


def test_newton_converges_quadratically_on_the_family():
    """Exact linear solves: r_{k+1} / r_k^2 about constant once Newton is close, and the
    order estimate log(r_{k+1}/r_k) / log(r_k/r_{k-1}) of the last steps about 2."""
    family, a, f, _ = manufactured(31, 2, "quadratic")
    family.problem = NonlinearDiffusionProblem(
        newton=family.problem.newton.__class__(rtol=1e-13, atol=1e-12)
    )
    r = np.asarray(family.solve_fields(a, f, ChainSolver("direct", "lu")).norms)
    assert r[-1] <= 1e-12 * r[0], r
    near = [k for k in range(1, len(r) - 1) if r[k] < 1e-2 * r[0] and r[k + 1] > 1e-12 * r[0]]
    assert len(near) >= 2, r
    constants = [r[k + 1] / r[k] ** 2 for k in near]
    assert max(constants) < 5 * min(constants), (r, constants)
    q = np.log(r[near[-1] + 1] / r[near[-1]]) / np.log(r[near[-1]] / r[near[-1] - 1])
    assert 1.7 < q < 2.5, (r, q)


ALLOWED = [
    ("gmres", "ilu"),
    ("gmres", "jacobi"),
    ("gcrodr", "ilu"),
    ("gcrodr", "jacobi"),
    ("gcrotmk", "ilu"),
    ("gmres", "gamg"),
    ("gmres", "mg"),
    ("gcrodr", "sor"),
]


@pytest.mark.parametrize("method,pc", ALLOWED)
def test_every_allowed_method_agrees_with_lu(method, pc):
    family = NonlinearDiffusion(15, 2, NonlinearDiffusionProblem())
    reference_chain = ChainSolver("direct", "lu")
    chain = ChainSolver(method, pc, grid=family.interior_shape)
    for index in range(3):  # the chain carries across samples too
        sample = family.sample(5, index)
        a, f = sample.inputs["coefficient"], sample.inputs["source"]
        reference = family.solve_fields(a, f, reference_chain)
        family._newton = None  # a second Newton solver, over the other chain
        got = family.solve_fields(a, f, chain)
        family._newton = None
        assert reference.converged and got.converged, (got.reason, reference.reason)
        scale = np.abs(reference.x).max()
        assert np.abs(got.x - reference.x).max() <= 1e-6 * scale


NEWTON_RECIPES = {
    "reaction-diffusion": reaction_diffusion_recipe,
    "nonlinear-diffusion": nonlinear_diffusion_recipe,
}


@pytest.mark.parametrize(
    "field,name", [("method", "cg"), ("method", "rcg"), ("pc", "cholesky"), ("pc", "icc")]
)
@pytest.mark.parametrize("family", list(NEWTON_RECIPES))
def test_spd_only_solvers_are_refused(family, field, name):
    """Both Newton families: nonlinear diffusion's Jacobian is nonsymmetric, reaction-diffusion's
    symmetric but indefinite once dt > epsilon^2."""
    data = NEWTON_RECIPES[family]()
    data["solver"] = {"method": "gmres", "pc": "ilu", field: name}
    with pytest.raises(RecipeError, match=rf"solver\.{field}: '{name}' needs a symmetric positive"):
        recipe_from_dict(data)


def test_auto_runs_lu_in_2d():
    data = nonlinear_diffusion_recipe()
    data["solver"] = {"method": "auto", "pc": "auto"}
    loaded = recipe_from_dict(data)
    assert NonlinearDiffusion.resolve_solver(loaded.solver.method, loaded.solver.pc, 2) == (
        "direct",
        "lu",
    )


def test_stats_hold_newton_and_linear_iterations_and_check_passes(tmp_path):
    loaded = recipe_from_dict(nonlinear_diffusion_recipe())
    generate(loaded, out=tmp_path / "d", progress=False, engine="serial")
    with open_dataset(tmp_path / "d") as ds:
        stats = ds.stats()
        assert len(ds) == 6 and stats["converged"].all()
        assert (stats["newton_iterations"] >= 3).all()
        assert (stats["iterations"] > stats["newton_iterations"]).all()  # linear, summed
        assert (stats["solves"] == 1).all()  # one nonlinear solve per sample
        assert (stats["newton_residual"] <= 1e-8).all()
        assert all(r.startswith(b"CONVERGED_FNORM") for r in stats["reason"])
    report = check_dataset(tmp_path / "d")
    assert report.ok, report.lines()
    shown = subprocess.run(
        [sys.executable, "-m", "pdegen.cli", "inspect", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr
    newton = stats["newton_iterations"]
    assert f"Newton iterations: mean {newton.mean():.1f}, min {newton.min()}" in shown.stdout


@pytest.mark.parametrize("family,max_it", [("reaction-diffusion", 1), ("nonlinear-diffusion", 2)])
def test_a_sample_whose_newton_solve_fails_is_flagged_and_left_out(tmp_path, family, max_it):
    """A small max_it with a tight tolerance: every Newton solve stops unconverged (a
    trajectory's at its first step; the later steps are not attempted)."""
    loaded = recipe_from_dict(NEWTON_RECIPES[family](newton={"max_it": max_it, "rtol": 1e-12}))
    generate(loaded, out=tmp_path / "d", progress=False, engine="serial")
    with open_dataset(tmp_path / "d", include_unconverged=True) as ds:
        stats = ds.stats()
        assert not stats["converged"].any()
        assert set(stats["reason"]) == {b"DIVERGED_MAX_IT"}
        assert (stats["newton_iterations"] == max_it).all()
    with open_dataset(tmp_path / "d") as ds:
        assert len(ds) == 0  # never served as good data
    report = check_dataset(tmp_path / "d")
    assert report.ok and len(report.unconverged) == 6


def test_an_unsolvable_exponential_law_is_flagged_and_the_rest_kept(tmp_path):
    """exp(beta u) with a strong source has no solution where the Kirchhoff variable falls
    below -1/beta: those samples fail, the others are stored as good."""
    loaded = recipe_from_dict(nonlinear_diffusion_recipe(k="exponential", beta=1.0))
    generate(loaded, out=tmp_path / "d", progress=False, engine="serial")
    with open_dataset(tmp_path / "d", include_unconverged=True) as ds:
        converged = ds.stats()["converged"]
        reasons = ds.stats()["reason"]
    assert 0 < converged.sum() < converged.size, reasons
    assert all(r.startswith(b"DIVERGED") for r in reasons[~converged])
    with open_dataset(tmp_path / "d") as ds:
        assert len(ds) == int(converged.sum())
    for shard in sorted((tmp_path / "d").glob("shard-*.h5")):
        with h5py.File(shard, "r") as f:
            assert f["stats/converged"].dtype == bool


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_check_deep_re_evaluates_the_nonlinear_residual(tmp_path, dtype):
    """`pdegen check --deep` accepts the stored solutions (within the Newton tolerance plus
    the storage bound) and catches one whose value was changed."""
    data = nonlinear_diffusion_recipe()
    data["output"] = {"shard_size": 3, "dtype": dtype}
    generate(recipe_from_dict(data), out=tmp_path / "d", progress=False, engine="serial")
    report = check_dataset(tmp_path / "d", deep=6)
    assert report.ok and len(report.deep) == 6, report.lines()
    assert all(d.residual <= d.bound for d in report.deep)
    shard = sorted((tmp_path / "d").glob("shard-*.h5"))[0]
    with h5py.File(shard, "r+") as f:
        u = f["outputs/solution"]
        u[0, 8, 8] = u[0, 8, 8] * 1.01
        index = int(f["params/index"][0])
    report = check_dataset(tmp_path / "d", deep=6)
    assert any(f"sample {index}: relative residual" in line for line in report.lines())


def test_a_warm_start_worse_than_zero_is_dropped():
    """With warm starts a linear solve may start from the previous Newton update, but the last
    steps' updates are orders of magnitude smaller than the earlier ones: starting from the
    previous one there left residuals up to 10^4 ||b||, which GMRES reported as DIVERGED_DTOL
    (samples 6, 10, 15 of these). Such a guess is dropped: every sample converges, to the
    same solution as without warm starts."""
    family = NonlinearDiffusion(63, 2, NonlinearDiffusionProblem())
    warm, cold = ChainSolver("gmres", "ilu", warm_start=True), ChainSolver("gmres", "ilu")
    for index in range(7):
        sample = family.sample(1, index)
        a, f = sample.inputs["coefficient"], sample.inputs["source"]
        family._newton = None
        got = family.solve_fields(a, f, warm)
        family._newton = None
        reference = family.solve_fields(a, f, cold)
        assert got.converged and reference.converged, (index, got.reason)
        assert np.abs(got.x - reference.x).max() <= 1e-6 * np.abs(reference.x).max()


@pytest.mark.parametrize(
    ("dim", "n", "expected"),
    [
        (2, 63, ("gmres", "mg")),  # measured: GMRES + mg ahead of LU from 63^2 on
        (2, 127, ("gmres", "mg")),
        (2, 62, ("direct", "lu")),  # 63 cells: multigrid cannot coarsen
        (2, 31, ("direct", "lu")),  # below the measured sizes
        (3, 31, ("gmres", "mg")),
        (3, 15, ("gmres", "ilu")),  # GMRES + ILU and + mg tie at 15^3; LU loses 7x
    ],
)
def test_auto_is_what_was_measured_fastest(dim, n, expected):
    assert NonlinearDiffusion.resolve_solver("auto", "auto", dim, n) == expected
