"""A cluster submission, run: a one-node Slurm started here from Debian's packages (munge,
slurmctld and slurmd as root, on a configuration of the test's own: `ProctrackType=
proctrack/linuxproc`, `TaskPlugin=task/none`, no accounting), the templates in
scripts/slurm/ submitted to it (the MPI engine with `sbatch --wait`, under srun and under
mpiexec; the Dask engine's workers as a job through dask-jobqueue), and each dataset compared
with the serial engine's, bit for bit. Where Slurm cannot start (not root, not installed, a
controller already running), the tests are skipped with the reason; a Slurm started here
that does not come up fails them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.generate import generate
from tests.helpers import assert_same_dataset, read_all, recipe_dict

ROOT = Path(__file__).resolve().parent.parent
DAEMONS = ("slurmctld", "slurmd", "sbatch", "sinfo", "munged")


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (every socket held open until all are chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def why_no_slurm() -> str:
    """'' where this machine can start a Slurm of its own, else why not."""
    if os.geteuid() != 0:
        return "starting slurmctld and slurmd needs root"
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed (make test installs slurm-wlm and munge)"
    if subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0:
        return "a Slurm controller already runs on this machine; the test starts its own"
    return ""


def start_munge() -> tuple[bool, str]:
    """(whether this call started munged, why it cannot run: "" when it runs)."""
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
        return False, ""
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        made = subprocess.run(["mungekey", "--create"], capture_output=True, text=True)
        if made.returncode != 0 or not key.exists():
            return False, f"no munge key and mungekey failed: {made.stderr.strip()}"
        shutil.chown(key, "munge", "munge")
    started = subprocess.run(["/etc/init.d/munge", "start"], capture_output=True, text=True)
    if started.returncode != 0:
        return False, f"munge did not start: {(started.stdout + started.stderr).strip()}"
    return True, ""


def configuration(directory: Path) -> str:
    """slurm.conf for one node, this host (reached at 127.0.0.1), with the CPUs, sockets and
    cores `slurmd -C` sees and at most 2000 MB of its memory (the tests ask for 1 GB)."""
    host = socket.gethostname().split(".")[0]
    probe = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=60)
    facts = dict(item.split("=", 1) for item in probe.stdout.split("\n")[0].split() if "=" in item)
    controller_port, node_port = free_ports(2)
    lines = {
        "ClusterName": "pdegen-test",
        "SlurmctldHost": f"{host}(127.0.0.1)",
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "SlurmctldPort": controller_port,
        "SlurmdPort": node_port,
        "StateSaveLocation": directory / "state",
        "SlurmdSpoolDir": directory / "spool",
        "SlurmctldPidFile": directory / "slurmctld.pid",
        "SlurmdPidFile": directory / "slurmd.pid",
        "SlurmctldLogFile": directory / "slurmctld.log",
        "SlurmdLogFile": directory / "slurmd.log",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core",
        "MpiDefault": "none",
        "ReturnToService": 2,
        "AccountingStorageType": "accounting_storage/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "JobCompType": "jobcomp/none",
    }
    text = "".join(f"{key}={value}\n" for key, value in lines.items())
    shape = " ".join(
        f"{key}={facts[key]}"
        for key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
        if key in facts
    )
    memory = min(int(facts.get("RealMemory", 2000)), 2000)
    node = f"NodeName={host} NodeAddr=127.0.0.1 {shape} RealMemory={memory} State=UNKNOWN\n"
    return text + node + "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"


def queue(env: dict) -> str:
    """The jobs Slurm holds, one line each ("" when none)."""
    answer = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True, timeout=30)
    return answer.stdout.strip()


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The environment (SLURM_CONF) of a one-node Slurm running for this module. Skipped
    where this machine cannot run one (not root, the packages missing, a controller already
    running, munge cannot start); once its daemons are started, a Slurm that does not come up
    fails the tests (with the daemons' last log lines) rather than skipping them. Teardown
    cancels every job, then stops the daemons, and munge if it was started here."""
    reason = why_no_slurm()
    started_munge, munge_reason = (False, "") if reason else start_munge()
    reason = reason or munge_reason
    if reason:
        print(f"test_slurm skipped: {reason}")
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (directory / sub).mkdir()
    (directory / "slurm.conf").write_text(configuration(directory))
    env = {**os.environ, "SLURM_CONF": str(directory / "slurm.conf")}
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    daemons = [
        subprocess.Popen([name, "-D", *flags], **quiet)
        for name, flags in (("slurmctld", ["-c", "-i"]), ("slurmd", []))
    ]
    try:
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline and all(d.poll() is None for d in daemons):
            answer = subprocess.run(
                ["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=30
            )
            state = answer.stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            logs = [directory / "slurmctld.log", directory / "slurmd.log"]
            tails = [p.read_text().strip().splitlines()[-3:] for p in logs if p.exists()]
            exited = [d.args[0] for d in daemons if d.poll() is not None]
            pytest.fail(
                f"Slurm did not come up (node state {state!r}, exited: {exited}); "
                f"the daemons' last log lines: {tails}"
            )
        yield env
    finally:
        subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and all(d.poll() is None for d in daemons):
            if not queue(env):
                break
            time.sleep(0.5)
        for daemon in daemons:
            daemon.terminate()
        for daemon in daemons:
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        if started_munge:
            subprocess.run(["/etc/init.d/munge", "stop"], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> tuple[Path, dict]:
    """A small Darcy recipe with GCRO-DR (its recycled space carried along each batch, so a
    batch cut differently would change the bits) and its serial engine's dataset."""
    directory = tmp_path_factory.mktemp("serial")
    data = recipe_dict(samples=12, output={"shard_size": 3})
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    generate(recipe_from_dict(data), out=directory / "s", progress=False, engine="serial")
    return path, read_all(directory / "s")


@pytest.mark.parametrize("launch", ["srun", "mpiexec"])
def test_the_mpi_template_under_sbatch_writes_the_serial_dataset(slurm, serial, tmp_path, launch):
    """`sbatch --wait --ntasks 2 scripts/slurm/pdegen-mpi.sbatch recipe out`: two ranks, four
    batches dealt between them, one dataset equal to the serial engine's."""
    recipe, expected = serial
    env = {**slurm, "PDEGEN_LAUNCH": launch, "PDEGEN_VENV": str(Path(sys.executable).parent.parent)}
    log = tmp_path / "job.out"
    command = ["sbatch", "--wait", "--ntasks", "2", "--output", str(log),
               str(ROOT / "scripts/slurm/pdegen-mpi.sbatch"), str(recipe), str(tmp_path / "m"),
               "--quiet"]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    output = log.read_text() if log.exists() else ""
    assert result.returncode == 0, (result.stderr, output)
    assert f"2 ranks on {socket.gethostname().split('.')[0]}, started by {launch}" in output
    assert "on mpi with 2 worker(s)" in output and output.count("dataset:") == 1
    assert_same_dataset(expected, tmp_path / "m")


def test_the_mpi_template_with_two_ranks_per_sample_matches_the_serial_dataset(
    slurm, serial, tmp_path
):
    """The same template with `--ranks-per-sample 2`: one group of both ranks solves every
    sample together (GCRO-DR on the pair's communicator); the inputs are the serial bits and
    the solutions agree with the serial ones to the solve tolerance (docs/cluster.md, "One
    sample across ranks")."""
    recipe, expected = serial
    env = {**slurm, "PDEGEN_LAUNCH": "srun", "PDEGEN_VENV": str(Path(sys.executable).parent.parent)}
    log = tmp_path / "job.out"
    command = ["sbatch", "--wait", "--ntasks", "2", "--output", str(log),
               str(ROOT / "scripts/slurm/pdegen-mpi.sbatch"), str(recipe), str(tmp_path / "k"),
               "--quiet", "--ranks-per-sample", "2"]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    output = log.read_text() if log.exists() else ""
    assert result.returncode == 0, (result.stderr, output)
    assert "each sample solved by 2 ranks together" in output, output
    got = read_all(tmp_path / "k")
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        if key.endswith("outputs/solution"):
            assert np.abs(got[key] - value).max() <= 1e-6 * np.abs(value).max(), key
        elif "/stats/" not in key:
            np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_the_dask_jobqueue_template_writes_the_serial_dataset(slurm, serial, tmp_path):
    """scripts/slurm/pdegen_dask.py: dask-jobqueue submits one job of two single-threaded
    workers, `pdegen generate --scheduler` runs on them, and the job ends with the run."""
    recipe, expected = serial
    command = [sys.executable, str(ROOT / "scripts/slurm/pdegen_dask.py"), str(recipe),
               "--out", str(tmp_path / "d"), "--jobs", "1", "--cores", "2", "--memory", "1GB",
               "--timeout", "120", "--", "--quiet"]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, env=slurm, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "on dask with 2 worker(s)" in result.stdout
    assert_same_dataset(expected, tmp_path / "d")
    # the workers ran as a Slurm job: its log (written where it was submitted from) has them
    logs = [p.read_text() for p in tmp_path.glob("slurm-*.out")]
    assert len(logs) == 1 and logs[0].count("Registered to:") == 2, logs
    deadline = time.monotonic() + 30
    while queue(slurm) and time.monotonic() < deadline:  # cancelled as the cluster closed
        time.sleep(0.5)
    assert not queue(slurm)


def test_a_job_slurm_cannot_run_is_refused_in_one_line(slurm, serial, tmp_path):
    """More memory per job than the node has: the Dask template says Slurm's reason and
    exits 2 instead of waiting for workers that never come."""
    recipe, _ = serial
    command = [sys.executable, str(ROOT / "scripts/slurm/pdegen_dask.py"), str(recipe),
               "--memory", "500GB"]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, env=slurm, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.startswith("pdegen: Slurm refuses the workers' job: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Requested node configuration is not available" in result.stderr
