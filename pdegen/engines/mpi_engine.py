"""The MPI engine: `mpirun -n P pdegen generate RECIPE --engine mpi` (or `srun`).

No scheduler process: rank 0 prepares the directory and the plan and broadcasts them; the
batches still to do are dealt round-robin to the ranks, each solving on COMM_SELF; the
outcomes are gathered on rank 0, which writes the index. A rank that crashes takes the job
down (mpirun aborts); rerunning resumes from the finished shards.
"""

from __future__ import annotations

from collections.abc import Callable

from pdegen.engines.base import BatchDone, BatchFailure, Job, run_with_retries


class MPIEngine:
    name = "mpi"

    def __init__(self):
        from mpi4py import MPI

        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.workers = self.comm.Get_size()
        self.is_root = self.rank == 0

    def __enter__(self) -> MPIEngine:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def broadcast(self, value):
        return self.comm.bcast(value, root=0)

    def run(
        self, job: Job, on_done: Callable[[BatchDone], None]
    ) -> tuple[list[BatchDone], list[BatchFailure]]:
        mine = job.todo[self.rank :: self.workers]
        outcomes = []
        for batch in mine:
            outcome = run_with_retries(job, batch)
            outcomes.append(outcome)
            if isinstance(outcome, BatchDone):
                on_done(outcome)
        gathered = self.comm.gather(outcomes, root=0)
        if not self.is_root:
            return [], []
        flat = [o for part in gathered for o in part]
        return (
            [o for o in flat if isinstance(o, BatchDone)],
            [o for o in flat if isinstance(o, BatchFailure)],
        )
