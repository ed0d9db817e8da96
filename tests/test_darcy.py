"""The Darcy operator: conservative, symmetric positive definite, second-order accurate."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from pdegen.families import Darcy
from pdegen.families.darcy import DarcyProblem
from pdegen.specs import CoefficientSpec

PI = np.pi


def exact_u(x, y):
    return np.sin(PI * x) * np.sin(2 * PI * y) + x**2 * y  # non-zero on part of the boundary


def coefficient(x, y):
    return 1.5 + np.sin(2 * PI * x) * np.cos(PI * y)


def source(x, y):
    """-div(a grad u) for the functions above, derived by hand."""
    s = np.sin(PI * x) * np.sin(2 * PI * y)
    ux = PI * np.cos(PI * x) * np.sin(2 * PI * y) + 2 * x * y
    uy = 2 * PI * np.sin(PI * x) * np.cos(2 * PI * y) + x**2
    uxx = -(PI**2) * s + 2 * y
    uyy = -4 * PI**2 * s
    ax = 2 * PI * np.cos(2 * PI * x) * np.cos(PI * y)
    ay = -PI * np.sin(2 * PI * x) * np.sin(PI * y)
    a = coefficient(x, y)
    return -(ax * ux + a * uxx + ay * uy + a * uyy)


def manufactured_error(n: int) -> float:
    family = Darcy.square(n)
    X, Y = np.meshgrid(family.coordinates["x"], family.coordinates["y"], indexing="ij")
    A, b = family.assemble(coefficient(X, Y), source(X, Y), exact_u(X, Y))
    u = spla.spsolve(A.tocsc(), b).reshape(n, n)
    return float(np.abs(u - exact_u(X, Y)[1:-1, 1:-1]).max())


def test_manufactured_solution_converges_at_second_order():
    sizes = [15, 31, 63, 127]  # h = 1/16 ... 1/128
    errors = [manufactured_error(n) for n in sizes]
    orders = [np.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:], strict=False)]
    print("max-norm errors:", [f"{e:.3e}" for e in errors], "orders:", [f"{p:.3f}" for p in orders])
    assert all(1.9 < p < 2.1 for p in orders), orders


@pytest.mark.parametrize("kind", ["threshold", "lognormal"])
def test_random_coefficient_operator_is_symmetric_positive_definite(kind):
    family = Darcy.square(20, CoefficientSpec(kind=kind))
    A, b = family.system(family.sample(seed=3, index=0))
    assert abs(A - A.T).max() == 0.0
    eigenvalues = np.linalg.eigvalsh(A.toarray())
    assert eigenvalues.min() > 0
    assert b.shape == (400,)


def test_constant_coefficient_reproduces_the_five_point_laplacian():
    n = 6
    family = Darcy.square(n)
    A, _ = family.assemble(np.full((n + 2, n + 2), 2.0), 0.0)
    h = 1.0 / (n + 1)
    lap1d = np.diag(2 * np.ones(n)) - np.diag(np.ones(n - 1), 1) - np.diag(np.ones(n - 1), -1)
    expected = 2.0 * (np.kron(lap1d, np.eye(n)) + np.kron(np.eye(n), lap1d)) / h**2
    np.testing.assert_allclose(A.toarray(), expected, rtol=1e-14)


def test_harmonic_face_mean_is_exact_for_layered_media_in_1d():
    """Layers in x and no y-dependence: the flux through layers in series is exact."""
    n = 9
    family = Darcy.square(n)
    x = family.coordinates["x"]
    a = np.where(x[:, None] < 0.5, 1.0, 100.0) * np.ones((1, n + 2))
    # u(0) = 0, u(1) = 1 on the x-boundaries; on the y-boundaries, the 1D profile itself
    faces = 2 * a[:-1, 0] * a[1:, 0] / (a[:-1, 0] + a[1:, 0])
    resistance = np.cumsum(np.concatenate([[0.0], 1.0 / faces]))
    profile = resistance / resistance[-1]
    g = np.repeat(profile[:, None], n + 2, axis=1)
    A, b = family.assemble(a, 0.0, g)
    u = spla.spsolve(A.tocsc(), b).reshape(n, n)
    np.testing.assert_allclose(u, g[1:-1, 1:-1], atol=1e-12)


@pytest.mark.parametrize(("ndim", "n"), [(2, 7), (3, 5), (2, 64)])
def test_cached_stencil_pattern_assembles_what_scipys_coo_conversion_does(ndim, n):
    """The shared CSR pattern is an optimisation only: the same indptr, indices and values as
    building every matrix through COO, entry for entry."""
    import scipy.sparse as sp

    from pdegen.discretisation.operators import _couplings, stencil_matrix

    rng = np.random.default_rng(ndim * 100 + n)
    diagonal = rng.random((n,) * ndim)
    shapes = [tuple(n - 1 if k == ax else n for k in range(ndim)) for ax in range(ndim)]
    lower = [rng.random(shape) for shape in shapes]
    upper = [rng.random(shape) for shape in shapes]
    A = stencil_matrix(diagonal, lower, upper)
    rows, cols, vals = [np.arange(n**ndim)], [np.arange(n**ndim)], [diagonal.ravel()]
    for ax in range(ndim):
        lo, hi = _couplings(ndim, n, ax)
        rows += [lo, hi]
        cols += [hi, lo]
        vals += [upper[ax].ravel(), lower[ax].ravel()]
    B = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=A.shape
    )
    B.sort_indices()
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(A, name), getattr(B, name), err_msg=name)
    assert not A.indices.flags.writeable  # shared by every matrix of this size


@pytest.mark.parametrize(
    ("ndim", "n", "kind"),
    [
        (1, 9, "lognormal"),
        (2, 1, "lognormal"),
        (2, 31, "threshold"),
        (2, 40, "lognormal"),
        (3, 1, "threshold"),
        (3, 12, "lognormal"),
        (3, 15, "threshold"),
    ],
)
def test_the_compiled_stencil_kernel_gives_numpys_bits(ndim, n, kind):
    """`diffusion_operator` runs the compiled kernel (solvers/csrc/assembly.c); its numpy
    twin is the oracle: the same pattern, values and face coefficients, bit for bit, in
    every dimension (1 is the edge of the padded-axes indexing, n = 1 has no neighbours)."""
    from pdegen.discretisation.operators import diffusion_operator, diffusion_operator_numpy
    from solvers import native

    assert native.kernels() is not None, native.status()  # CI builds the kernels
    rng = np.random.default_rng(ndim * 1000 + n)
    field = rng.standard_normal((n + 2,) * ndim)
    a = np.where(field >= 0, 12.0, 3.0) if kind == "threshold" else np.exp(field)
    A, faces = diffusion_operator(a, 1.0 / (n + 1))
    B, oracle = diffusion_operator_numpy(a, 1.0 / (n + 1))
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(A, name), getattr(B, name), err_msg=name)
    assert len(faces) == ndim
    for got, want in zip(faces, oracle, strict=True):
        np.testing.assert_array_equal(got, want)
    x = rng.standard_normal(n**ndim)
    np.testing.assert_allclose(A @ x, B.toarray() @ x, rtol=1e-13, atol=1e-9 * (n + 1) ** 2)


@pytest.mark.parametrize(("ndim", "n"), [(1, 1), (1, 9), (2, 1), (2, 32), (3, 2), (3, 12)])
def test_the_compiled_cell_stencil_gives_numpys_bits(ndim, n):
    """On cells (`cell_diffusion_operator`, walls on the outer faces) the kernel's values
    against numpy's faces and stencil (`cell_face_coefficients`, `stencil_of_faces`), bit for
    bit, and both against the operator written out for one cell row by hand."""
    from pdegen.discretisation.operators import (
        _kernel_takes,
        cell_diffusion_operator,
        cell_face_coefficients,
        stencil_of_faces,
    )
    from solvers import native

    assert native.kernels() is not None, native.status()
    rng = np.random.default_rng(ndim * 100 + n)
    a = np.exp(rng.standard_normal((n,) * ndim))
    assert _kernel_takes(a, cells=True)  # n = 1: one cell between two walls, in C as well
    A = cell_diffusion_operator(a, 1.0 / n)
    B = stencil_of_faces(cell_face_coefficients(a), 1.0 / n)
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(A, name), getattr(B, name), err_msg=name)
    if ndim == 1 and n > 1:  # the first cell: a wall at h/2 (2 a0), then the face to cell 1
        face = 2 * a[0] * a[1] / (a[0] + a[1])
        np.testing.assert_allclose(A[0, 0], (2 * a[0] + face) * n**2, rtol=1e-14)
        np.testing.assert_allclose(A[0, 1], -face * n**2, rtol=1e-14)


def test_the_compiled_stencil_kernel_refuses_a_value_array_of_the_wrong_length():
    """A data array that does not fit the pattern is a caller bug: refused, not overrun."""
    from solvers import native

    lib = native.kernels()
    assert lib is not None, native.status()
    a = np.ones((6, 6))
    faces = [np.empty((5, 4)), np.empty((4, 5))]
    with pytest.raises(RuntimeError, match="pdegen_diffusion_stencil failed"):
        lib.run(
            "pdegen_diffusion_stencil",
            a=a,
            n=4,
            dim=2,
            scale=1.0,
            faces0=faces[0],
            faces1=faces[1],
            faces2=None,
            cells=0,
            data=np.empty(10),
            nnz=10,
            A=None,
        )


def _chain_of(family, method, pc):
    from solvers import ChainSolver

    multigrid = family.multigrid_settings() if family.on_cells else None
    return ChainSolver(method, pc=pc, rtol=1e-10, grid=family.interior_shape, multigrid=multigrid)


@pytest.mark.parametrize(
    ("dim", "method", "pc", "cells"),
    [
        (2, "direct", "cholesky", False),
        (2, "cg", "mg", False),
        (3, "gcrodr", "ilu", False),
        (3, "cg", "mg", False),
        (2, "cg", "mg", True),
        (3, "cg", "mg", True),
    ],
)
def test_a_matrix_filled_into_the_solvers_mat_solves_as_its_csr_does(dim, method, pc, cells):
    """Darcy hands the solver a `DiffusionMatrix`, whose values the kernel writes straight
    into the chain's Mat. Every sample must solve to the same bits as from its CSR matrix (a
    factorisation, smoother or hierarchy that missed the new values would not), the Mat must
    hold the CSR's values, one Mat serves the chain, and no CSR is built after the first; on
    the node grid and on cells (`grid.layout: cells`, the cell hierarchy)."""
    from pdegen.discretisation.operators import DiffusionMatrix
    from solvers import native

    assert native.kernels() is not None, native.status()  # CI builds the kernels
    n = (31 if dim == 2 else 11) + cells
    family = Darcy(n, dim, Darcy.Problem())
    if cells:
        family.use_cells()
    from_csr, filled = _chain_of(family, method, pc), _chain_of(family, method, pc)
    mats = set()
    for position, index in enumerate([4, 0, 7, 2]):
        sample = family.sample(5, index)
        A, b = family.system(sample)
        F, c = family.solver_system(sample)
        assert isinstance(F, DiffusionMatrix)
        np.testing.assert_array_equal(b, c)
        want, got = from_csr.solve(A, b), filled.solve(F, c)
        assert got.converged and got.iterations == want.iterations
        np.testing.assert_array_equal(got.x, want.x)
        np.testing.assert_allclose(got.x, spla.spsolve(A.tocsc(), b), rtol=1e-7)
        mat = filled._slot.mat
        np.testing.assert_array_equal(mat.getValuesCSR()[2], A.data)
        mats.add(id(mat))
        assert (F._csr is None) == (position > 0)  # filled in place after the first
    assert len(mats) == 1


def test_without_the_compiled_kernel_a_diffusion_matrix_loads_as_csr(monkeypatch):
    """PDEGEN_NATIVE=0 (or no compiler): `fill_aij` writes nothing and says so, and the solver
    loads the CSR matrix instead, with the same solution."""
    from pdegen.discretisation.operators import DiffusionMatrix
    from solvers import native

    family = Darcy.square(15)
    samples = [family.sample(1, i) for i in range(3)]
    with_kernel = [_chain_of(family, "cg", "jacobi").solve(*family.system(s)).x for s in samples]
    monkeypatch.setenv("PDEGEN_NATIVE", "0")
    native._load.cache_clear()
    try:
        chain = _chain_of(family, "cg", "jacobi")
        for sample, want in zip(samples, with_kernel, strict=True):
            F, b = family.solver_system(sample)
            if chain._slot.mat is not None:
                assert not F.fill_aij(chain._slot.mat)
            np.testing.assert_array_equal(chain.solve(F, b).x, want)
            assert F._csr is not None and isinstance(F, DiffusionMatrix)
    finally:
        monkeypatch.undo()
        native._load.cache_clear()


@pytest.mark.parametrize("dim,n,solver", [(2, 30, "spsolve"), (3, 10, "spsolve"), (3, 14, "cg")])
def test_the_hand_written_baseline_solves_the_problem_darcy_solves(dim, n, solver):
    """`benchmarks/naive_darcy.py` is what the engines benchmark measures pdegen against (issue
    26); its own assembly must be the same discretisation as Darcy's, or the ratios would
    compare different problems. Same coefficient (one of Darcy's draws), two assemblies."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "naive_darcy.py"
    spec = importlib.util.spec_from_file_location("naive_darcy", path)
    naive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(naive)
    family = Darcy(n, dim, DarcyProblem(CoefficientSpec(kind="threshold"), 1.0))
    sample = family.sample(seed=1, index=0)
    A, b = family.system(sample)
    ours = spla.spsolve(A.tocsc(), b)
    theirs = naive.solve(sample.inputs["coefficient"], solver)
    assert theirs.shape == (n + 2,) * dim and not theirs[(0,) * dim]
    rtol = 1e-12 if solver == "spsolve" else 1e-6  # CG stops at a relative residual of 1e-8
    np.testing.assert_allclose(theirs[(slice(1, -1),) * dim].ravel(), ours, rtol=rtol)
