"""Losing a worker leaves no trace: whichever process dies mid-run, a run that finishes passes
its own `pdegen check`, equals the uninterrupted dataset bit for bit and says what it
survived; a run that cannot go on says why in one line, exits non-zero, and a rerun finishes.

Every fault is injected on observable progress, never after a sleep: a worker is killed once
its shard's temporary exists (so it dies mid-batch, with its file half-written), the
scheduler or an MPI run once the first shard is finished. The Dask clusters of these tests
are real processes (`dask scheduler`, `dask worker` with their nannies) on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import MPIRUN, PYTHON, assert_same_dataset, cli, read_all, small_recipe_dict

psutil = pytest.importorskip("psutil")  # installed with dask.distributed
DASK = str(Path(PYTHON).with_name("dask"))
SLOW = small_recipe_dict(  # 48 unpreconditioned GMRES solves in 12 batches: a few seconds
    samples=48,
    grid={"n": 40},
    output={"shard_size": 4},
    solver={"method": "gmres", "pc": "none", "rtol": 1e-10},
)


def wait_for(predicate, what: str, timeout: float = 120.0, running=None):
    """Poll `predicate` until it returns something true; fail naming `what` at `timeout`, or
    at once if the process `running` has ended (with what it printed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if running is not None and running.poll() is not None:
            out, err = running.communicate()
            raise AssertionError(f"the run ended before {what}: {out}{err}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def temporaries(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.tmp-*")) if directory.is_dir() else []


def shard_temporaries(directory: Path) -> list[Path]:
    """Shards being written (not the root's plan or index, which are written atomically too)."""
    return sorted(directory.glob(".shard-*.h5.tmp-*")) if directory.is_dir() else []


def writer_pid(directory: Path, running) -> int:
    """The pid of a process writing a shard now (its temporary's name ends in it)."""
    tmp = wait_for(lambda: shard_temporaries(directory), "a shard being written", running=running)
    return int(tmp[0].name.rpartition("-")[2])


def first_shard(directory: Path, running) -> Path:
    shards = wait_for(
        lambda: sorted(directory.glob("shard-*.h5")), "a finished shard", running=running
    )
    return shards[0]


