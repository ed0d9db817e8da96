"""Serial, Dask and MPI engines run the same plan: identical datasets, resume, failures."""

import copy
import json
import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
import yaml

from pdegen import open_dataset
from pdegen.errors import PdegenError
from pdegen.families import FAMILIES
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.engines import ENGINES
from pdegen.run.generate import generate
from tests.helpers import (
    MPIRUN,
    PYTHON,
    assert_same_dataset,
    cli,
    elasticity_engine_recipe,
    mpi,
    nonlinear_diffusion_recipe,
    reaction_diffusion_recipe,
    read_all,
    recipe_dict,
    small_recipe_dict,
    stokes_recipe,
)


def newton_recipe(recipe: dict) -> dict:
    """A Newton family's recipe with two batches of four samples."""
    return {**recipe, "samples": 8, "output": {"shard_size": 4}}


def trajectory_recipe(family: str, grid: dict, problem: dict, solver: dict | None = None) -> dict:
    """A time-dependent family's small recipe, 6 samples in 3 batches: by default its own
    solver (`auto`), else `solver`."""
    data = small_recipe_dict(
        family=family,
        samples=6,
        grid=grid,
        solver=solver or {"method": "auto", "pc": "auto"},
        output={"shard_size": 2},
    )
    data["problem"] = problem
    return data


def periodic_recipe(family: str, grid: dict, problem: dict) -> dict:
    """A periodic family's small recipe (spectral, in generation order), its viscosity drawn
    per sample where it has one."""
    drawn = (
        {"viscosity": {"min": 0.01, "max": 0.05}} if family in ("burgers", "navier-stokes") else {}
    )
    return trajectory_recipe(family, grid, {**drawn, **problem})


