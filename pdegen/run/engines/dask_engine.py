"""The Dask engine (default): one task per batch on a Dask cluster.

Locally it starts a LocalCluster with one single-threaded worker *process* per core: PETSc
runs on COMM_SELF inside each worker, never in threads. With `scheduler` it connects to an
existing cluster instead (dask-jobqueue on SLURM/PBS, dask-mpi, `dask scheduler` by hand);
workers then need the dataset directory on a shared file system, since each writes its own
shard. Failed tasks are retried by the scheduler (`retries`); a worker that dies has its task
rescheduled and, past Dask's allowed-failures limit, reported as KilledWorker.

Workers must be single-threaded: PETSc's options database, our KSP option prefixes and the
BLAS thread limit (threadpoolctl) are per process, so two batches solving in threads of one
worker would share and race on them. An external cluster with multi-threaded workers is
refused when we connect (one line naming the worker), and every task checks its own worker
too, since workers may join after we looked.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import traceback
from collections.abc import Callable

from pdegen.errors import PdegenError
from pdegen.run.engines.base import BatchDone, BatchFailure, Job, run_batch

# A batch is seconds to minutes of single-threaded solving, so Dask's sub-second housekeeping
# buys nothing here, and with one worker per core every wake-up of it (the worker's profiler
# sampling stacks every 10 ms under the GIL, memory and system monitors, heartbeats) is taken
# from a solving worker. Only our own LocalCluster gets these settings; a cluster reached with
# --scheduler keeps its own configuration.
QUIET_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "2s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.tick.interval": "1s",
}


THREADS_ADVICE = "pdegen needs workers with one thread each (dask worker --nthreads 1)"


class MultiThreadedWorkerError(RuntimeError):
    """A batch was sent to a worker that runs several task threads."""


def run_batch_on_worker(job: Job, batch: int) -> BatchDone:
    """`run_batch`, after checking that this worker cannot run another task beside it."""
    from dask.distributed import get_worker

    worker = get_worker()
    if worker.state.nthreads > 1:
        raise MultiThreadedWorkerError(
            f"worker {worker.address} has {worker.state.nthreads} threads; {THREADS_ADVICE}"
        )
    return run_batch(job, batch)


def check_single_threaded(client) -> None:
    """Refuse a cluster any of whose workers runs more than one task thread."""
    for address, info in sorted(client.scheduler_info()["workers"].items()):
        if info.get("nthreads", 1) > 1:
            raise PdegenError(
                f"--scheduler: worker {address} has {info['nthreads']} threads; {THREADS_ADVICE}"
            )


class DaskEngine:
    name = "dask"
    is_root = True

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        self.workers = workers or os.cpu_count() or 1
        self.scheduler = scheduler
        self._client = None
        self._cluster = None
        self._starting: concurrent.futures.Future | None = None

    def __enter__(self) -> DaskEngine:
        # A local cluster takes about 2 s to start (each worker process imports the stack):
        # start it in the background while the root samples and orders the plan, and wait for
        # it at the first batch. The recipe is already validated, so bad recipes never start
        # one; a plan that fails (a bad output path) closes it again in __exit__.
        if self.scheduler:  # connect and check its workers before anything is written
            self._connect()
        else:
            starter = concurrent.futures.ThreadPoolExecutor(1)
            self._starting = starter.submit(self._start_local)
            starter.shutdown(wait=False)  # its one thread ends with the start-up
        return self

    def _start_local(self):
        import logging

        import dask
        from dask.distributed import LocalCluster

        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in workers, which makes glibc
        # return freed memory eagerly; the solver's many short-lived vectors then page-fault
        # on every reuse (measured: 2.95 s against 1.92 s for one Darcy batch). Keep glibc's
        # default; the other pre-spawn settings (one BLAS/OpenMP thread) stay.
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ, **QUIET_CLUSTER}):
            return LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                # a free port, not Dask's 8787: with None Dask still tries 8787 and, when
                # another cluster holds it, warns over four lines on stderr
                dashboard_address=":0",
                silence_logs=logging.CRITICAL,
            )  # failures: reported by us, once

    def _connect(self):
        from dask.distributed import Client

        if self._client is not None:
            return self._client
        if self.scheduler:
            try:
                self._client = Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError) as err:
                raise PdegenError(f"--scheduler {self.scheduler}: cannot connect ({err})") from None
            try:
                check_single_threaded(self._client)
            except PdegenError:
                self._client.close()  # __exit__ is not called when __enter__ fails
                self._client = None
                raise
        else:
            self._cluster = self._starting.result()
            self._client = Client(self._cluster)
        return self._client

    def __exit__(self, *exc) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is None and self._starting is not None:
            with contextlib.suppress(Exception):  # it failed to start: nothing to close
                self._cluster = self._starting.result()
        if self._cluster is not None:
            self._cluster.close()

    def broadcast(self, value):
        return value

    def run(
        self, job: Job, on_done: Callable[[BatchDone], None]
    ) -> tuple[list[BatchDone], list[BatchFailure]]:
        from dask.distributed import as_completed

        if not job.todo:
            return [], []
        client = self._connect()
        job_future = client.scatter(job, broadcast=True)
        futures = {
            client.submit(
                run_batch_on_worker,
                job_future,
                batch,
                retries=job.retries,
                pure=False,
                key=f"pdegen-batch-{batch}-{os.getpid()}",
            ): batch
            for batch in job.todo
        }
        done, failed = [], []
        for future in as_completed(futures):
            batch = futures[future]
            try:
                outcome = future.result()
            except Exception as err:
                trace = getattr(err, "details", "") or "".join(traceback.format_exception(err))
                failed.append(
                    BatchFailure(
                        batch,
                        job.plan.batches[batch],
                        job.retries + 1,
                        f"{type(err).__name__}: {err}",
                        trace,
                    )
                )
                continue
            outcome.worker = str(future.key)
            done.append(outcome)
            on_done(outcome)
        return done, failed
