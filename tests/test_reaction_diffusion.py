"""Reaction-diffusion trajectories (Allen-Cahn, Fisher-KPP) with Newton per time step: second
order in space against a manufactured solution, first (backward Euler) and second
(Crank-Nicolson) order in time against a fine reference, every allowed method agrees with LU,
and statistics per sample. With nonlinear diffusion, in tests/test_nonlinear_diffusion.py:
SPD-only solvers are refused and failed Newton solves are flagged; in tests/test_engines.py:
the engines write the same dataset."""

import dataclasses

import numpy as np
import pytest

from pdegen import open_dataset
from pdegen.dataset.check import check_dataset
from pdegen.errors import RecipeError
from pdegen.families import ReactionDiffusion
from pdegen.families.reaction_diffusion import ReactionDiffusionProblem, reaction_law
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.generate import generate
from solvers.sequence import ChainSolver
from tests.helpers import reaction_diffusion_recipe


def manufactured(
    n: int, dim: int, reaction: str, scheme: str, steps: int, end: float, cells: bool = False
):
    """u*(x, t) = 0.8 exp(-t) prod sin(pi x_d), a = exp(0.5 prod cos(pi x_d)), and the
    forcing s = u*_t - div(a grad u*) - r(u*), written out by hand; on n cells per axis
    (`grid.layout: cells`) when `cells`, else on n interior nodes."""
    problem = ReactionDiffusionProblem(
        reaction=reaction, epsilon=0.3, rate=5.0, scheme=scheme, dt=end / steps, steps=steps
    )
    family = ReactionDiffusion(n, dim, problem)
    if cells:
        family.use_cells()
    x = np.meshgrid(*([family.x] * dim), indexing="ij")
    s = [np.sin(np.pi * xi) for xi in x]
    c = [np.cos(np.pi * xi) for xi in x]
    shape = 0.8 * np.prod(s, axis=0)
    a = np.exp(0.5 * np.prod(c, axis=0))
    grad = [0.8 * np.pi * c[d] * np.prod([s[e] for e in range(dim) if e != d], axis=0)
            for d in range(dim)]  # fmt: skip
    grad_a = [a * 0.5 * -np.pi * s[d] * np.prod([c[e] for e in range(dim) if e != d], axis=0)
              for d in range(dim)]  # fmt: skip
    div_shape = sum(ga * g for ga, g in zip(grad_a, grad, strict=True)) - a * dim * np.pi**2 * shape
    r, _ = reaction_law(problem)

    def exact(t):
        return np.exp(-t) * shape

    def forcing(t):
        return -exact(t) - np.exp(-t) * div_shape - r(exact(t))

    return family, a, exact, forcing


@pytest.mark.parametrize(
    "dim,sizes,reaction,cells",
    [
        (2, (15, 31, 63), "allen-cahn", False),
        (2, (15, 31, 63), "fisher-kpp", False),
        (3, (7, 15), "allen-cahn", False),
        (2, (16, 32, 64), "allen-cahn", True),
        (3, (8, 16), "fisher-kpp", True),
    ],
)
def test_second_order_in_space_against_a_manufactured_solution(dim, sizes, reaction, cells):
    """Crank-Nicolson with dt proportional to h: the error at the end is O(h^2 + dt^2), on
    the node grid and on the cell-centred one (values at the centres, u = 0 on the walls)."""
    errors = []
    for n in sizes:
        steps = (n + 1) // 2
        family, a, exact, forcing = manufactured(
            n, dim, reaction, "crank-nicolson", steps, 0.2, cells
        )
        u, results = family.trajectory(a, exact(0.0), ChainSolver("direct", "lu"), forcing)
        assert all(r.converged for r in results)
        errors.append(np.abs(u[-1] - exact(0.2)).max())
    orders = np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))
    assert np.all(orders > 1.85), (errors, orders)