# Every engine case: the recipe, the Dask workers and MPI ranks, and names the dataset must
# hold. Every linear-system recipe recycles (GCRO-DR, RCG), so its chain is sorted and cut
# into batches; the periodic ones run in generation order.
ENGINE_CASES = [
    pytest.param(
        recipe_dict(), 1, ("inputs/coefficient", "outputs/solution"), id="darcy-gcrodr-1-worker"
    ),
    pytest.param(
        recipe_dict(), 2, ("inputs/coefficient", "outputs/solution"), id="darcy-gcrodr-2-workers"
    ),
    pytest.param(
        elasticity_engine_recipe(),
        2,
        ("outputs/displacement_y", "inputs/force_x"),
        id="elasticity-rcg-gamg",
    ),
    pytest.param(
        stokes_recipe(
            samples=6,
            output={"shard_size": 2},
            solver={"method": "gcrodr", "pc": "fieldsplit"},
        ),
        2,
        ("outputs/velocity_x", "outputs/pressure"),
        id="stokes-gcrodr-fieldsplit",
    ),
    pytest.param(
        small_recipe_dict(
            family="helmholtz",
            samples=6,
            grid={"n": 31},
            problem={"wavenumber": {"min": 20.0, "max": 26.0}, "damping": 0.05},
            solver={"method": "gcrodr", "pc": "mg", "rtol": 1e-9},
            output={"shard_size": 2},
        ),
        2,
        ("outputs/solution", "outputs/solution_imag"),
        id="helmholtz-damped-gcrodr-csl-mg",
    ),
    pytest.param(
        newton_recipe(reaction_diffusion_recipe()),
        2,
        ("stats/newton_iterations",),
        id="reaction-diffusion-gcrodr-ilu",
    ),
    pytest.param(
        periodic_recipe("burgers", {"n": 64, "dim": 1}, {"initial": {"law": "sines"}, "frames": 4}),
        2,
        ("outputs/solution", "stats/spectral_tail"),
        id="burgers-spectral",
    ),
    pytest.param(
        periodic_recipe(
            "navier-stokes",
            {"n": 32, "dim": 2},
            {"forcing": "random", "t_end": 1.0, "frames": 2, "stored_points": 16},
        ),
        2,
        ("outputs/vorticity", "inputs/forcing"),
        id="navier-stokes-spectral",
    ),
    *(
        pytest.param(
            periodic_recipe(name, grid, problem), 2, ("outputs/solution",), id=f"{name}-spectral"
        )
        for name, grid, problem in (
            (
                "kuramoto-sivashinsky",
                {"n": 32, "dim": 1, "length": 22.0},
                {"warmup": 2.0, "t_end": 2.0, "frames": 2},
            ),
            ("advection", {"n": 32, "dim": 1}, {"speed": {"min": 0.5, "max": 2.0}, "frames": 4}),
            (
                "fisher-kpp",
                {"n": 32, "dim": 1},
                {"rate": {"min": 1.0, "max": 10.0}, "t_end": 0.1, "frames": 4},
            ),
        )  # fmt: skip
    ),
    pytest.param(
        trajectory_recipe(
            "fitzhugh-nagumo",
            {"n": 16, "length": 2.0},
            {"t_end": 0.2, "frames": 4, "dt": 0.01},
            {"method": "gcrodr", "pc": "ilu"},
        ),
        2,
        ("outputs/u", "outputs/v", "inputs/initial_v"),
        id="fitzhugh-nagumo-gcrodr-across-steps",
    ),
    pytest.param(
        trajectory_recipe(
            "diffusion-sorption",
            {"n": 64, "dim": 1},
            {"t_end": 20.0, "frames": 4, "dt": 1.0},
            {"method": "gcrodr", "pc": "ilu"},
        ),
        2,
        ("outputs/solution", "stats/newton_iterations"),
        id="diffusion-sorption-gcrodr-newton",
    ),
    pytest.param(
        trajectory_recipe(
            "acoustic",
            {"n": 24, "length": 2.0},
            {
                "density": {"law": "maze", "value": 3.0, "maze_cells": 3},
                "initial": {"width": 0.15, "radius": {"min": 0.1, "max": 0.3}},
                "t_end": 0.2,
                "frames": 4,
                "dt": 0.02,
                "absorbing": 0.1,
            },
            {"method": "rcg", "pc": "jacobi"},
        ),
        2,
        ("outputs/pressure", "inputs/density"),
        id="acoustic-newmark-rcg-across-steps",
    ),
    pytest.param(
        trajectory_recipe(
            "cavity",
            {"n": 15},
            {"reynolds": {"min": 50.0, "max": 400.0}, "t_end": 0.2, "frames": 2, "dt": 0.05},
            {"method": "gcrodr", "pc": "ilu"},
        ),
        2,
        ("outputs/velocity_x", "outputs/pressure", "params/reynolds"),
        id="cavity-gcrodr-across-steps",
    ),
    pytest.param(
        trajectory_recipe(
            "cavity",
            {"n": 7, "dim": 3},
            {"t_end": 0.1, "frames": 2, "dt": 0.05},
            {"method": "gcrodr", "pc": "ilu"},
        ),
        2,
        ("outputs/velocity_z", "outputs/pressure"),
        id="cavity3d",
    ),
    pytest.param(
        trajectory_recipe(
            "channel",
            {"n": 16},
            {
                "length": 2.0,
                "reynolds": {"min": 50.0, "max": 200.0},
                "cylinders": {
                    "count": 3,
                    "radius": {"min": 0.125, "max": 0.2},
                    "centre_x": {"min": 0.4, "max": 0.8},
                },
                "t_end": 0.2,
                "frames": 2,
                "dt": 0.05,
                "scheme": "bdf2",
            },
            {"method": "gcrodr", "pc": "ilu"},
        ),
        2,
        ("outputs/velocity_y", "outputs/pressure", "inputs/obstacle", "params/reynolds"),
        id="channel-bdf2-gcrodr-across-steps",
    ),
    pytest.param(
        trajectory_recipe(
            "acoustic",
            {"n": 24, "length": 2.0},
            {
                "density": {"law": "layers", "log_contrast": {"min": -0.3, "max": 0.3}},
                "initial": {"width": 0.2},
                "scheme": "leapfrog",
                "t_end": 0.2,
                "frames": 4,
            },
            {"method": "rcg", "pc": "jacobi"},  # sorted like the Newmark case; nothing solved
        ),
        2,
        ("outputs/pressure", "inputs/density"),
        id="acoustic-leapfrog",
    ),
    pytest.param(
        newton_recipe(nonlinear_diffusion_recipe()),
        2,
        ("stats/newton_iterations",),
        id="nonlinear-diffusion-gcrodr-ilu",
    ),
]


