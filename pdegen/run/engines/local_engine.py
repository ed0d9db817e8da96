"""The local engine (default on Linux): worker processes forked from this one, batches dealt
from a queue.

Why not a local Dask cluster: measured on 2 cores at 64^2 x 4000 Darcy samples
(docs/benchmarks.md, "Engines at small samples"), a LocalCluster spends about 2.3 s of a 9 s
run outside the batches: its worker processes are spawned afresh and import distributed and
then the whole stack (numpy, scipy, h5py, PETSc, pdegen), one after the other on a loaded
machine, and a scheduler sits between every batch and the next. Forked workers inherit this
process's imported modules and its plan, so they start in milliseconds, and a batch is one
message each way on a pipe. Dask stays the engine for clusters (`--engine dask`,
`--scheduler`), where its scheduler is what reaches the other hosts.

What a run survives, as under Dask: a batch whose attempt raises is retried in the worker
(`run_with_retries`, `--retries`); a worker that dies (a signal, the kernel's out-of-memory
killer, or this engine's own memory watch, which kills a worker whose private memory passes
95% of its share of the machine, as Dask's nanny does) has its batch dealt again to a fresh
worker, up to `LOSS_LIMIT` losses per batch (Dask's allowed-failures), and each loss is an
incident with its reason. A loss is charged to a batch only once its worker said it started
it, so a worker that dies just after finishing one batch never costs the next. A worker
writes its shard (or part) under a temporary name, so a lost one leaves nothing that counts.

Fork safety: PETSc runs on COMM_SELF in each worker (measured: a PETSc initialised before the
fork solves correctly in the children; MPI transports that forbid fork after MPI_Init, such as
InfiniBand verbs under Open MPI, are a cluster's, where the MPI or Dask engine runs instead);
a worker leaves by `os._exit`, so this process's exit handlers (PETSc's finalisation, the
dataset lock) never run twice; the progress bar starts no thread (`pdegen.run.progress`), so
no lock is forked held; each worker is killed when this process dies (Linux's
PR_SET_PDEATHSIG), so no orphan goes on writing or holds the dataset's lock. Linux only.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pdegen.errors import PdegenError
from pdegen.recipe.resources import machine_memory
from pdegen.run.engines.base import (
    BatchDone,
    BatchFailure,
    Job,
    retried_incidents,
    run_with_retries,
)
from pdegen.run.incidents import WORKER_LOST, Incident, process_end

#: a worker whose resident memory passes this share of its limit is killed (Dask's nanny:
#: "distributed.worker.memory.terminate", 0.95)
TERMINATE_FRACTION = 0.95
#: how often the memory watch looks, in seconds (a wait for results wakes at least this often)
WATCH_INTERVAL = 0.5
MEMORY_REASON = "out of memory"
#: worker losses a batch may cost before it fails (Dask: distributed.scheduler.allowed-failures)
LOSS_LIMIT = 3
STARTED = "started"  # a worker's word that it began the batch it was dealt


def available() -> bool:
    """Linux only: the engine needs fork and the parent-death signal."""
    return sys.platform.startswith("linux")


def usable_cores() -> int:
    """The cores this process may run on (a Slurm or taskset allocation), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _die_with_parent(parent: int) -> None:
    """Deliver SIGKILL to this worker when its parent dies; if the parent already died (before
    the request took effect), leave now."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(1, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
        os._exit(1)
    if os.getppid() != parent:
        os._exit(1)


def _serve(
    job: Job,
    conn: multiprocessing.connection.Connection,
    parent: int,
    inherited: list[multiprocessing.connection.Connection],
) -> None:
    """A worker: for each batch number received, say it started, solve it, send back its
    outcome; stop at None or when the pipe closes."""
    _die_with_parent(parent)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the CLI's handler is the parent's
    for other in inherited:  # the parent's ends of the other workers' pipes
        other.close()
    try:
        while True:
            try:
                batch = conn.recv()
            except EOFError:
                return
            if batch is None:
                return
            conn.send(STARTED)
            conn.send(run_with_retries(job, batch))
    except (BrokenPipeError, KeyboardInterrupt):
        return


def private_bytes(pid: int) -> int | None:
    """Memory a worker holds that is its own (Private_Clean + Private_Dirty of smaps_rollup):
    not the parent's pages it shares copy-on-write since the fork, which its resident size
    counts. None where /proc cannot tell (the process is gone, or no smaps_rollup)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            total = 0
            for line in rollup:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1]) * 1024
            return total
    except (OSError, ValueError, IndexError):
        return None