@pytest.mark.parametrize("scheme,order", [("backward-euler", 1.0), ("crank-nicolson", 2.0)])
def test_order_in_time_against_a_fine_reference(scheme, order):
    """Allen-Cahn from a random initial state on one grid: the error of the last frame
    against Crank-Nicolson with 8 times smaller steps than the finest falls as dt^order."""
    base = ReactionDiffusionProblem(epsilon=0.1, dt=0.02 / 640, steps=640, scheme="crank-nicolson")
    reference_family = ReactionDiffusion(15, 2, base)
    sample = reference_family.sample(3, 0)
    a, u0 = sample.inputs["coefficient"], sample.inputs["initial"]
    reference, _ = reference_family.trajectory(a, u0, ChainSolver("direct", "lu"))
    errors = []
    for steps in (10, 20, 40, 80):
        problem = dataclasses.replace(base, scheme=scheme, dt=0.02 / steps, steps=steps)
        u, results = ReactionDiffusion(15, 2, problem).trajectory(
            a, u0, ChainSolver("direct", "lu")
        )
        assert all(r.converged for r in results)
        errors.append(np.abs(u[-1] - reference[-1]).max())
    orders = np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))
    assert np.all(np.abs(orders - order) < 0.25), (errors, orders)


def test_the_jacobian_is_the_derivative_of_the_step_residual():
    rng = np.random.default_rng(4)
    for reaction, scheme in (("allen-cahn", "backward-euler"), ("fisher-kpp", "crank-nicolson")):
        family = ReactionDiffusion(9, 2, ReactionDiffusionProblem(reaction=reaction, scheme=scheme))
        sample = family.sample(0, 0)
        A, M, diagonal = family.stepping(sample.inputs["coefficient"])
        u = family.interior(sample.inputs["initial"]).ravel()
        F, J = family.step_problem(A, M, diagonal, u, 0.0)
        v, w = rng.standard_normal((2, family.unknowns))
        eps = 1e-6
        difference = (F(v + eps * w) - F(v - eps * w)) / (2 * eps)
        assert np.linalg.norm(difference - J(v) @ w) <= 1e-7 * np.linalg.norm(J(v) @ w)
        assert abs(J(v) - J(v).T).max() == 0  # symmetric, as declared


def test_the_jacobian_is_indefinite_when_dt_exceeds_epsilon_squared():
    """The declaration (not positive definite) is real: dt > epsilon^2 near u = 0."""
    family = ReactionDiffusion(15, 2, ReactionDiffusionProblem(epsilon=0.07, dt=0.01))
    J, _ = family.system(family.sample(0, 0))
    assert np.linalg.eigvalsh(J.toarray()).min() < 0
    definite = ReactionDiffusion(15, 2, ReactionDiffusionProblem(epsilon=0.07, dt=0.001))
    J, _ = definite.system(definite.sample(0, 0))
    assert np.linalg.eigvalsh(J.toarray()).min() > 0


ALLOWED = [
    ("gmres", "ilu"),
    ("gcrodr", "ilu"),
    ("gcrodr", "jacobi"),
    ("gcrotmk", "ilu"),
    ("gmres", "mg"),
    ("gmres", "gamg"),
]


@pytest.mark.parametrize("method,pc", ALLOWED)
def test_every_allowed_method_agrees_with_lu(method, pc):
    """On an indefinite regime (dt > epsilon^2) and across two samples of one chain."""
    problem = ReactionDiffusionProblem(epsilon=0.07, dt=0.006, steps=4)
    family = ReactionDiffusion(15, 2, problem)
    reference_chain = ChainSolver("direct", "lu")
    chain = ChainSolver(method, pc, grid=family.interior_shape)
    for index in range(2):
        sample = family.sample(1, index)
        a, u0 = sample.inputs["coefficient"], sample.inputs["initial"]
        family._newton = None
        reference, ref_results = family.trajectory(a, u0, reference_chain)
        family._newton = None
        got, results = family.trajectory(a, u0, chain)
        assert all(r.converged for r in results + ref_results)
        assert np.abs(got - reference).max() <= 1e-6 * np.abs(reference).max()


def test_an_unresolved_interface_is_refused():
    with pytest.raises(RecipeError, match=r"problem\.epsilon: 0\.01 is below the grid spacing"):
        recipe_from_dict(reaction_diffusion_recipe(epsilon=0.01))


