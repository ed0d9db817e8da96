"""Newton through SNES with the chain solver: it solves what scipy's root finder solves,
converges quadratically near the solution, reports failures, and the chain it drives keeps
what it carries (factorisation, recycled space) across Newton steps and solves."""

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp

from solvers.newton import NewtonSolver
from solvers.sequence import ChainSolver


def cubic_problem(n: int = 40, seed: int = 0):
    """F(u) = A u + u^3 + c * u * shift(u) - b: a 1D Laplacian, a cubic reaction and a
    nonsymmetric coupling (so the Jacobian is not symmetric), with the 3-point pattern."""
    A = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n), format="csr") * 10.0
    b = np.random.default_rng(seed).standard_normal(n) * 20.0
    c = 1.0

    def shifted(u):
        return np.concatenate([u[1:], [0.0]])

    def residual(u):
        return A @ u + u**3 + c * u * shifted(u) - b

    def jacobian(u):
        upper = c * u[:-1]  # d(u_i u_{i+1}) / d u_{i+1}
        J = A + sp.diags(3 * u**2 + c * shifted(u)) + sp.diags(upper, 1)
        return sp.csr_matrix(J)

    return residual, jacobian, n


def test_newton_finds_the_root_scipy_finds():
    residual, jacobian, n = cubic_problem()
    result = NewtonSolver(ChainSolver("gmres", "ilu")).solve(residual, jacobian, np.zeros(n))
    reference = scipy.optimize.root(residual, np.zeros(n), jac=lambda u: jacobian(u).toarray())
    assert result.converged and reference.success
    assert result.reason.startswith("CONVERGED_FNORM")
    np.testing.assert_allclose(result.x, reference.x, rtol=1e-7, atol=1e-9)
    assert np.linalg.norm(residual(result.x)) <= 1e-8 * np.linalg.norm(residual(np.zeros(n)))
    assert len(result.linear) == result.newton_iterations >= 2
    assert result.iterations == sum(r.iterations for r in result.linear)
    assert len(result.norms) == result.newton_iterations + 1


def test_newton_converges_quadratically_near_the_solution():
    """Started near the solution, with exact linear solves (LU): above the rounding floor the
    observed order q_k = log(r_{k+1}/r_k) / log(r_k/r_{k-1}) is about 2, and
    r_{k+1} <= C r_k^2 with one C."""
    residual, jacobian, n = cubic_problem()
    newton = NewtonSolver(ChainSolver("direct", "lu"), rtol=1e-14, atol=1e-11)
    solution = newton.solve(residual, jacobian, np.zeros(n)).x
    start = solution + 0.2 * np.abs(solution).max() * np.sin(np.linspace(0, 3 * np.pi, n))
    result = newton.solve(residual, jacobian, start)
    assert result.converged
    r = np.asarray(result.norms)
    above = [k for k in range(1, len(r) - 1) if r[k + 1] > 1e-14 * r[0]]
    assert len(above) >= 2, r
    orders = [np.log(r[k + 1] / r[k]) / np.log(r[k] / r[k - 1]) for k in above[-2:]]
    assert all(1.8 < q < 2.3 for q in orders), (r, orders)
    constants = [r[k + 1] / r[k] ** 2 for k in range(len(r) - 1) if r[k + 1] > 1e-14 * r[0]]
    assert max(constants) < 5 * min(constants), (r, constants)


def test_a_newton_solve_that_cannot_converge_is_flagged():
    residual, jacobian, n = cubic_problem()
    result = NewtonSolver(ChainSolver("gmres", "ilu"), max_it=1).solve(
        residual, jacobian, np.zeros(n)
    )
    assert not result.converged and result.reason == "DIVERGED_MAX_IT"
    assert result.newton_iterations == 1 and result.linear[0].converged


def test_a_failed_linear_solve_fails_the_newton_solve():
    residual, jacobian, n = cubic_problem()
    chain = ChainSolver("gmres", "none", max_iterations=2, restart=2)
    result = NewtonSolver(chain).solve(residual, jacobian, np.zeros(n))
    assert not result.converged and result.reason == "DIVERGED_LINEAR_SOLVE"
    assert not result.linear[-1].converged


def test_a_diverging_law_is_flagged_not_raised():
    """exp(u) with a large source has no solution: Newton's iterates overflow; the solve is
    reported as failed, not as an exception."""
    A = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(30, 30), format="csr") * 31**2

    def residual(u):
        return A @ u - 1e4 * np.exp(u)

    def jacobian(u):
        return sp.csr_matrix(A - sp.diags(1e4 * np.exp(u)))

    result = NewtonSolver(ChainSolver("direct", "lu")).solve(residual, jacobian, np.zeros(30))
    assert not result.converged and result.reason.startswith("DIVERGED")


@pytest.mark.parametrize("method,pc", [("gcrodr", "ilu"), ("direct", "lu")])
def test_the_chain_keeps_what_it_carries_across_newton_solves(method, pc):
    """One NewtonSolver, several solves: GCRO-DR's recycled space and LU's Mat persist."""
    residual, jacobian, n = cubic_problem(n=200)
    chain = ChainSolver(method, pc, recycle=10, restart=30)
    newton = NewtonSolver(chain)
    first = newton.solve(residual, jacobian, np.zeros(n))
    mat = chain._slot.mat
    second = newton.solve(residual, jacobian, np.zeros(n))
    assert first.converged and second.converged
    assert chain._slot.mat is mat  # the same Mat: the symbolic factorisation is reused
    if method == "gcrodr":
        assert chain.context.U is not None and chain.context.U.shape[0] == 10
    np.testing.assert_allclose(second.x, first.x, rtol=1e-9, atol=1e-12)