def start_generate(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "pdegen.cli", "generate", "r.yaml", "--no-figures", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def assert_finished_and_whole(directory: Path, reference: Path) -> None:
    """No writer's temporary left, `pdegen check` passes, the same bits as `reference`."""
    assert not temporaries(directory), temporaries(directory)
    checked = cli(["check", str(directory)], directory.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert_same_dataset(read_all(reference), directory)


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """The recipe, and its dataset generated without any fault (serial engine)."""
    root = tmp_path_factory.mktemp("faults")
    (root / "r.yaml").write_text(yaml.safe_dump(SLOW))
    done = cli(["generate", "r.yaml", "--engine", "serial", "--out", "serial", "--quiet"], root)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def workdir(slow, tmp_path):
    (tmp_path / "r.yaml").write_text((slow / "r.yaml").read_text())
    return tmp_path


class DaskCluster:
    """`dask scheduler` and `dask worker --nthreads 1` processes (each worker under its
    nanny) on this machine, stopped at exit."""

    def __init__(self, directory: Path, workers: int = 2, *worker_args: str):
        self.directory, self.worker_args = directory, worker_args
        self.file = directory / f"scheduler-{time.monotonic_ns()}.json"
        self.scheduler = self._start(
            "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(self.file),
        )  # fmt: skip
        wait_for(self.file.exists, "the scheduler's address")
        self.address = json.loads(self.file.read_text())["address"]
        self.nannies = [self.add_worker() for _ in range(workers)]
        wait_for(lambda: self.worker_count() >= workers, f"{workers} workers", timeout=120)

    def _start(self, *args: str) -> subprocess.Popen:
        log = open(self.directory / f"dask-{args[0]}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        return subprocess.Popen([DASK, *args], stdout=log, stderr=log, start_new_session=True)

    def add_worker(self) -> subprocess.Popen:
        return self._start(
            "worker", "--nthreads", "1", "--no-dashboard", "--scheduler-file", str(self.file),
            *self.worker_args,
        )  # fmt: skip

    def worker_count(self) -> int:
        from dask.distributed import Client

        with contextlib.suppress(OSError, TimeoutError), Client(self.address, timeout="5s") as c:
            return len(c.scheduler_info()["workers"])
        return 0

    def stop(self) -> None:
        for proc in [*self.nannies, self.scheduler]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the nanny and its worker process
            proc.wait()


@pytest.fixture
def cluster_factory(workdir):
    made = []

    def make(workers: int = 2, *worker_args: str) -> DaskCluster:
        made.append(DaskCluster(workdir, workers, *worker_args))
        return made[-1]

    yield make
    for cluster in made:
        cluster.stop()


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_local_worker_killed_mid_batch(slow, workdir, engine):
    """SIGKILL, as the kernel's out-of-memory killer sends it, to a worker writing a shard:
    the local engine forks a new worker (Dask: the local nanny restarts it), the batch runs
    again, and the dead writer's temporary is gone when the run ends; the summary and the
    card say what happened."""
    proc = start_generate(workdir, "--engine", engine, "--workers", "2", "--out", "d")
    os.kill(writer_pid(workdir / "d", proc), signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "1 lost on the way" in out and "survived: 1 worker lost" in out, out
    assert "killed by signal 9" in out, out
    assert_finished_and_whole(workdir / "d", slow / "serial")
    card = (workdir / "d" / "README.md").read_text()
    assert "## The run" in card and "killed by signal 9" in card
    index = json.loads((workdir / "d" / "index.json").read_text())
    assert len(index["incidents"]) == 1 and index["incidents"][0].startswith("worker lost: ")


def test_a_worker_of_an_external_cluster_killed_with_its_nanny(slow, workdir, cluster_factory):
    """Nothing restarts it: the other worker finishes the run."""
    cluster = cluster_factory(2)
    proc = start_generate(workdir, "--scheduler", cluster.address, "--out", "d")
    pid = writer_pid(workdir / "d", proc)
    os.killpg(os.getpgid(pid), signal.SIGKILL)  # the worker and the nanny that would restart it
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "on dask with 2 worker(s), 1 lost on the way" in out, out
    assert "survived: 1 worker lost" in out, out
    assert_finished_and_whole(workdir / "d", slow / "serial")


def test_the_scheduler_killed_mid_run_then_a_rerun_finishes(slow, workdir, cluster_factory):
    cluster = cluster_factory(2)
    proc = start_generate(workdir, "--scheduler", cluster.address, "--out", "d")
    first_shard(workdir / "d", proc)
    os.killpg(cluster.scheduler.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, out + err
    lines = [line for line in err.splitlines() if line.startswith("pdegen: error:")]
    assert len(lines) == 1 and "connection to the Dask scheduler was lost mid-run" in lines[0]
    assert "Traceback" not in err
    assert not (workdir / "d" / "index.json").exists()
    cluster.stop()  # its orphaned workers too
    again = cluster_factory(2)
    rerun = cli(["generate", "r.yaml", "--scheduler", again.address, "--out", "d"], workdir)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed: " in rerun.stdout
    assert_finished_and_whole(workdir / "d", slow / "serial")


def test_a_worker_over_its_memory_limit_is_restarted_then_reported_in_one_line(
    workdir, cluster_factory
):
    """Dask's nanny restarts a worker whose memory passes 95% of its limit: the batch is
    retried on the restarted worker, and when every attempt runs out of memory the run
    stops with one line naming memory; a rerun on workers with room finishes it."""
    data = small_recipe_dict(
        name="big", family="darcy", samples=2, grid={"n": 95, "dim": 3},
        solver={"method": "cg", "pc": "mg"}, output={"shard_size": 1},
    )  # fmt: skip
    data["problem"] = {"coefficient": {"kind": "threshold"}}  # 96^3 nodes: about 700 MiB
    (workdir / "r.yaml").write_text(yaml.safe_dump(data))
    cluster = cluster_factory(1, "--memory-limit", "300MiB")
    done = cli(["generate", "r.yaml", "--scheduler", cluster.address, "--out", "d"], workdir)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("pdegen: error: 2 of 2"), (
        done.stderr
    )
    assert "out of memory: Dask's nanny restarted every worker that ran it" in done.stderr
    assert "--memory-limit" in done.stderr
    report = (workdir / "d" / "failures.log").read_text()
    assert "worker lost" in report and "passed 95% of its 300 MiB limit" in report
    assert not temporaries(workdir / "d")
    rerun = cli(["generate", "r.yaml", "--engine", "serial", "--out", "d"], workdir)
    assert rerun.returncode == 0, rerun.stderr
    checked = cli(["check", "d"], workdir)
    assert checked.returncode == 0, checked.stdout


def test_the_generate_process_killed_mid_run_then_resumed(slow, workdir):
    proc = start_generate(workdir, "--workers", "2", "--out", "d")
    first_shard(workdir / "d", proc)
    wait_for(lambda: shard_temporaries(workdir / "d"), "a batch in progress", running=proc)
    for child in psutil.Process(proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()  # the whole run at once, workers included: nothing cleans up
    proc.kill()
    proc.communicate(timeout=60)
    assert not (workdir / "d" / "index.json").exists()
    resumed = cli(["generate", "r.yaml", "--workers", "2", "--out", "d"], workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed: " in resumed.stdout
    assert_finished_and_whole(workdir / "d", slow / "serial")


def test_the_local_engines_workers_end_with_the_generate_process(slow, workdir):
    """SIGKILL to the generate process alone, mid-run: its forked workers die with it (no
    orphan goes on writing or holds the dataset's lock), and a rerun resumes."""
    proc = start_generate(workdir, "--engine", "local", "--workers", "2", "--out", "d")
    first_shard(workdir / "d", proc)
    wait_for(lambda: shard_temporaries(workdir / "d"), "a batch in progress", running=proc)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert len(workers) == 2, workers
    proc.kill()
    proc.communicate(timeout=60)
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, alive
    resumed = cli(["generate", "r.yaml", "--out", "d"], workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed: " in resumed.stdout and "on local with" in resumed.stdout
    assert_finished_and_whole(workdir / "d", slow / "serial")


def test_sigterm_ends_a_local_run_as_ctrl_c_does_then_a_rerun_resumes(slow, workdir):
    """SIGTERM (scancel, kill) to the generate process: its workers stopped, one line, exit
    status 130, no temporary left, the finished shards kept; a rerun finishes the dataset."""
    proc = start_generate(workdir, "--engine", "local", "--workers", "2", "--out", "d")
    first_shard(workdir / "d", proc)
    wait_for(lambda: shard_temporaries(workdir / "d"), "a batch in progress", running=proc)
    workers = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        "pdegen: interrupted (finished shards are kept; rerun to resume)"
    ], err
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive and not temporaries(workdir / "d"), (alive, temporaries(workdir / "d"))
    resumed = cli(["generate", "r.yaml", "--out", "d"], workdir)
    assert resumed.returncode == 0 and "resumed: " in resumed.stdout, resumed.stderr
    assert_finished_and_whole(workdir / "d", slow / "serial")


def test_a_local_worker_over_its_memory_share_is_killed_then_reported_in_one_line(
    workdir, monkeypatch
):
    """The local engine watches each worker's resident memory against its share of the
    machine, as Dask's nanny does (here a machine of 600 MiB: 300 MiB for each of 2
    workers): a batch that passes it is retried on a new worker, and when every attempt
    does the run stops with one line naming memory and what to do; a rerun with room
    finishes."""
    from pdegen.errors import PdegenError
    from pdegen.recipe import recipe_from_dict
    from pdegen.run.engines import local_engine
    from pdegen.run.generate import generate

    data = small_recipe_dict(
        name="big", family="darcy", samples=2, grid={"n": 95, "dim": 3},
        solver={"method": "cg", "pc": "mg"}, output={"shard_size": 1},
    )  # fmt: skip
    data["problem"] = {"coefficient": {"kind": "threshold"}}  # 96^3 nodes: about 700 MiB
    recipe = recipe_from_dict(data)
    monkeypatch.setattr(local_engine, "machine_memory", lambda: 600 * 2**20)
    with pytest.raises(PdegenError) as raised:
        generate(recipe, out=workdir / "d", progress=False, engine="local", workers=2)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("2 of 2 batches failed"), message
    assert "passed 95% of its 300 MiB share of this machine" in message
    assert "run fewer workers (--workers)" in message
    report = (workdir / "d" / "failures.log").read_text()
    assert report.count("worker lost: local worker") == 6, report  # 3 attempts x 2 batches
    assert not temporaries(workdir / "d")
    monkeypatch.undo()
    generate(recipe, out=workdir / "d", progress=False, engine="local", workers=2)
    checked = cli(["check", "d"], workdir)
    assert checked.returncode == 0, checked.stdout


@pytest.mark.skipif(MPIRUN is None, reason="mpirun is installed by make install")
def test_an_mpi_rank_killed_mid_run_then_resumed_with_mpirun(slow, workdir):
    command = [MPIRUN, "-n", "2", PYTHON, "-m", "pdegen.cli", "generate", "r.yaml",
               "--engine", "mpi", "--out", "d", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first_shard(workdir / "d", proc)
    pid = writer_pid(workdir / "d", proc)
    os.kill(pid, signal.SIGKILL)  # a rank in the middle of its batch
    proc.communicate(timeout=120)
    assert proc.returncode != 0  # mpirun ends the job when a rank dies
    resumed = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert_finished_and_whole(workdir / "d", slow / "serial")


def test_a_batch_that_fails_once_is_retried_and_the_run_says_so(tmp_path, monkeypatch):
    """An attempt that raises and then succeeds (the serial and MPI engines retry in the
    process) is an incident of the run: summary, index and card name the batch and error."""
    from pdegen.recipe import recipe_from_dict
    from pdegen.run.engines import base
    from pdegen.run.generate import generate

    real, failed = base.run_batch, []

    def flaky(job, batch):
        if batch == 1 and not failed:
            failed.append(batch)
            raise RuntimeError("the file system hiccuped")
        return real(job, batch)

    monkeypatch.setattr(base, "run_batch", flaky)
    recipe = recipe_from_dict(small_recipe_dict(samples=8))
    summary = generate(recipe, out=tmp_path / "d", progress=False, engine="serial")
    line = "batch retried: this process (batch 1): the file system hiccuped"
    assert [i.line() for i in summary.incidents] == [line]
    assert "survived: 1 batch attempt retried" in "\n".join(summary.lines())
    assert json.loads((tmp_path / "d" / "index.json").read_text())["incidents"] == [line]
    assert f"- {line}" in (tmp_path / "d" / "README.md").read_text()
    clean = generate(recipe, out=tmp_path / "c", progress=False, engine="serial")
    assert clean.incidents == ()
    assert "Nothing was lost or retried" in (tmp_path / "c" / "README.md").read_text()