@pytest.mark.parametrize("reaction", ["allen-cahn", "fisher-kpp"])
def test_trajectories_stats_and_check(tmp_path, reaction):
    loaded = recipe_from_dict(reaction_diffusion_recipe(reaction=reaction))
    generate(loaded, out=tmp_path / "d", progress=False, engine="serial")
    with open_dataset(tmp_path / "d") as ds:
        stats = ds.stats()
        assert len(ds) == 6 and stats["converged"].all()
        assert (stats["solves"] == 4).all()  # one Newton solve per step
        assert (stats["newton_iterations"] >= 4 * 2).all()  # nonlinear: several per step
        assert (stats["iterations"] > stats["newton_iterations"]).all()
        item = ds[0]
        assert item["solution"].shape == (5, 33, 33)
        np.testing.assert_array_equal(item["solution"][0], item["initial"])
        if reaction == "fisher-kpp":
            inner = item["initial"][1:-1, 1:-1]  # the logistic of the field, in (0, 1)
            assert inner.min() > 0 and inner.max() < 1
    report = check_dataset(tmp_path / "d", deep=3)
    assert report.ok and len(report.deep) == 3, report.lines()


def test_after_a_failed_step_the_march_stops_and_the_sample_is_flagged():
    """dt = 0.004 = 2.5 epsilon^2 at n = 63: the first step's Newton solve fails (measured:
    with every solver); the later steps are not attempted, their frames are NaN."""
    family = ReactionDiffusion(63, 2, ReactionDiffusionProblem(dt=0.004, steps=5))
    sample = family.sample(1, 0)
    u, results = family.trajectory(
        sample.inputs["coefficient"], sample.inputs["initial"], ChainSolver("direct", "lu")
    )
    assert len(results) == 5 and not results[0].converged
    assert results[0].reason.startswith("DIVERGED")
    assert [r.reason for r in results[1:]] == ["NOT_SOLVED"] * 4
    assert np.isnan(u[2:, 1:-1, 1:-1]).all() and np.isfinite(u[0]).all()
    assert not u[2:, 0].any()  # the Dirichlet boundary stays 0


def test_auto_runs_the_fastest_measured_pair_for_the_regime():
    """Definite steps (the default recipe): GMRES + ILU in 2D, GMRES + mg from 127 where the
    grid coarsens, GMRES + ILU in 3D. Steps that can meet an indefinite Jacobian (theta dt
    max r' >= 1): LU in 2D, the only pair that converged every sample there."""
    from pdegen.recipe.schema import recipe_from_dict
    from tests.helpers import small_recipe_dict

    def resolved(dim, n, **problem):
        data = small_recipe_dict(family="reaction-diffusion", grid={"n": n, "dim": dim})
        data["solver"] = {"method": "auto", "pc": "auto"}
        data["problem"] = problem
        recipe = recipe_from_dict(data)
        return ReactionDiffusion(n, dim, recipe.problem).resolve_for("auto", "auto")

    assert resolved(2, 63) == ("gmres", "ilu")
    assert resolved(2, 127) == ("gmres", "mg")
    assert resolved(2, 126) == ("gmres", "ilu")  # below the measured crossover, 127
    assert resolved(3, 31) == ("gmres", "ilu")
    assert resolved(2, 63, dt=0.004) == ("direct", "lu")  # dt > epsilon^2 = 0.0016
    assert resolved(2, 63, reaction="fisher-kpp", rate=2000.0) == ("direct", "lu")
    assert resolved(2, 63, dt=0.004, scheme="crank-nicolson") == ("direct", "lu")
    assert resolved(2, 63, dt=0.003, scheme="crank-nicolson") == ("gmres", "ilu")  # 0.5 dt
    assert resolved(3, 31, dt=0.004) == ("gmres", "ilu")  # 3D: LU measured 16x slower


def test_a_time_step_that_overflows_is_refused_naming_dt():
    from pdegen.errors import RecipeError
    from pdegen.recipe.schema import recipe_from_dict
    from tests.helpers import small_recipe_dict

    data = small_recipe_dict(family="reaction-diffusion", grid={"n": 31})
    data["solver"] = {"method": "auto", "pc": "auto"}
    data["problem"] = {"dt": 1e307, "steps": 20}
    with pytest.raises(RecipeError, match=r"problem\.dt: 1e\+307 is too large"):
        recipe_from_dict(data)
