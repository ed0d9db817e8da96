"""One sample across several ranks (`solver.ranks_per_sample`, issue 26 point 2).

Oracles: the whole matrix's own rows (`diffusion_operator`) for each rank's slab; the
sequential interpolation for the slab hierarchy's; scipy's direct solve and the serial
engine's dataset for the solutions (to the solve tolerance, since the parallel smoothers
sweep each rank's rows); and the serial engine's inputs, bit for bit. Real `mpirun`, with
k = 2 on 2 ranks and, oversubscribed, k = 2 and k = 4 on 4.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import yaml

from pdegen.discretisation.operators import diffusion_operator, diffusion_rows
from pdegen.errors import RecipeError
from pdegen.families import Darcy
from pdegen.families.darcy import DarcyProblem
from pdegen.recipe.resources import (
    check_memory,
    estimate,
    machine_memory,
    rank_need,
    smallest_ranks,
)
from pdegen.recipe.schema import recipe_from_dict
from pdegen.specs import CoefficientSpec
from solvers.distributed import SlabLayout, local_interpolation, plane_ranges
from solvers.grids import coarsen
from solvers.multigrid import hierarchy_positions, positions_interpolation
from tests.helpers import DELETE, MPIRUN, PYTHON, cli, mpi, read_all, small_recipe_dict

needs_mpirun = pytest.mark.skipif(MPIRUN is None, reason="mpirun is installed by make install")


# --- the slab pieces, on one process ------------------------------------------------------
@pytest.mark.parametrize("planes,ranks", [(7, 2), (8, 4), (5, 5), (3, 4), (126, 3)])
def test_plane_ranges_cover_the_planes_in_order(planes, ranks):
    ranges = plane_ranges(planes, ranks)
    assert len(ranges) == ranks and ranges[0][0] == 0 and ranges[-1][1] == planes
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    sizes = [last - first for first, last in ranges]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("dim,n", [(2, 9), (3, 7), (2, 1), (3, 2)])
def test_a_slabs_rows_are_the_whole_matrix_rows(dim, n):
    rng = np.random.default_rng(dim * 10 + n)
    a = rng.random((n + 2,) * dim) + 0.5
    h = 1.0 / (n + 1)
    whole, _ = diffusion_operator(a, h)
    per_plane = n ** (dim - 1)
    for first, last in plane_ranges(n, 3) + [(0, n)]:
        rows = diffusion_rows(a[first : last + 2], h, first, n)
        expected = whole[first * per_plane : last * per_plane]
        assert rows.shape == expected.shape
        if expected.nnz:
            np.testing.assert_array_equal(rows.indptr, expected.indptr)
            np.testing.assert_array_equal(rows.indices, expected.indices)
            np.testing.assert_allclose(rows.data, expected.data, rtol=1e-14)


@pytest.mark.parametrize("shape", [(24, 24, 24), (126, 126), (23, 23, 23)])
def test_the_slab_interpolations_stack_to_the_sequential_one(shape):
    """Rank by rank, the rows of each level's interpolation (dealt in slabs of that level's
    planes) stacked in rank order are the sequential interpolation (the uneven halving of
    24^3 and 126^2 included)."""
    shapes = coarsen(shape).shapes
    positions = hierarchy_positions(shapes)
    for level in range(len(shapes) - 1):
        whole = positions_interpolation(positions[level], positions[level + 1])
        indptr, indices, values = whole.getValuesCSR()
        expected = sp.csr_matrix((values, indices, indptr), shape=whole.getSize()).toarray()
        parts = [
            local_interpolation(positions[level], positions[level + 1], rows).toarray()
            for rows in SlabLayout(shapes[level], 3).planes
        ]
        np.testing.assert_array_equal(np.vstack(parts), expected)


# --- solves across ranks ------------------------------------------------------------------
@needs_mpirun
def test_one_system_across_two_ranks_matches_a_direct_solve(tmp_path):
    out = tmp_path / "report.json"
    script = Path(__file__).with_name("mpi_slab_solve.py")
    done = subprocess.run(
        [MPIRUN, "-n", "2", PYTHON, str(script), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    for case in report:
        dim, n, method, pc = case["case"]
        family = Darcy(n, dim, DarcyProblem(CoefficientSpec(kind="threshold")))
        for index, run in enumerate(case["runs"]):
            A, b = family.system(family.sample(5, index))
            x = np.array(run["x"])
            assert run["converged"], case["case"]
            assert np.linalg.norm(b - A @ x) <= 1.0000001e-8 * np.linalg.norm(b), case["case"]
            if A.shape[0] <= 20000:
                exact = spla.spsolve(A.tocsc(), b)
                assert np.abs(x - exact).max() <= 1e-6 * np.abs(exact).max(), case["case"]
        if (dim, n) == (2, 40):  # 41 cells coarsen too little: gamg, said in the note
            assert case["pc"] == "gamg" and "coarsens too little" in case["note"]
        elif pc == "ilu":
            assert "block Jacobi with one ILU(0) block per rank" in case["note"]
        else:
            assert case["pc"] == "mg" and "each rank's rows" in case["note"]
        if pc == "mg" and n != 40:  # the slab V-cycle keeps multigrid's iteration counts
            assert max(run["iterations"] for run in case["runs"]) <= 12, case


def darcy3d(**changes) -> dict:
    base = {
        "grid": {"n": 23, "dim": 3},
        "samples": 6,
        "output": {"shard_size": 3},
        "solver": {"method": "cg", "pc": "mg", "rtol": 1e-8},
    }
    return small_recipe_dict(**{**base, **changes})


@needs_mpirun
@pytest.mark.parametrize(
    "data",
    [
        darcy3d(),
        small_recipe_dict(
            name="poisson-ranks",
            family="poisson",
            problem=DELETE,
            grid={"n": 126, "dim": 2},
            samples=4,
            output={"shard_size": 2},
            solver={"method": "cg", "pc": "mg", "rtol": 1e-8},
        ),
    ],
    ids=["darcy-3d", "poisson-2d"],
)
def test_a_dataset_across_ranks_matches_the_serial_one(tmp_path, data):
    """k = 2 on 2 ranks and on 4 (two groups, oversubscribed), k = 4 on 4: the inputs and
    parameters are the serial engine's bits (drawn on a group's first rank from the
    per-sample seed), the solutions agree with it to the tolerance, and for one k the
    dataset is the same bits whatever the number of groups and from run to run."""
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    serial = cli(["generate", "r.yaml", "--engine", "serial", "--out", "s", "--quiet"], tmp_path)
    assert serial.returncode == 0, serial.stderr
    expected = read_all(tmp_path / "s")
    runs = {}
    for name, ranks, k in (("a", 2, 2), ("b", 4, 2), ("c", 2, 2), ("d", 4, 4)):
        args = ["generate", "r.yaml", "--engine", "mpi", "--out", name, "--quiet"]
        result = mpi(ranks, [*args, "--ranks-per-sample", str(k)], tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count(f"each sample solved by {k} ranks together") == 1
        runs[name] = read_all(tmp_path / name)
    for name, got in runs.items():
        assert sorted(got) == sorted(expected)
        for key, value in expected.items():
            if "/outputs/" in f"/{key}" and "solution" in key:
                scale = np.abs(value).max()
                assert np.abs(got[key] - value).max() <= 1e-6 * scale, (name, key)
            elif "/stats/" not in f"/{key}" and "iterations" not in key:
                np.testing.assert_array_equal(got[key], value, err_msg=f"{name} {key}")
    card = (tmp_path / "a" / "README.md").read_text()
    assert "each sample solved by 2 MPI ranks together" in card
    for key, value in runs["a"].items():  # k = 2: one layout, one set of bits
        np.testing.assert_array_equal(runs["b"][key], value, err_msg=key)
        np.testing.assert_array_equal(runs["c"][key], value, err_msg=key)
    check = cli(["check", "d", "--deep", "3"], tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def one_error(result) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("pdegen: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "changes,words",
    [
        ({"family": "heat", "problem": DELETE}, "heat solves each sample on one rank"),
        ({"solver": {"method": "direct", "pc": "cholesky"}}, "solver.method: method 'direct'"),
        ({"solver": {"method": "gcrotmk", "pc": "jacobi"}}, "one process's arrays"),
        ({"solver": {"method": "cg", "pc": "cholesky"}}, "solver.pc: pc 'cholesky'"),
        ({"grid": {"n": 3, "dim": 3}}, "more ranks than the grid's 3 interior planes"),
    ],
    ids=["family", "direct", "gcrotmk", "factorisation-pc", "too-many-ranks"],
)
def test_what_cannot_run_across_ranks_is_refused_in_one_line(tmp_path, changes, words):
    data = darcy3d(**changes)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    args = ["generate", "r.yaml", "--engine", "mpi", "--out", "o", "--ranks-per-sample", "4"]
    line = one_error(cli(args, tmp_path))
    assert words in line and "ranks" in line, line
    assert not (tmp_path / "o").exists()


def test_ranks_per_sample_needs_the_mpi_engine(tmp_path):
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(darcy3d()))
    args = ["generate", "r.yaml", "--engine", "local", "--out", "o", "--ranks-per-sample", "2"]
    line = one_error(cli(args, tmp_path))
    assert "mpi engine" in line and "not local" in line
    assert not (tmp_path / "o").exists()


@needs_mpirun
def test_ranks_per_sample_must_divide_the_ranks(tmp_path):
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(darcy3d()))
    args = ["generate", "r.yaml", "--engine", "mpi", "--out", "o", "--ranks-per-sample", "2"]
    result = mpi(3, args, tmp_path)
    line = one_error(result)
    assert "2 does not divide the job's 3 ranks" in line
    assert not (tmp_path / "o").exists()


@needs_mpirun
def test_a_failure_in_a_group_ends_the_job_in_one_line_and_a_rerun_resumes(tmp_path):
    """A batch that fails on one rank of a group (its shard cannot be written, on the
    group's first rank only) cannot be retried without the other rank, which may wait in a
    collective: the job ends at once, in one line, instead of hanging; the finished shard
    is kept and a rerun solves only what is missing, to the same bits as a clean run."""
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(darcy3d()))
    args = ["generate", "r.yaml", "--engine", "mpi", "--quiet", "--ranks-per-sample", "2"]
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "shard-00001.h5").mkdir()  # batch 1 can never be written
    result = mpi(2, [*args, "--out", "o"], tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("pdegen: error:")]
    assert len(lines) == 1 and "batch 1 failed on a group of 2 ranks" in lines[0], lines
    assert (tmp_path / "o" / "shard-00000.h5").is_file()
    (tmp_path / "o" / "shard-00001.h5").rmdir()
    rerun = mpi(2, [*args, "--out", "o"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    clean = mpi(2, [*args, "--out", "clean"], tmp_path)
    assert clean.returncode == 0, clean.stderr
    expected = read_all(tmp_path / "clean")
    got = read_all(tmp_path / "o")
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_a_recipe_at_one_rank_keeps_its_hash():
    """`ranks_per_sample: 1` is left out of the stored recipe, so datasets written before the
    field existed still resume; any other value is kept (it changes the bits)."""
    one = recipe_from_dict(darcy3d())
    two = recipe_from_dict(darcy3d(solver={"method": "cg", "pc": "mg", "ranks_per_sample": 2}))
    assert "ranks_per_sample" not in one.to_json()
    assert json.loads(two.to_json())["solver"]["ranks_per_sample"] == 2


# --- memory -------------------------------------------------------------------------------
def test_the_estimate_per_rank_shares_the_solver_and_not_the_sample():
    base = darcy3d(grid={"n": 126, "dim": 3}, samples=2)
    totals, whole = [], []
    for k in (1, 2, 4):
        solver = {"method": "cg", "pc": "mg", "ranks_per_sample": k}
        est = estimate(recipe_from_dict({**base, "solver": solver}))
        totals.append(est.total)
        whole.append(sum(p.bytes for p in est.batch if not p.divided))
        divided = sum(p.bytes for p in est.batch if p.divided)
        assert divided > 0
    assert totals[0] > totals[1] > totals[2]
    assert whole[0] == whole[1] == whole[2]  # the first rank holds the whole sample's fields


def test_a_sample_too_large_for_one_process_is_refused_with_the_ranks_that_fit():
    recipe = recipe_from_dict(darcy3d(grid={"n": 126, "dim": 3}, samples=2))
    available = int(estimate(recipe).total * 0.7)
    fewest = smallest_ranks(recipe, available)
    assert fewest is not None and fewest >= 2

    def at(k):
        return recipe.replace(solver=dataclasses.replace(recipe.solver, ranks_per_sample=k))

    assert estimate(at(fewest)).total <= available < estimate(at(fewest - 1)).total
    with pytest.raises(RecipeError, match=f"fits from solver.ranks_per_sample: {fewest},"):
        check_memory(recipe, available)


def node_need(data: dict, world: int, k: int) -> float:
    """What `check_rank_share` sums for one node holding all `world` ranks."""
    recipe = recipe_from_dict(data)
    recipe = recipe.replace(solver=dataclasses.replace(recipe.solver, ranks_per_sample=k))
    return sum(rank_need(recipe, r % k == 0, r == 0) for r in range(world))


@needs_mpirun
def test_ranks_that_together_overfill_their_node_are_told_the_ranks_per_sample_that_fits(
    tmp_path,
):
    """Four ranks on this node with two per sample: a 3D Darcy sample that one process could
    hold, but whose two groups' ranks together need more than the node has, is refused under
    mpirun before anything is written, naming the ranks per sample (a divisor of 4) that fit."""
    memory = machine_memory()
    if memory is None:
        pytest.skip("this machine's memory cannot be read")

    def recipe_at(n: int) -> dict:
        return darcy3d(grid={"n": n, "dim": 3}, samples=2, solver={"method": "cg", "pc": "mg"})

    n = next(n for n in range(40, 3000, 4) if node_need(recipe_at(n), 4, 2) > memory)
    if node_need(recipe_at(n), 4, 4) > memory:
        pytest.skip("no grid here fits four ranks per sample but not two")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe_at(n)))
    args = ["generate", "r.yaml", "--engine", "mpi", "--out", "o", "--ranks-per-sample", "2"]
    line = one_error(mpi(4, args, tmp_path))
    assert "the 4 ranks on a node need about" in line, line
    assert "--ranks-per-sample 4 fits (a divisor of the job's 4 ranks)" in line, line
    assert not (tmp_path / "o").exists()
