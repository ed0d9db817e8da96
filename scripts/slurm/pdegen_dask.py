"""pdegen's Dask engine on Slurm: dask-jobqueue submits the workers as Slurm jobs, and
`pdegen generate --scheduler` runs the recipe on them.

    .venv/bin/python scripts/slurm/pdegen_dask.py recipes/darcy.yaml --jobs 4 --cores 32 \\
        [--out DIR] [--memory 64GB] [--walltime 01:00:00] [--partition NAME] [-- generate options]

Run it where jobs can be submitted (a login node, or inside a small job of its own); it holds
the Dask scheduler until the run ends. Each Slurm job starts `--cores` worker processes of
one thread each (pdegen refuses multi-threaded workers: PETSc's options and the BLAS thread
limit are per process), with the same Python as this script, so the login node and the
compute nodes must see the same installation and the same output directory (a shared file
system). Needs `pip install dask-jobqueue` (`.venv/bin/pip install dask-jobqueue`; the
tests install it). The jobs are cancelled when the run ends, or when this script is stopped;
a run cut short resumes when started again (docs/cluster.md).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def arguments(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="the recipe YAML")
    parser.add_argument("--out", help="the dataset directory (default: the recipe's)")
    parser.add_argument("--jobs", type=int, default=1, help="Slurm jobs of workers (default 1)")
    parser.add_argument("--cores", type=int, default=2, help="cores per job, one worker each")
    parser.add_argument("--memory", default="2GB", help="memory per job, shared by its workers")
    parser.add_argument("--walltime", default="01:00:00", help="each job's time limit")
    parser.add_argument("--partition", help="the Slurm partition (default: the cluster's)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for workers")
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    ours = argv[: argv.index("--")] if "--" in argv else argv
    return parser.parse_args(ours), extra


def test_only(script: str) -> str:
    """Slurm's answer to the workers' job script without submitting it (`sbatch
    --test-only`): "" when it could run, else Slurm's reason in one line. Why: a job Slurm
    refuses (more memory or cores than a node has) is only logged by dask-jobqueue, and the
    run would wait for workers that never come."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as job:
        job.write(script)
        job.flush()
        answer = subprocess.run(["sbatch", "--test-only", job.name], capture_output=True, text=True)
    if answer.returncode == 0:
        return ""
    lines = [ln.strip() for ln in answer.stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else f"sbatch --test-only exited with {answer.returncode}"


def main(argv: list[str] | None = None) -> int:
    args, extra = arguments(argv)
    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster

    # `scancel` of the job holding this script, its time limit or a closed login session
    # send SIGTERM or SIGHUP: exit through `finally`, which cancels the workers' jobs
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, lambda number, frame: sys.exit(128 + number))
    cluster = SLURMCluster(
        cores=args.cores,
        processes=args.cores,  # one single-threaded worker per core
        memory=args.memory,
        walltime=args.walltime,
        queue=args.partition,
        python=sys.executable,
        # the workers' environment: one BLAS and OpenMP thread each
        job_script_prologue=["export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"],
    )
    try:
        refused = test_only(cluster.job_script())
        if refused:
            print(f"pdegen: Slurm refuses the workers' job: {refused}", file=sys.stderr)
            return 2
        cluster.scale(jobs=args.jobs)
        with Client(cluster) as client:
            workers = args.jobs * args.cores
            print(f"pdegen: waiting for {workers} workers in {args.jobs} Slurm job(s)", flush=True)
            client.wait_for_workers(workers, timeout=args.timeout)
        pdegen = Path(sys.executable).with_name("pdegen")
        command = [str(pdegen), "generate", args.recipe, "--scheduler", cluster.scheduler_address]
        command += ["--out", args.out] if args.out else []
        return subprocess.run(command + extra).returncode
    finally:
        cluster.close()  # cancels the workers' jobs


if __name__ == "__main__":
    sys.exit(main())
