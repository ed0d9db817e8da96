"""Engines run the same plan: serial, Dask (default) or MPI."""

from __future__ import annotations

from pdegen.engines.base import BatchDone, BatchFailure, Job, run_batch

ENGINES = ("dask", "mpi", "serial")


def make_engine(name: str, workers: int | None = None, scheduler: str | None = None):
    if name == "serial":
        from pdegen.engines.serial import SerialEngine

        return SerialEngine()
    if name == "dask":
        from pdegen.engines.dask_engine import DaskEngine

        return DaskEngine(workers, scheduler)
    if name == "mpi":
        from pdegen.engines.mpi_engine import MPIEngine

        return MPIEngine()
    raise ValueError(f"unknown engine {name!r} (allowed: {', '.join(ENGINES)})")


__all__ = ["ENGINES", "BatchDone", "BatchFailure", "Job", "make_engine", "run_batch"]
