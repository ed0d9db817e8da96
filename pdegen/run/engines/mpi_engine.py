"""The MPI engine: `mpirun -n P pdegen generate RECIPE --engine mpi` (or `srun`).

No scheduler process: rank 0 prepares the directory and the plan and broadcasts them (or the
reason it could not, so that no rank waits for a plan that never comes); the batches still to
do are dealt round-robin to the ranks, each solving on COMM_SELF. With
`solver.ranks_per_sample` k > 1 the ranks form groups of k contiguous ranks, the batches are
dealt round-robin to the groups, and a group's ranks solve every sample of its batches
together (`pdegen.run.group`); the group's first rank writes the batch's file (its shard, or
its part of a shard of several batches) and reports it. Rank 0 merges a shard's parts when
it learns that the last is done, between its own batches (`pdegen.run.assemble`). A
failure inside one rank of a group cannot be retried without the others, which may be waiting
in a collective: it ends the job at once in one line (MPI_Abort), and a rerun resumes.
Every finished batch is reported to rank 0 as it finishes (rank 0 reads these reports between
its own batches), so the progress display counts every rank's work; the outcomes end on rank
0, which writes the index. A rank that crashes takes the job down (the CLI aborts the
communicator on any unexpected error, mpirun does on a dead rank); rerunning resumes from the
finished shards.
"""

from __future__ import annotations

from collections.abc import Callable

from pdegen.run.engines.base import (
    BatchDone,
    BatchFailure,
    Job,
    retried_incidents,
    run_with_retries,
)
from pdegen.run.incidents import Incident

PROGRESS, FINISHED = 11, 12  # message tags: one batch done on a rank; a rank's outcomes


class MPIEngine:
    name = "mpi"

    def __init__(self):
        from mpi4py import MPI

        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.workers = self.comm.Get_size()
        self.is_root = self.rank == 0
        #: what the last `run` survived, on rank 0 (`pdegen.run.incidents`)
        self.incidents: list[Incident] = []

    def __enter__(self) -> MPIEngine:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def broadcast(self, value):
        return self.comm.bcast(value, root=0)

    def run(
        self, job: Job, on_done: Callable[[BatchDone], None]
    ) -> tuple[list[BatchDone], list[BatchFailure]]:
        from mpi4py import MPI

        ranks = job.recipe.solver.ranks_per_sample
        group, number, groups = None, self.rank, self.workers
        if ranks > 1:
            from pdegen.run.group import split_groups

            group, number, groups = split_groups(self.comm, ranks)
        mine = job.todo[number::groups]
        outcomes: list[BatchDone | BatchFailure] = []
        sent = []
        for batch in mine:
            if group is None:
                outcome = run_with_retries(job, batch)
            else:
                outcome = self._run_in_group(job, batch, group)
                if outcome is None:  # not the group's first rank: it reports nothing
                    continue
            if isinstance(outcome, BatchDone):
                outcome.worker = (
                    f"rank {self.rank}"
                    if group is None
                    else (f"ranks {self.rank}-{self.rank + ranks - 1}")
                )
            outcomes.append(outcome)
            if isinstance(outcome, BatchDone):
                if self.is_root:
                    on_done(outcome)
                else:  # small and eager: never blocks the sender
                    sent.append(self.comm.isend(outcome, dest=0, tag=PROGRESS))
            if self.is_root:
                self._drain_progress(on_done)
        if not self.is_root:
            MPI.Request.waitall(sent)
            self.comm.send(outcomes, dest=0, tag=FINISHED)
            return [], []
        flat = list(outcomes)
        status = MPI.Status()
        for _ in range(self.workers - 1):
            while True:  # a rank's progress reports all arrive before its outcomes
                message = self.comm.recv(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status)
                if status.Get_tag() == FINISHED:
                    flat.extend(message)
                    break
                on_done(message)
        done = [o for o in flat if isinstance(o, BatchDone)]
        self.incidents = retried_incidents(done, "rank 0")
        return done, [o for o in flat if isinstance(o, BatchFailure)]

    def _run_in_group(self, job: Job, batch: int, group) -> BatchDone | None:
        """One batch on a group of ranks (module notes: a failure ends the job)."""
        import sys

        from pdegen.run.engines.base import one_line, run_batch

        try:
            return run_batch(job, batch, group)
        except Exception as err:
            sys.stderr.write(
                f"pdegen: error: rank {self.rank}: batch {batch} failed on a group of "
                f"{group.getSize()} ranks ({one_line(err)}); the job stops, since one rank of "
                "a group cannot retry without the others: rerun to resume from the finished "
                "shards\n"
            )
            sys.stderr.flush()
            self.comm.Abort(1)
            raise

    def _drain_progress(self, on_done: Callable[[BatchDone], None]) -> None:
        """Count the other ranks' batches finished so far (root, between its own batches)."""
        while self.comm.iprobe(tag=PROGRESS):
            on_done(self.comm.recv(tag=PROGRESS))
