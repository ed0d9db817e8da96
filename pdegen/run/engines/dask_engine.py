"""The Dask engine (clusters; `--scheduler`): one task per batch on a Dask cluster.

Locally it starts a LocalCluster with one single-threaded worker *process* per core: PETSc
runs on COMM_SELF inside each worker, never in threads. With `scheduler` it connects to an
existing cluster instead (dask-jobqueue on SLURM/PBS, dask-mpi, `dask scheduler` by hand);
workers then need the dataset directory on a shared file system, since each writes its own
shard or part of a shard. Failed tasks are retried by the scheduler (`retries`); a worker
that dies has its task rescheduled and, past Dask's allowed-failures limit, reported as
KilledWorker.

Workers must be single-threaded: PETSc's options database, our KSP option prefixes and the
BLAS thread limit (threadpoolctl) are per process, so two batches solving in threads of one
worker would share and race on them. An external cluster with multi-threaded workers is
refused when we connect (one line naming the worker), and every task checks its own worker
too, since workers may join after we looked.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import re
import time
import traceback
from collections.abc import Callable

from pdegen.errors import PdegenError
from pdegen.run.engines.base import BatchDone, BatchFailure, Job, one_line, run_batch
from pdegen.run.incidents import BATCH_RETRIED, WORKER_LOST, DeathRecorder, Incident

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


CLIENT_LOG = logging.getLogger("distributed.client")
#: how a worker restarted by Dask's nanny over its memory limit is reported
MEMORY_REASON = "out of memory: Dask's nanny restarted it"

THREADS_ADVICE = "pdegen needs workers with one thread each (dask worker --nthreads 1)"


class MultiThreadedWorkerError(RuntimeError):
    """A batch was sent to a worker that runs several task threads."""


#: the scheduler event topic of our batches: each attempt's start (with the worker's pid,
#: so that a lost worker's end can be named) and each attempt that raised
BATCH_EVENTS = "pdegen-batch"


def run_batch_on_worker(job: Job, batch: int) -> BatchDone:
    """`run_batch`, after checking that this worker cannot run another task beside it; the
    attempt's start and, if it raises, its error go to the scheduler's event log."""
    from dask.distributed import get_worker

    worker = get_worker()
    if worker.state.nthreads > 1:
        raise MultiThreadedWorkerError(
            f"worker {worker.address} has {worker.state.nthreads} threads; {THREADS_ADVICE}"
        )
    key = {"batch": batch, "run": job.run_id, "worker": worker.address}
    worker.log_event(BATCH_EVENTS, {**key, "state": "start", "pid": os.getpid()})
    try:
        return run_batch(job, batch)
    except Exception as err:
        worker.log_event(BATCH_EVENTS, {**key, "state": "error", "error": one_line(err)})
        raise


def _the_job(job: Job) -> Job:
    return job


def _worker_facts(dask_scheduler=None) -> dict[str, tuple[int | None, int]]:
    """On the scheduler: every worker's address -> (pid, memory limit in bytes, 0: none)."""
    return {
        address: (ws.pid, ws.memory_limit or 0) for address, ws in dask_scheduler.workers.items()
    }