def plan_cuts(path) -> tuple:
    plan = yaml.safe_load((path / "plan.json").read_text())
    return plan["order"], plan["batches"]


@pytest.mark.parametrize("data,workers,names", ENGINE_CASES)
def test_every_engine_writes_the_serial_dataset_bit_for_bit(tmp_path, data, workers, names):
    """Serial, then the local engine and Dask, then `mpirun` through the command line: the
    same plan, and every array of every shard the same bits (iteration counts included). The
    recycled space carries across samples (and Newton steps) within a batch; the engines cut
    the same batches. Without mpirun the local and Dask halves still run, then the test is
    skipped."""
    recipe = recipe_from_dict(copy.deepcopy(data))
    linear = FAMILIES[recipe.family].linear_systems  # else spectral: nothing carries
    assert recipe.solver.ordering == ("greedy" if linear else "none")
    generate(recipe, out=tmp_path / "s", progress=False, engine="serial")
    expected = read_all(tmp_path / "s")
    for name in names:
        assert any(key.endswith(name) for key in expected), (name, sorted(expected))
    for engine in ("local", "dask"):
        out = tmp_path / engine
        summary = generate(recipe, out=out, progress=False, engine=engine, workers=workers)
        assert summary.engine == engine and summary.workers == workers
        assert_same_dataset(expected, out)
        assert plan_cuts(out) == plan_cuts(tmp_path / "s")
    if MPIRUN is None:
        pytest.skip("mpirun is installed by make install")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    args = ["generate", "r.yaml", "--engine", "mpi", "--out", "m", "--quiet"]
    result = mpi(workers, args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("dataset: m") == 1  # only rank 0 reports
    assert f"on mpi with {workers} worker(s)" in result.stdout
    assert_same_dataset(expected, tmp_path / "m")
    assert plan_cuts(tmp_path / "m") == plan_cuts(tmp_path / "s")


@pytest.mark.skipif(MPIRUN is None, reason="mpirun is installed by make install")
def test_mpi_user_error_is_reported_once(tmp_path):
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe_dict(samples=-1)))
    result = mpi(2, ["generate", "r.yaml", "--engine", "mpi"], tmp_path)
    assert result.returncode != 0
    assert result.stderr.count("pdegen: error:") == 1 and "Traceback" not in result.stderr


def start_slow_run(tmp_path, *args, **popen):
    """Write a recipe slow enough (48 GMRES solves) to be interrupted, and start generating it."""
    data = small_recipe_dict(
        samples=48,
        grid={"n": 40},
        output={"shard_size": 4},
        solver={"method": "gmres", "pc": "none", "rtol": 1e-10},
    )
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    return subprocess.Popen(
        [PYTHON, "-m", "pdegen.cli", "generate", "r.yaml", "--quiet", *args], cwd=tmp_path, **popen
    )


