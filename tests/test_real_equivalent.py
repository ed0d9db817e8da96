"""The real equivalent (2 x 2 block) form of complex matrices (solvers/real_equivalent.py), and
the two-dof multigrid hierarchy it is preconditioned with, against scipy's Kronecker products
and complex arithmetic."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from solvers.multigrid import GridHierarchy
from solvers.real_equivalent import RealEquivalent, interleave

ROTATION = sp.csr_matrix([[0.0, -1.0], [1.0, 0.0]])


def random_matrix(n: int, seed: int) -> sp.csr_matrix:
    A = sp.random(n, n, density=0.2, random_state=seed, format="csr") + sp.identity(n)
    A = sp.csr_matrix(A)
    A.sort_indices()
    return A


def test_the_real_operator_is_kron_a_i2_and_acts_as_a_on_both_parts():
    A = random_matrix(30, 1)
    K = RealEquivalent().real_operator(A)
    assert abs(K - sp.kron(A, sp.identity(2))).max() == 0
    assert K.has_sorted_indices
    x, y = np.random.default_rng(0).standard_normal((2, 30))
    out = K @ interleave(x, y)
    np.testing.assert_allclose(out[0::2], A @ x)
    np.testing.assert_allclose(out[1::2], A @ y)


def test_the_shifted_operator_multiplies_like_the_complex_matrix():
    """[[R, -S], [S, R]] on (x, y) is (R + iS)(x + iy), S = diag(shift); the pattern is reused
    for a second matrix of the same pattern (new values only)."""
    forms = RealEquivalent()
    rng = np.random.default_rng(1)
    A = random_matrix(25, 2)
    for scale in (1.0, 3.0):
        R = sp.csr_matrix((scale * A.data, A.indices, A.indptr), shape=A.shape)
        shift = rng.uniform(0.5, 2.0, 25)
        M = forms.shifted_operator(R, shift)
        expected = sp.kron(R, sp.identity(2)) + sp.kron(sp.diags(shift), ROTATION)
        assert abs(M - expected).max() == 0
        z = rng.standard_normal(25) + 1j * rng.standard_normal(25)
        product = (R + 1j * sp.diags(shift)) @ z
        out = M @ interleave(z.real, z.imag)
        np.testing.assert_allclose(out[0::2] + 1j * out[1::2], product, atol=1e-12)


def test_the_two_dof_hierarchy_interpolates_both_parts_with_the_scalar_weights():
    scalar = GridHierarchy((7, 7))
    paired = GridHierarchy((7, 7), dof=2)
    for P1, P2 in zip(scalar.interpolations, paired.interpolations, strict=True):
        one = sp.csr_matrix(P1.getValuesCSR()[::-1], shape=P1.getSize())
        two = sp.csr_matrix(P2.getValuesCSR()[::-1], shape=P2.getSize())
        assert abs(two - sp.kron(one, sp.identity(2))).max() < 1e-15


def test_gcrodr_with_the_complex_shifted_preconditioner_agrees_with_lu():
    """A 2D Helmholtz system solved in real equivalent form, preconditioned by the exact
    complex-shifted operator (benchmarks/complex_shift.py's method): its real part is the LU
    solution to the tolerance, and its imaginary part vanishes."""
    from scipy.sparse.linalg import spsolve

    from pdegen.families import Helmholtz
    from pdegen.families.helmholtz import HelmholtzProblem
    from pdegen.specs import RangeSpec
    from solvers.baselines import make_ksp
    from solvers.petsc import MatrixSlot, vec_from_array

    family = Helmholtz(31, 2, HelmholtzProblem(wavenumber=RangeSpec(8.0, 12.0)))
    forms, slot, pslot = RealEquivalent(), MatrixSlot(), MatrixSlot()
    ksp = make_ksp("gcrodr", "lu", rtol=1e-10, max_iterations=2000)
    for index in range(2):  # the second solve carries the first's recycled space
        sample = family.sample(0, index)
        A, b = family.system(sample)
        k2 = sample.params["wavenumber"] ** 2
        ksp.setOperators(
            slot.load(forms.real_operator(A)), pslot.load(forms.shifted_operator(A, 0.5 * k2))
        )
        rhs = vec_from_array(interleave(b))
        x = rhs.duplicate()
        ksp.solve(rhs, x)
        assert ksp.getConvergedReason() > 0
        z = x.getArray()
        exact = spsolve(A.tocsc(), b)
        assert np.linalg.norm(z[0::2] - exact) <= 1e-7 * np.linalg.norm(exact)
        assert np.linalg.norm(z[1::2]) <= 1e-7 * np.linalg.norm(exact)
