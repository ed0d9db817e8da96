"""Manufactured solutions and structural checks for every family, in 2D and 3D."""

import math

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from pdegen.errors import RecipeError
from pdegen.families import Darcy, Helmholtz, Poisson
from pdegen.families.darcy import DarcyProblem
from pdegen.families.helmholtz import HelmholtzProblem
from pdegen.families.poisson import PoissonProblem
from pdegen.recipe.schema import recipe_from_dict
from pdegen.specs import CoefficientSpec
from tests.helpers import small_recipe_dict

PI = math.pi


def grid(family):
    return np.meshgrid(*([family.x] * family.dim), indexing="ij")


def smooth_u(X):
    """sin(pi x) sin(2 pi y) [sin(pi z)] + x^2 y: non-zero on part of the boundary."""
    u = np.sin(PI * X[0]) * np.sin(2 * PI * X[1])
    if len(X) == 3:
        u = u * np.sin(PI * X[2])
    return u + X[0] ** 2 * X[1]


def laplacian_u(X):
    s = np.sin(PI * X[0]) * np.sin(2 * PI * X[1])
    if len(X) == 3:
        return -6 * PI**2 * s * np.sin(PI * X[2]) + 2 * X[1]
    return -5 * PI**2 * s + 2 * X[1]


def orders(errors):
    return [math.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:], strict=False)]


@pytest.mark.parametrize("dim,sizes", [(2, [15, 31, 63]), (3, [7, 15, 31])])
def test_poisson_manufactured_solution_second_order(dim, sizes):
    errors = []
    for n in sizes:
        family = Poisson(n, dim, PoissonProblem())
        X = grid(family)
        A, b = family.assemble(-laplacian_u(X), smooth_u(X))
        u = spla.spsolve(A.tocsc(), b)
        errors.append(np.abs(u - family.interior(smooth_u(X)).ravel()).max())
    print(f"poisson {dim}D errors", errors, "orders", orders(errors))
    assert all(1.85 < p < 2.2 for p in orders(errors))


@pytest.mark.parametrize("dim,sizes", [(2, [15, 31, 63]), (3, [7, 15, 31])])
def test_darcy_manufactured_solution_second_order_in_2d_and_3d(dim, sizes):
    errors = []
    for n in sizes:
        family = Darcy(n, dim, DarcyProblem())
        X = grid(family)
        a = 2.0 + np.sin(PI * X[0]) * np.cos(PI * X[-1])
        # -div(a grad u) = -a lap u - grad a . grad u, with exact derivatives
        z_factor = np.sin(PI * X[2]) if dim == 3 else 1.0
        u_x = PI * np.cos(PI * X[0]) * np.sin(2 * PI * X[1]) * z_factor + 2 * X[0] * X[1]
        u_last = (
            PI * np.sin(PI * X[0]) * np.sin(2 * PI * X[1]) * np.cos(PI * X[2])
            if dim == 3
            else 2 * PI * np.sin(PI * X[0]) * np.cos(2 * PI * X[1]) + X[0] ** 2
        )
        a_x = PI * np.cos(PI * X[0]) * np.cos(PI * X[-1])
        a_last = -PI * np.sin(PI * X[0]) * np.sin(PI * X[-1])
        f = -a * laplacian_u(X) - a_x * u_x - a_last * u_last
        A, b = family.assemble(a, f, smooth_u(X))
        u = spla.spsolve(A.tocsc(), b)
        errors.append(np.abs(u - family.interior(smooth_u(X)).ravel()).max())
    print(f"darcy {dim}D errors", errors, "orders", orders(errors))
    assert all(1.85 < p < 2.2 for p in orders(errors))


@pytest.mark.parametrize("dim,sizes", [(2, [31, 63, 127]), (3, [15, 31])])
def test_helmholtz_manufactured_solution_second_order(dim, sizes):
    errors = []
    for n in sizes:
        family = Helmholtz(n, dim, HelmholtzProblem())
        X = grid(family)
        k = 9.0
        a = np.ones(family.grid_shape)
        u_exact = np.sin(PI * X[0]) * np.sin(2 * PI * X[1])
        if dim == 3:
            u_exact = u_exact * np.sin(PI * X[2])
        lap = -(5 if dim == 2 else 6) * PI**2 * u_exact
        A, b = family.assemble(a, k, -lap - k**2 * u_exact)
        u = spla.spsolve(A.tocsc(), b)
        errors.append(np.abs(u - family.interior(u_exact).ravel()).max())
    print(f"helmholtz {dim}D errors", errors, "orders", orders(errors))
    assert all(1.85 < p < 2.2 for p in orders(errors))


def test_helmholtz_recipe_range_is_indefinite_and_symmetric():
    data = small_recipe_dict(family="helmholtz", grid={"n": 31}, solver={"method": "gmres"})
    data["problem"] = {"wavenumber": {"min": 8, "max": 12}}
    recipe = recipe_from_dict(data)
    family = Helmholtz.from_recipe(recipe)
    for index in (0, 1):
        sample = family.sample(recipe.seed, index)
        k = sample.params["wavenumber"]
        assert recipe.problem.wavenumber.min <= k <= recipe.problem.wavenumber.max
        A, _ = family.system(sample)
        assert abs(A - A.T).max() == 0
        eigs = np.linalg.eigvalsh(A.toarray())
        assert eigs.min() < 0 < eigs.max(), "the recipe's range must give indefinite operators"
        assert (eigs < 0).sum() >= 5


def test_helmholtz_recipes_with_too_few_points_per_wavelength_are_rejected():
    data = small_recipe_dict(family="helmholtz", grid={"n": 31})
    data["problem"] = {"wavenumber": {"min": 15, "max": 60}}
    with pytest.raises(
        RecipeError,
        match=r"problem\.wavenumber\.max: 60 leaves .* points per "
        r"wavelength .* raise grid\.n to at least",
    ):
        recipe_from_dict(data)
    data["problem"]["wavenumber"] = {"min": 2, "max": 12}
    with pytest.raises(
        RecipeError,
        match=r"problem\.wavenumber\.min: 2 does not make the "
        r"operator indefinite",
    ):
        recipe_from_dict(data)


def test_poisson_samples_share_one_matrix_object():
    family = Poisson(15, 2, PoissonProblem())
    s0, s1 = family.sample(0, 0), family.sample(0, 1)
    (A0, b0), (A1, b1) = family.system(s0), family.system(s1)
    assert A0 is A1 and not np.array_equal(b0, b1)
    u = family.solution_field(s0, spla.spsolve(A0.tocsc(), b0))
    boundary = s0.inputs["boundary"]
    assert np.abs(boundary[0]).max() > 0
    np.testing.assert_array_equal(u[0], boundary[0])  # Dirichlet data in the stored solution


def test_darcy_3d_operator_is_symmetric_positive_definite():
    family = Darcy(8, 3, DarcyProblem(CoefficientSpec(kind="lognormal")))
    A, b = family.system(family.sample(0, 0))
    assert A.shape == (512, 512) and abs(A - A.T).max() == 0
    assert np.linalg.eigvalsh(A.toarray()).min() > 0
    assert A.getnnz(axis=1).max() == 7  # seven-point stencil