def test_kill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    proc = start_slow_run(
        tmp_path,
        "--engine",
        "serial",
        "--out",
        "k",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "k").glob("shard-*.h5"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted((tmp_path / "k").glob("shard-*.h5"))
    assert 3 <= len(finished) < 12, "the run must be killed part-way"
    assert not (tmp_path / "k" / "index.json").exists()
    with pytest.raises(PdegenError, match="no index.json"):
        open_dataset(tmp_path / "k")  # an interrupted dataset is never read as complete
    for shard in finished:  # whatever carries a final name is complete
        with h5py.File(shard, "r") as f:
            assert f["outputs/solution"].shape[0] == 4
    resumed = cli(["generate", "r.yaml", "--engine", "serial", "--out", "k", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed: {4 * len(finished)} samples were already complete" in resumed.stdout
    assert not list((tmp_path / "k").glob(".*tmp*"))  # the killed writer's temporary is gone
    whole = cli(["generate", "r.yaml", "--engine", "serial", "--out", "w", "--quiet"], tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert_same_dataset(read_all(tmp_path / "w"), tmp_path / "k")
    assert len(open_dataset(tmp_path / "k")) == 48


@pytest.mark.parametrize("engine", list(ENGINES))
def test_a_failing_batch_is_retried_then_reported_by_batch_and_sample(tmp_path, engine):
    if engine == "mpi" and MPIRUN is None:
        pytest.skip("mpirun is installed by make install")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe_dict()))
    blocker = tmp_path / "f" / "shard-00001.h5"
    blocker.mkdir(parents=True)  # a directory in the way: every write of batch 1 fails
    args = ["generate", "r.yaml", "--engine", engine, "--out", "f", "--quiet", "--retries", "1"]
    result = mpi(2, args, tmp_path) if engine == "mpi" else cli(args, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    plan = yaml.safe_load((tmp_path / "f" / "plan.json").read_text())
    samples = ", ".join(map(str, plan["batches"][1]))
    assert f"batch 1 (samples {samples}) failed after 2 attempts" in lines[0], lines[0]
    assert "1 of 4 batches failed" in lines[0]
    assert not (tmp_path / "f" / "index.json").exists()
    assert len(list((tmp_path / "f").glob("shard-*.h5"))) == 4  # three shards + the blocker
    blocker.rmdir()
    again = cli(["generate", "r.yaml", "--engine", "serial", "--out", "f", "--quiet"], tmp_path)
    assert again.returncode == 0 and "resumed: 9 samples" in again.stdout, again.stderr


def test_same_parameters_whatever_the_shard_size(tmp_path):
    """Batches change the chain's cuts, never the samples: inputs are per-sample seeded."""
    a = recipe_from_dict(recipe_dict())
    b = recipe_from_dict(recipe_dict(output={"shard_size": 5}))
    generate(a, out=tmp_path / "a", progress=False)
    generate(b, out=tmp_path / "b", progress=False)
    with open_dataset(tmp_path / "a") as da, open_dataset(tmp_path / "b") as db:
        for i in range(len(da)):
            np.testing.assert_array_equal(da[i]["coefficient"], db[i]["coefficient"])
            np.testing.assert_allclose(da[i]["solution"], db[i]["solution"], rtol=1e-6)


def test_batches_solve_with_one_blas_thread_whatever_the_process_has(tmp_path, monkeypatch):
    """A Dask worker starts with one BLAS thread; the serial engine's process (here, set to
    two) and MPI ranks do not. Every batch runs with one, so a dataset's bits do not depend
    on the engine, and the process gets its own setting back afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import pdegen.run.batch

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    seen = []
    solve = pdegen.run.batch._solve_rows

    def spy(*args):
        seen.append(blas_threads())
        return solve(*args)

    monkeypatch.setattr(pdegen.run.batch, "_solve_rows", spy)
    with threadpool_limits(2, user_api="blas"):
        generate(recipe_from_dict(recipe_dict()), out=tmp_path / "s", progress=False)
        after = blas_threads()
    assert len(seen) == 4 and all(threads and set(threads) == {1} for threads in seen), seen
    assert set(after) == {2}, after


def test_bad_engine_options_are_one_line_errors(tmp_path):
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe_dict()))
    bad = cli(["generate", "r.yaml", "--workers", "0"], tmp_path)
    assert bad.returncode == 2 and "--workers: 0 is out of range" in bad.stderr
    bad = cli(["generate", "r.yaml", "--shard-size", "0"], tmp_path)
    assert bad.returncode == 2 and "output.shard_size: 0 is out of range" in bad.stderr
    for engine in ("local", "serial"):
        bad = cli(["generate", "r.yaml", "--engine", engine, "--scheduler", "tcp://x:1"], tmp_path)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
        assert f"only with the dask engine (not {engine})" in bad.stderr
    assert sorted(os.listdir(tmp_path)) == ["r.yaml"]


def test_an_unset_shard_size_is_chosen_from_the_samples_size_and_count(tmp_path):
    """`output.shard_size` left out: the fewest shards that keep each within 128 MiB of stored
    fields, the samples shared out evenly; `solver.batch_size` left out too: few enough for
    at least 16 batches, at most a shard. The stored recipe holds the numbers, so a rerun of
    the same file resumes. Sizes worked out by hand: a 128^2 node Darcy sample stores 2 x
    128^2 float64 values (256 KiB), a 128^3 one 32 MiB, float32 half of each."""
    cases = [  # (grid.n, dim, samples, dtype, shard size, batch size)
        (126, 2, 1000, "float64", 500, 62),  # 512 fit: 2 shards of 500; 1000 // 16 a batch
        (126, 2, 100000, "float64", 511, 511),  # 196 shards (512 fit); batches as large
        (126, 2, 100000, "float32", 1021, 1021),  # 98 shards (1024 fit)
        (126, 3, 100, "float64", 4, 4),  # 128 MiB / 32 MiB
        (126, 3, 4, "float64", 4, 1),  # one shard, 4 batches of one
        (14, 2, 10, "float64", 10, 1),  # fewer samples than 16: one per batch
    ]
    for n, dim, samples, dtype, shard, batch in cases:
        data = recipe_dict(samples=samples, grid={"n": n, "dim": dim})
        data["output"] = {"dtype": dtype}
        data["solver"] = {"method": "cg", "pc": "mg" if dim == 3 else "icc"}
        recipe = recipe_from_dict(data)
        got = (recipe.output.shard_size, recipe.solver.batch_size)
        assert got == (shard, batch), (n, dim, samples, dtype)
        assert recipe_from_dict(recipe.to_dict()) == recipe  # the resolved recipe is stable
    data = recipe_dict(samples=40)
    del data["output"]
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    done = cli(["generate", "r.yaml", "--out", "d", "--quiet", "--workers", "2"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "d").glob("shard-*.h5"))) == 1  # 40 tiny samples: one file
    plan = json.loads((tmp_path / "d" / "plan.json").read_text())
    assert len(plan["batches"]) == 20 and plan["shards"] == [list(range(20))]  # 40 // 16 = 2
    again = cli(["generate", "r.yaml", "--out", "d", "--quiet"], tmp_path)
    assert again.returncode == 0 and "resumed: 40 samples" in again.stdout, again.stderr


def test_fewer_batches_than_workers_and_another_shard_size_are_each_said_in_one_line(tmp_path):
    """A run whose batches cannot keep its workers busy says so; a directory made from the
    same recipe cut in other batches (a recipe without shard_size, whose chosen size changed)
    is refused with the --shard-size that resumes it."""
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe_dict(samples=3)))
    done = cli(["generate", "r.yaml", "--out", "d", "--workers", "2", "--quiet"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "note: 1 batch for 2 workers: 1 had nothing to do; a smaller solver.batch_size" in (
        done.stdout
    )
    other = cli(["generate", "r.yaml", "--out", "d", "--shard-size", "2", "--quiet"], tmp_path)
    assert other.returncode == 2 and other.stderr.count("\n") == 1, other.stderr
    assert "it was cut in shards of 3 samples: rerun with --shard-size 3" in other.stderr
    batches = cli(["generate", "r.yaml", "--out", "d", "--batch-size", "1", "--quiet"], tmp_path)
    assert "cut in batches of 3 samples: rerun with --batch-size 3" in batches.stderr
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(recipe_dict(samples=3, seed=8)))
    unrelated = cli(["generate", "s.yaml", "--out", "d", "--quiet"], tmp_path)
    assert "choose another --out, or delete it" in unrelated.stderr, unrelated.stderr
