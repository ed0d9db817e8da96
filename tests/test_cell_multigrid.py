"""Multigrid on cell-centred grids (issue 27, point 2, the solver's half): the cell operator
against a manufactured solution, the hierarchy's interpolation, and CG + mg against a direct
solve on Darcy's jumping coefficient."""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as spl

from pdegen.discretisation.fields import gaussian_random_field, sample_rng
from pdegen.discretisation.operators import cell_diffusion_operator
from solvers.cells import cell_positions, coarsen_cells
from solvers.multigrid import MGSettings, linear_interpolation_1d
from solvers.sequence import ChainSolver


def centres(n: int) -> np.ndarray:
    return (np.arange(n) + 0.5) / n


def test_the_cell_operator_converges_at_second_order_to_a_manufactured_solution():
    """-div(a grad u) = f with u = sin(pi x) sin(pi y) (zero on the walls) and a = 1 + x y:
    the error at the centres falls by 4 per halving of h."""
    errors = []
    for n in (16, 32, 64):
        x = centres(n)
        X, Y = np.meshgrid(x, x, indexing="ij")
        u = np.sin(np.pi * X) * np.sin(np.pi * Y)
        a = 1.0 + X * Y
        ux, uy = (
            np.pi * np.cos(np.pi * X) * np.sin(np.pi * Y),
            np.pi * np.sin(np.pi * X) * np.cos(np.pi * Y),
        )
        f = -(Y * ux + a * (-(np.pi**2)) * u + X * uy + a * (-(np.pi**2)) * u)
        A = cell_diffusion_operator(a, 1.0 / n)
        assert abs(A - A.T).max() < 1e-9  # symmetric
        computed = spl.spsolve(A.tocsc(), f.ravel())
        errors.append(np.abs(computed - u.ravel()).max())
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert (rates > 1.8).all(), (errors, rates)


def test_the_interpolation_is_linear_at_the_centres_with_zero_walls():
    """Along an axis, the interpolation is linear between the coarse points at the fine
    centres' true positions, the walls counting as points of value zero (np.interp)."""
    shapes = coarsen_cells((128, 128)).shapes
    assert shapes[:3] == ((128, 128), (64, 64), (32, 32)) and shapes[-1] == (2, 2)
    fine, coarse = cell_positions(shapes)[:2]
    P = linear_interpolation_1d(fine[0], coarse[0])
    values = np.sin(coarse[0][1:-1] / 97.0)  # any coarse values
    expected = np.interp(fine[0][1:-1], coarse[0], np.concatenate([[0.0], values, [0.0]]))
    np.testing.assert_allclose(P @ values, expected, rtol=0, atol=1e-14)
    assert np.diff(coarse[0]).max() == 4  # at most two fine intervals per coarse one
    assert set(coarse[0]) <= set(fine[0])  # every coarse point a fine one, the walls kept


def test_cg_with_cell_multigrid_solves_darcy_in_few_iterations():
    n = 128
    x = centres(n)
    field = gaussian_random_field(sample_rng(1, 0), [x, x], 2.0, 3.0)
    A = cell_diffusion_operator(np.where(field >= 0.0, 12.0, 3.0), 1.0 / n)
    b = np.ones(n * n)
    chain = ChainSolver(
        "cg", pc="mg", rtol=1e-8, grid=(n, n), multigrid=MGSettings("gs", layout="cells")
    )
    result = chain.solve(A, b)
    exact = spl.spsolve(A.tocsc(), b)
    assert chain.pc == "mg" and result.converged and result.iterations <= 10
    assert np.linalg.norm(result.x - exact) <= 1e-6 * np.linalg.norm(exact)
    small = ChainSolver("cg", pc="mg", grid=(2, 2), multigrid=MGSettings(layout="cells"))
    small.solve(cell_diffusion_operator(np.ones((2, 2)), 1 / 2), np.ones(4))
    assert small.pc == "gamg" and "cell grid coarsens too little" in small.note