def death_reason(exitcode: int | None, killed_for_memory: str | None) -> str:
    """Why a worker's process ended: the memory watch's words, else its exit code's."""
    if killed_for_memory:
        return killed_for_memory
    if exitcode is not None and exitcode < 0:
        return process_end(-exitcode, None)
    return process_end(None, exitcode)


@dataclass
class _Worker:
    number: int
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    batch: int | None = None
    started: bool = False  # the worker said it began `batch`
    killed_for_memory: str | None = None

    @property
    def name(self) -> str:
        return f"local worker {self.number} (pid {self.process.pid})"


@dataclass
class _Dealer:
    """The batches still to deal, each with the reasons its earlier workers were lost."""

    pending: deque[int]
    lost: dict[int, list[str]] = field(default_factory=dict)


class LocalEngine:
    name = "local"
    is_root = True

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        if scheduler:  # the CLI routes --scheduler to Dask; a library caller gets one line
            raise PdegenError("--scheduler: only with the dask engine, not the local one")
        if not available():
            raise PdegenError("--engine local: Linux only here; use --engine dask")
        self.workers = workers or usable_cores()
        #: what the last `run` survived (`pdegen.run.incidents`)
        self.incidents: list[Incident] = []
        #: each worker's share of the machine's memory (set by `run`: the workers it starts)
        self.memory_limit: int | None = None
        self._workers: list[_Worker] = []  # every worker this run started, the dead too

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def broadcast(self, value):
        return value

    def _start(self, job: Job) -> _Worker:
        context = multiprocessing.get_context("fork")
        ours, theirs = context.Pipe()
        inherited = [w.conn for w in self._workers if not w.conn.closed]
        process = context.Process(
            target=_serve, args=(job, theirs, os.getpid(), inherited), daemon=True
        )
        # The parent's objects (modules, the plan) into the permanent generation first: a
        # worker's collections then never walk them, nor write to their pages, which would
        # copy them page by page. Measured at 64^2 x 4000 on 2 workers: 6.0-6.8 s against
        # 8.0-8.9 s whole (docs/benchmarks.md, "Engines at small samples").
        gc.freeze()
        try:
            process.start()
        except OSError as err:  # EAGAIN, or ENOMEM under strict overcommit
            ours.close()
            raise PdegenError(
                f"the local engine could not start a worker process ({err})"
            ) from None
        finally:
            theirs.close()
        worker = _Worker(len(self._workers) + 1, process, ours)
        self._workers.append(worker)
        return worker

    def run(
        self, job: Job, on_done: Callable[[BatchDone], None]
    ) -> tuple[list[BatchDone], list[BatchFailure]]:
        self.incidents, self._workers = [], []
        dealer = _Dealer(deque(job.todo))
        done: list[BatchDone] = []
        failed: list[BatchFailure] = []
        lost: list[Incident] = []
        count = min(self.workers, len(job.todo))
        memory = machine_memory()
        self.memory_limit = memory // count if memory and count else None
        workers: list[_Worker] = []
        try:
            for _ in range(count):
                workers.append(self._start(job))
                self._deal(workers[-1], dealer)
            while any(w.batch is not None for w in workers):
                busy = [w for w in workers if w.batch is not None]
                ready = multiprocessing.connection.wait(
                    [w.conn for w in busy] + [w.process.sentinel for w in busy],
                    timeout=WATCH_INTERVAL if self.memory_limit else None,
                )
                for worker in busy:
                    # every message it sent first (a dead worker's too: an outcome sent just
                    # before it died counts), then whether it died
                    while worker.batch is not None and (outcome := self._receive(worker)):
                        if outcome is STARTED:
                            continue
                        finished = isinstance(outcome, BatchDone)
                        (done if finished else failed).append(outcome)
                        self._deal(worker, dealer)
                        if finished:  # after dealing: a merge here keeps no worker waiting
                            on_done(outcome)
                    if worker.process.sentinel in ready or not worker.process.is_alive():
                        worker.process.join()
                        replacement = self._lose(worker, job, dealer, lost, failed)
                        workers[workers.index(worker)] = replacement
                        if replacement is not worker:
                            self._deal(replacement, dealer)
                    elif self.memory_limit:
                        self._watch(worker)
        finally:
            self._stop(workers)
        self.incidents = lost + retried_incidents(done, "a local worker")
        return done, failed

    @staticmethod
    def _receive(worker: _Worker) -> BatchDone | BatchFailure | str | None:
        """One message if one is waiting: `STARTED`, or the outcome of its batch (which frees
        the worker); None when there is none (or the pipe broke: its sentinel says why)."""
        try:
            if not worker.conn.poll():
                return None
            message = worker.conn.recv()
        except (EOFError, OSError):
            return None
        if message == STARTED:
            worker.started = True
            return STARTED
        worker.batch, worker.started = None, False
        if isinstance(message, BatchDone):
            message.worker = worker.name
        return message

    def _deal(self, worker: _Worker, dealer: _Dealer) -> None:
        """The next batch to this worker, unless it is dying (its sentinel will say so)."""
        if dealer.pending and worker.process.is_alive() and not worker.killed_for_memory:
            worker.batch, worker.started = dealer.pending.popleft(), False
            with contextlib.suppress(OSError):  # it died: its sentinel says so, and why
                worker.conn.send(worker.batch)

    def _lose(
        self,
        worker: _Worker,
        job: Job,
        dealer: _Dealer,
        lost: list[Incident],
        failed: list[BatchFailure],
    ) -> _Worker:
        """A worker died: record why. The batch it had started is dealt again to a fresh
        worker unless it has cost `LOSS_LIMIT` workers (then it fails, naming the reasons);
        a batch it was dealt but had not begun goes back uncharged. Returns the worker that
        takes its place (itself, idle and dead, when none is needed)."""
        batch, started = worker.batch, worker.started
        reason = death_reason(worker.process.exitcode, worker.killed_for_memory)
        hit = (batch,) if batch is not None and started else ()
        lost.append(Incident(WORKER_LOST, worker.name, reason, hit))
        worker.batch, worker.started = None, False
        worker.conn.close()
        if batch is not None and not started:
            dealer.pending.appendleft(batch)
        elif batch is not None:
            reasons = dealer.lost.setdefault(batch, [])
            reasons.append(reason)
            if len(reasons) < LOSS_LIMIT:
                dealer.pending.appendleft(batch)
            else:
                failed.append(self._failure(job, batch, reasons))
        return self._start(job) if dealer.pending else worker

    def _failure(self, job: Job, batch: int, reasons: list[str]) -> BatchFailure:
        if all(r.startswith(MEMORY_REASON) for r in reasons):
            error = (
                f"{reasons[-1]}; every worker that ran it was killed over its memory limit: run "
                "fewer workers (--workers) or make the samples smaller"
            )
        else:
            error = f"every worker that ran it was lost (the last: {reasons[-1]})"
        return BatchFailure(batch, job.plan.batches[batch], len(reasons), error)

    def _watch(self, worker: _Worker) -> None:
        """Kill a worker whose own memory passed 95% of its share (Dask's nanny does)."""
        used = private_bytes(worker.process.pid)
        if used is None or used <= TERMINATE_FRACTION * self.memory_limit:
            return
        worker.killed_for_memory = (
            f"{MEMORY_REASON}: its memory use, {used / 2**20:.0f} MiB, passed "
            f"{TERMINATE_FRACTION:.0%} of its {self.memory_limit / 2**20:.0f} MiB share of "
            "this machine"
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.process.pid, signal.SIGKILL)

    @staticmethod
    def _stop(workers: list[_Worker]) -> None:
        """Idle workers are told to stop; any still busy (an interrupted run) are killed."""
        for worker in workers:
            with contextlib.suppress(OSError):
                if worker.batch is None:
                    worker.conn.send(None)
                else:
                    worker.process.kill()
        deadline = time.monotonic() + 10.0
        for worker in workers:
            worker.process.join(max(deadline - time.monotonic(), 0.0))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            with contextlib.suppress(OSError):
                worker.conn.close()