def _plain_events(since: float, dask_scheduler=None) -> tuple[dict[str, list], dict]:
    """On the scheduler: the events since `since` that `DaskEngine._incidents` reads, as
    plain values (some events of the "all" topic hold scheduler objects that cannot be sent),
    and `_worker_facts` of the workers it has now."""
    wanted = {
        BATCH_EVENTS: ("batch", "run", "worker", "state", "pid", "error"),
        "worker-restart-memory": ("worker", "pid", "rss"),
        "all": ("action", "worker", "expected", "processing-tasks", "stimulus_id"),
    }
    out: dict[str, list] = {}
    for topic, keys in wanted.items():
        for t, msg in dask_scheduler.get_events(topic):
            if t < since or not isinstance(msg, dict):
                continue
            if topic == "all" and msg.get("action") != "remove-worker":
                continue
            plain = {k: msg[k] for k in keys if k in msg}
            if "processing-tasks" in plain:
                plain["processing-tasks"] = [str(k) for k in plain["processing-tasks"]]
            out.setdefault(topic, []).append((t, plain))
    return out, _worker_facts(dask_scheduler)


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
        #: what the last `run` survived (`pdegen.run.incidents`)
        self.incidents: list[Incident] = []
        self._workers: dict[str, tuple[int | None, int]] = {}  # address -> (pid, limit)
        self._lost_workers: dict[int, list[str]] = {}  # batch -> why each worker was lost
        self._deaths = DeathRecorder()  # how a local nanny's worker processes ended

    def __enter__(self) -> DaskEngine:
        # A local cluster takes about 2 s to start (each worker process imports the stack):
        # start it in the background while the root samples and orders the plan, and wait for
        # it at the first batch. The recipe is already validated, so bad recipes never start
        # one; a plan that fails (a bad output path) closes it again in __exit__.
        if self.scheduler:  # connect and check its workers before anything is written
            # Dask's client logs a lost scheduler, and each try to reach it again, over
            # several lines with tracebacks until it is closed; `run` says it in one line.
            # After the import: importing distributed sets its loggers' levels.
            import distributed  # noqa: F401

            self._client_log_level = CLIENT_LOG.level
            CLIENT_LOG.setLevel(logging.CRITICAL)
            try:
                self._connect()
            except BaseException:
                CLIENT_LOG.setLevel(self._client_log_level)  # no __exit__ after a failed enter
                raise
        else:
            # the local nannies run in this process: their log says how a worker ended
            logging.getLogger("distributed.nanny").addHandler(self._deaths)
            starter = concurrent.futures.ThreadPoolExecutor(1)
            self._starting = starter.submit(self._start_local)
            starter.shutdown(wait=False)  # its one thread ends with the start-up
        return self

    def _start_local(self):
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
            self.workers = len(self._client.scheduler_info()["workers"])
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
        logging.getLogger("distributed.nanny").removeHandler(self._deaths)
        if self.scheduler:
            CLIENT_LOG.setLevel(self._client_log_level)

    def broadcast(self, value):
        return value

    def run(
        self, job: Job, on_done: Callable[[BatchDone], None]
    ) -> tuple[list[BatchDone], list[BatchFailure]]:
        from dask.distributed import as_completed

        self.incidents, self._lost_workers = [], {}
        if not job.todo:
            return [], []
        client = self._connect()
        started = time.time()
        # each worker's pid and memory limit now: a worker lost later is named by them
        self._workers = client.run_on_scheduler(_worker_facts)
        # the job as a task's result, not scattered data: a worker that dies holding the only
        # copy of scattered data loses it for good (every batch then fails as "forgotten"),
        # while a task's result is computed again from its spec, which the scheduler keeps
        job_future = client.submit(_the_job, job, pure=False, key=f"pdegen-job-{job.run_id}")
        futures = {
            client.submit(
                run_batch_on_worker,
                job_future,
                batch,
                retries=job.retries,
                pure=False,
                key=f"pdegen-batch-{batch}-{job.run_id}",
            ): batch
            for batch in job.todo
        }
        done, errors = [], []
        for future in as_completed(futures):
            batch = futures[future]
            try:
                outcome = future.result()
            except Exception as err:
                errors.append((batch, err))
                continue
            outcome.worker = str(future.key)
            done.append(outcome)
            on_done(outcome)
        if self.scheduler and client.status != "running":
            kept = len(done)
            raise PdegenError(
                f"--scheduler {self.scheduler}: the connection to the Dask scheduler was lost "
                f"mid-run ({kept} of {len(job.todo)} batches finished and kept); start the "
                "scheduler again and rerun to finish"
            )
        try:
            self.incidents = self._incidents(client, job, started)
        except Exception as err:  # the record of a run never fails the run itself
            reason = f"the scheduler's event log could not be read ({one_line(err)})"
            self.incidents = [Incident("incidents unknown", self.scheduler or "local", reason)]
        return done, [self._failure(job, batch, err) for batch, err in errors]

    def _failure(self, job: Job, batch: int, err: Exception) -> BatchFailure:
        """A batch that failed every attempt; where every worker that ran it was restarted
        by Dask's nanny over its memory limit, the one line says so."""
        trace = getattr(err, "details", "") or "".join(traceback.format_exception(err))
        error, attempts = one_line(err), job.retries + 1
        lost = self._lost_workers.get(batch, [])
        if type(err).__name__ == "KilledWorker" and lost:
            attempts = len(lost)
            memory = [reason for reason in lost if reason.startswith(MEMORY_REASON)]
            if len(memory) == len(lost):
                error = (
                    f"out of memory: Dask's nanny restarted every worker that ran it over its "
                    f"memory limit ({memory[-1].removeprefix(MEMORY_REASON).strip()}); give "
                    "the workers more memory (dask worker --memory-limit) or make the samples "
                    "smaller"
                )
            else:
                error = f"every worker that ran it was lost (the last: {lost[-1]})"
        return BatchFailure(batch, job.plan.batches[batch], attempts, error, trace)

    def _incidents(self, client, job: Job, started: float) -> list[Incident]:
        """What the run survived, from the scheduler's event log: workers removed while
        running our batches (with why: Dask's nanny over the memory limit, a signal seen by
        a local nanny, or only that the scheduler lost it), and attempts that raised."""
        events, workers = client.run_on_scheduler(_plain_events, started)
        workers = {**self._workers, **workers}
        limits = {address: limit for address, (_, limit) in workers.items()}
        ours = [m for t, m in events.get(BATCH_EVENTS, ()) if m.get("run") == job.run_id]
        pids = {address: pid for address, (pid, _) in workers.items() if pid is not None}
        pids.update({m["worker"]: m["pid"] for m in ours if m["state"] == "start"})
        memory = {m["worker"]: m for t, m in events.get("worker-restart-memory", ())}
        incidents = []
        for _, m in events.get("all", ()):
            if m.get("action") != "remove-worker" or m.get("expected"):
                continue
            address = m["worker"]
            batches = tuple(
                sorted(
                    int(match[1])
                    for key in m.get("processing-tasks", ())
                    if (match := re.fullmatch(rf"pdegen-batch-(\d+)-{job.run_id}", str(key)))
                )
            )
            if address in memory:
                limit = limits.get(address) or 0
                over = f"its {limit / 2**20:.0f} MiB limit" if limit else "its limit"
                rss = memory[address]["rss"] / 2**20
                reason = f"{MEMORY_REASON} (its memory use, {rss:.0f} MiB, passed 95% of {over})"
            elif address in pids and pids[address] in self._deaths.reasons:
                reason = self._deaths.reasons[pids[address]]
            else:
                reason = "the scheduler lost it without a reason (its process or host died?)"
            for batch in batches:
                self._lost_workers.setdefault(batch, []).append(reason)
            incidents.append(Incident(WORKER_LOST, address, reason, batches))
        for m in ours:
            if m["state"] == "error":
                incidents.append(Incident(BATCH_RETRIED, m["worker"], m["error"], (m["batch"],)))
        return incidents
