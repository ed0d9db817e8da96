"""Faults and data safety: no rank ever hangs, no dataset is overwritten or interleaved, shards
of unknown versions are refused, multi-threaded Dask workers are refused, progress counts
every rank, and a failure report keeps the traceback."""

import json
import os
import subprocess
import time
from pathlib import Path

import h5py
import pytest
import yaml

from pdegen import open_dataset
from pdegen.errors import PdegenError
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.engines.dask_engine import MultiThreadedWorkerError, run_batch_on_worker
from pdegen.run.generate import FAILURES_NAME, generate
from pdegen.run.lock import LOCK_NAME, DatasetLock
from tests.helpers import MPIRUN, PYTHON, cli, recipe_dict, small_recipe_dict

needs_mpirun = pytest.mark.skipif(MPIRUN is None, reason="mpirun is installed by make install")


def mpi_run(args, cwd, ranks=2, timeout=120):
    """mpirun with a deadline: a hang is a failure (TimeoutExpired), not a stuck suite."""
    return subprocess.run(
        [MPIRUN, "-n", str(ranks), PYTHON, "-m", "pdegen.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("pdegen: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def listing(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under `path` with its size and modification time (what "untouched" means)."""
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
    }


@pytest.fixture
def small(tmp_path):
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe_dict()))
    return tmp_path


# 1. MPI never hangs -------------------------------------------------------------------------


@needs_mpirun
def test_mpi_corrupt_plan_ends_every_rank_with_one_line(small):
    out = small / "m"
    out.mkdir()
    (out / "plan.json").write_text('{"recipe_sha256": "abc", "order": [0, 1')  # cut short
    result = mpi_run(["generate", "r.yaml", "--engine", "mpi", "--out", "m", "--quiet"], small)
    line = one_error_line(result)
    assert "plan.json: damaged or not a pdegen plan" in line


@needs_mpirun
def test_mpi_unusable_output_directory_ends_every_rank_with_one_line(small):
    (small / "file").write_text("not a directory")
    args = ["generate", "r.yaml", "--engine", "mpi", "--quiet", "--out", "file/m"]
    line = one_error_line(mpi_run(args, small))
    assert "file/m: cannot create the output directory" in line
    (small / "m").mkdir()
    (small / "m" / "plan.json").mkdir()  # unreadable as a file, even for root
    args[-1] = "m"
    line = one_error_line(mpi_run(args, small))
    assert "plan.json: cannot read the plan" in line


@needs_mpirun
def test_mpi_failing_batch_ends_every_rank_with_one_line(small):
    (small / "f").mkdir()
    (small / "f" / "shard-00002.h5").mkdir()  # batch 2 (rank 0's second) can never be written
    args = ["generate", "r.yaml", "--engine", "mpi", "--out", "f", "--quiet", "--retries", "0"]
    line = one_error_line(mpi_run(args, small))
    assert "1 of 4 batches failed (batch 2" in line


# 2. No overwrite of an unfinished dataset, one writer at a time ------------------------------


def test_an_unfinished_dataset_of_another_recipe_is_never_touched(tmp_path):
    first = recipe_from_dict(recipe_dict())
    other = recipe_from_dict(recipe_dict(seed=8))
    out = tmp_path / "d"
    generate(first, out=out, progress=False, engine="serial")
    (out / "index.json").unlink()  # as an interrupted run leaves it: plan and shards
    before = listing(out)
    with pytest.raises(PdegenError, match=r"unfinished dataset \(plan.json\) of a different"):
        generate(other, out=out, progress=False, engine="serial")
    assert listing(out) == before
    (out / "plan.json").unlink()  # shards alone still name their recipe
    before = listing(out)
    with pytest.raises(PdegenError, match="shard-00000.h5 belongs to a different recipe"):
        generate(other, out=out, progress=False, engine="serial")
    assert listing(out) == before


def test_a_second_run_into_the_same_directory_is_refused_while_the_first_runs(tmp_path):
    slow = small_recipe_dict(  # minutes of unpreconditioned GMRES: still running when we look
        samples=400,
        grid={"n": 80},
        output={"shard_size": 4},
        solver={"method": "gmres", "pc": "none", "rtol": 1e-12},
    )
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(slow))
    args = ["generate", "r.yaml", "--engine", "serial", "--out", "k", "--quiet"]
    first = subprocess.Popen([PYTHON, "-m", "pdegen.cli", *args], cwd=tmp_path)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (tmp_path / "k" / "plan.json").exists():
            time.sleep(0.05)
        before = listing(tmp_path / "k")
        second = cli(args, tmp_path)
        assert first.poll() is None, "the first run must still be going"
        line = one_error_line(second)
        assert "another `pdegen generate` is writing this dataset" in line
        assert f"pid {first.pid} on host" in line
        after = listing(tmp_path / "k")  # the second run wrote nothing (the first may have:
        # its finished shards are new names, and its shard in progress grows row by row)
        own = f"-{first.pid}"
        assert all(
            after[name] == stat
            for name, stat in before.items()
            if name in after and not name.endswith(own)
        )
    finally:
        first.kill()
        first.wait()
    resumed = cli([*args, "--samples", "8"], tmp_path)  # the killed holder's lock is stale
    assert "different recipe" in resumed.stderr  # (8 samples is another recipe: refused)
    assert (tmp_path / "k" / "plan.json").exists()


def test_a_stale_lock_is_taken_over(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "d"
    out.mkdir()
    stale = {"host": os.uname().nodename, "pid": dead.pid, "started": time.time() - 60}
    (out / LOCK_NAME).write_text(json.dumps(stale))  # its writer was killed: no flock held
    generate(recipe_from_dict(recipe_dict()), out=out, progress=False, engine="serial")
    assert not (out / LOCK_NAME).exists()
    assert len(open_dataset(out)) == 12


def test_a_held_lock_names_its_holder(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    with DatasetLock(out), pytest.raises(PdegenError, match=f"pid {os.getpid()} on host"):
        generate(recipe_from_dict(recipe_dict()), out=out, progress=False, engine="serial")
    assert sorted(p.name for p in out.iterdir()) == []  # nothing planned, lock released


# 3. Versions are checked ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("v") / "d"
    generate(recipe_from_dict(recipe_dict()), out=out, progress=False, engine="serial")
    return out


def copy_of(dataset: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(dataset, tmp_path / "copy"))


def test_a_shard_of_an_unknown_format_version_is_refused(dataset, tmp_path):
    path = copy_of(dataset, tmp_path)
    with h5py.File(path / "shard-00001.h5", "r+") as f:
        f.attrs["format_version"] = 2
    with pytest.raises(PdegenError, match=r"shard-00001.h5: format_version 2 is not one"):
        open_dataset(path)
    line = one_error_line(cli(["inspect", str(path)], tmp_path))
    assert "format_version 2 is not one this pdegen reads (reads 1)" in line


def test_an_index_of_an_unknown_format_version_is_refused(dataset, tmp_path):
    path = copy_of(dataset, tmp_path)
    index = json.loads((path / "index.json").read_text())
    index["format_version"] = 7
    (path / "index.json").write_text(json.dumps(index))
    line = one_error_line(cli(["inspect", str(path)], tmp_path))
    assert "index.json: format_version 7 is not one" in line


# 4. External Dask workers --------------------------------------------------------------------


def test_multi_threaded_dask_workers_are_refused(tmp_path):
    from dask.distributed import Client, LocalCluster

    recipe = recipe_from_dict(recipe_dict())
    with LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster:
        with pytest.raises(PdegenError, match=r"--scheduler: worker .* has 2 threads"):
            generate(
                recipe,
                out=tmp_path / "d",
                progress=False,
                engine="dask",
                scheduler=cluster.scheduler_address,
            )
        # a worker that joins after we looked is caught by the task itself
        with Client(cluster) as client, pytest.raises(MultiThreadedWorkerError, match="2 threads"):
            client.submit(run_batch_on_worker, None, 0).result()
    assert not (tmp_path / "d").exists()  # refused before anything was written


def test_single_threaded_external_dask_workers_are_used(tmp_path):
    from dask.distributed import LocalCluster

    recipe = recipe_from_dict(recipe_dict())
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        summary = generate(
            recipe,
            out=tmp_path / "d",
            progress=False,
            engine="dask",
            scheduler=cluster.scheduler_address,
        )
    assert summary.samples == 12 and summary.unconverged == 0


# 5. Progress under MPI -----------------------------------------------------------------------


@needs_mpirun
def test_mpi_progress_counts_every_ranks_batches(small):
    result = mpi_run(["generate", "r.yaml", "--engine", "mpi", "--out", "p"], small)
    assert result.returncode == 0, result.stderr
    assert "tiny: 12/12 samples" in result.stderr, result.stderr


# 6. Failure reports keep the traceback -------------------------------------------------------


@pytest.mark.parametrize("engine", ["serial", "dask", "mpi"])
def test_the_failure_report_keeps_the_last_traceback(small, engine):
    if engine == "mpi" and MPIRUN is None:
        pytest.skip("mpirun is installed by make install")
    blocker = small / "f" / "shard-00001.h5"
    blocker.mkdir(parents=True)
    args = ["generate", "r.yaml", "--engine", engine, "--out", "f", "--quiet", "--retries", "1"]
    result = mpi_run(args, small) if engine == "mpi" else cli(args, small)
    line = one_error_line(result)
    report = small / "f" / FAILURES_NAME
    assert f"tracebacks in {report.relative_to(small)}" in line or str(report) in line
    text = report.read_text()
    assert "== batch 1 (shard-00001.h5)" in text and "2 attempts" in text
    assert "Traceback (most recent call last)" in text
    assert "IsADirectoryError" in text and "atomic_path" in text  # the frame that failed
    blocker.rmdir()
    again = cli(["generate", "r.yaml", "--engine", "serial", "--out", "f", "--quiet"], small)
    assert again.returncode == 0, again.stderr
    assert not report.exists()  # a finished dataset carries no stale failure report
