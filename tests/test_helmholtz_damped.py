"""Helmholtz in an attenuating medium, -div(a grad u) - k^2 (1 + i gamma) u = f: complex
solutions solved in real 2 x 2 block form, the complex-shifted Laplacian's V-cycle, and the
imaginary part in the dataset. The oracle is scipy's complex sparse LU of the same operator."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pdegen.errors import RecipeError
from pdegen.families import Helmholtz
from pdegen.families.helmholtz import HelmholtzProblem
from pdegen.recipe.schema import recipe_from_dict
from pdegen.specs import RangeSpec
from solvers import ChainSolver
from tests.helpers import cli, small_recipe_dict


def damped_family(n: int, k_min: float, k_max: float, damping: float = 0.05) -> Helmholtz:
    problem = HelmholtzProblem(wavenumber=RangeSpec(k_min, k_max), damping=damping)
    return Helmholtz(n, 2, problem)


def chain_for(family: Helmholtz, method: str, pc: str, rtol: float = 1e-10) -> ChainSolver:
    return ChainSolver(
        method,
        pc,
        rtol=rtol,
        max_iterations=2000,
        grid=family.interior_shape,
        multigrid=family.multigrid_settings(),
        **family.vector_layout(),
    )


def complex_solution(family: Helmholtz, sample) -> np.ndarray:
    """The oracle: the complex operator assembled independently of the block form."""
    A, f = family.system_real(sample)
    k2 = sample.params["wavenumber"] ** 2
    damping = sp.identity(A.shape[0], format="csr") * (1j * family.problem.damping * k2)
    return spla.spsolve((A.astype(complex) - damping).tocsc(), f.astype(complex))


def stored_complex(family: Helmholtz, outputs: dict) -> np.ndarray:
    real, imaginary = (family.interior(outputs[n]).ravel() for n in ("solution", "solution_imag"))
    return real + 1j * imaginary


@pytest.mark.parametrize("method,pc", [("direct", "lu"), ("gcrodr", "mg"), ("gmres", "mg")])
def test_damped_solutions_match_a_complex_direct_solve(method, pc):
    family = damped_family(63, 25.0, 30.0)
    chain = chain_for(family, method, pc)
    for index in range(3):
        sample = family.sample(0, index)
        outputs, [result] = family.solve_sample(sample, chain)
        assert result.converged
        expected = complex_solution(family, sample)
        error = np.linalg.norm(stored_complex(family, outputs) - expected)
        assert error <= 1e-7 * np.linalg.norm(expected)
        assert np.abs(expected.imag).max() > 0.1 * np.abs(expected.real).max()
    if pc == "mg":  # the complex-shifted V-cycle ran, on two unknowns per node
        assert chain.pc == "mg" and chain.hierarchy.dof == 2
        assert chain.hierarchy.levels == family.csl_levels()


def test_complex_shifted_multigrid_converges_at_high_wavenumber():
    """At k about 50 on 127^2 (8 to 16 points per wavelength) the complex-shifted V-cycle
    keeps GCRO-DR under 150 iterations (measured 86-98; the real shift's V-cycle does not
    converge in 3000, docs/benchmarks.md); a V-cycle coarsened past k h = 1, or a shift of
    the opposite sign, takes twice as many or stalls."""
    family = damped_family(127, 45.0, 55.0)
    chain = chain_for(family, "gcrodr", "mg", rtol=1e-8)
    for index in range(2):
        _, [result] = family.solve_sample(family.sample(0, index), chain)
        assert result.converged and result.iterations < 150


@pytest.mark.parametrize(
    "dim,n,k_max,levels",
    [(2, 127, 60.0, 2), (2, 127, 20.0, 4), (2, 255, 60.0, 3), (2, 31, 40.0, 2), (3, 47, 25.0, 3)],
)
def test_csl_levels_keep_k_h_at_most_one_and_a_quarter(dim, n, k_max, levels):
    """127 -> 63 -> 31: k h = 60/128, 60/64 (kept), 60/32 (not); a grid too coarse for any
    coarsening still gets two levels; 47^3 at k 25 would stop at 23^3 (k h = 1.04), too large
    to factorise, so it takes 11^3 as well."""
    problem = HelmholtzProblem(wavenumber=RangeSpec(k_max / 2, k_max), damping=0.05)
    assert Helmholtz(n, dim, problem).csl_levels() == levels


@pytest.mark.parametrize(
    "dim,n,solver,expected",
    [
        (2, 63, ("auto", "auto"), ("direct", "lu")),
        (3, 31, ("auto", "auto"), ("gcrodr", "mg")),
        (3, 16, ("auto", "auto"), ("direct", "lu")),  # 17 cells per axis do not coarsen
        (2, 63, ("gcrodr", "auto"), ("gcrodr", "mg")),
        (2, 63, ("gmres", "ilu"), ("gmres", "ilu")),
    ],
)
def test_auto_runs_the_measured_fastest_on_damped_systems(dim, n, solver, expected):
    problem = HelmholtzProblem(wavenumber=RangeSpec(9.0, 12.0), damping=0.05)
    assert Helmholtz(n, dim, problem).resolve_for(*solver) == expected
    lossless = Helmholtz(n, dim, HelmholtzProblem(wavenumber=RangeSpec(9.0, 12.0)))
    assert lossless.resolve_for(*solver) == Helmholtz.resolve_solver(*solver, dim, n)


def damped_recipe(**problem) -> dict:
    data = small_recipe_dict(
        family="helmholtz",
        samples=6,
        grid={"n": 31},
        solver={"method": "gcrodr", "pc": "mg", "rtol": 1e-9},
        output={"dir": "data", "shard_size": 3},
    )
    data["problem"] = {"wavenumber": {"min": 9.0, "max": 14.0}, **problem}
    return data


def test_damping_must_not_be_negative_nor_meet_minres():
    with pytest.raises(RecipeError, match=r"problem\.damping"):
        recipe_from_dict(damped_recipe(damping=-0.1))
    data = damped_recipe(damping=0.1)
    data["solver"] = {"method": "minres", "pc": "jacobi"}
    with pytest.raises(RecipeError, match=r"solver\.method: 'minres' needs a symmetric"):
        recipe_from_dict(data)
    data["problem"].pop("damping")
    recipe_from_dict(data)  # lossless: symmetric, MINRES applies


def test_damped_dataset_stores_the_imaginary_part_and_passes_the_deep_check(tmp_path):
    import yaml

    from pdegen.dataset.check import check_dataset
    from pdegen.dataset.loader import open_dataset

    for name, problem in (("lossless", {}), ("damped", {"damping": 0.1})):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(damped_recipe(**problem)))
        done = cli(["generate", f"{name}.yaml", "--out", name, "--engine", "serial"], tmp_path)
        assert done.returncode == 0, done.stderr
    lossless, damped = (open_dataset(tmp_path / name) for name in ("lossless", "damped"))
    assert lossless.output_fields == ("solution",)
    assert set(damped.output_fields) == {"solution", "solution_imag"}
    family = Helmholtz.from_recipe(recipe_from_dict(damped_recipe(damping=0.1)))
    stored = damped[2]  # by generation index, whatever order the chain solved in
    sample = family.sample(7, int(stored["index"]))
    expected = complex_solution(family, sample)
    assert np.linalg.norm(stored_complex(family, stored) - expected) <= 1e-7 * np.linalg.norm(
        expected
    )
    report = check_dataset(tmp_path / "damped", deep=6)
    assert report.ok, report.problems
    with h5py.File(tmp_path / "damped" / "shard-00000.h5", "r+") as f:
        f["outputs/solution_imag"][1] *= 1.01
    assert not check_dataset(tmp_path / "damped", deep=6).ok
