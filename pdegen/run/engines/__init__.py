"""Engines run the same plan: local worker processes (default), Dask, MPI or serial.

`ENGINES` is the one list of engine names: the CLI's `--engine` choices and help, `generate`
and the tests read it. Entries name their class by module, imported only when that engine is
made (Dask and mpi4py load only for the engine that needs them), and the shared job types are
imported on first use too, so reading the names (`pdegen --help`) starts neither PETSc nor MPI.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Engine:
    """Where batches run: the class that runs them and a line for the CLI's help."""

    module: str
    cls: str
    summary: str
    takes_workers: bool = False  # accepts --workers (and, Dask only, --scheduler)

    def make(self, workers: int | None = None, scheduler: str | None = None) -> Any:
        factory = getattr(importlib.import_module(self.module), self.cls)
        return factory(workers, scheduler) if self.takes_workers else factory()


ENGINES: dict[str, Engine] = {
    "local": Engine(
        "pdegen.run.engines.local_engine",
        "LocalEngine",
        "worker processes forked on this machine (default)",
        takes_workers=True,
    ),
    "dask": Engine(
        "pdegen.run.engines.dask_engine",
        "DaskEngine",
        "a Dask cluster: a local one, or --scheduler's (the default with --scheduler)",
        takes_workers=True,
    ),
    "mpi": Engine("pdegen.run.engines.mpi_engine", "MPIEngine", "MPI ranks under mpirun/srun"),
    "serial": Engine("pdegen.run.engines.serial", "SerialEngine", "this process"),
}


def _default_engine() -> str:
    """`local` on Linux, else `dask` (the local engine forks a process that has imported
    numpy, scipy and PETSc: safe on Linux, not on macOS, whose system libraries may not
    survive a fork, nor possible on Windows).

    Why `local` and not a local Dask cluster: on 2 cores it makes 4000 Darcy samples at 64^2
    in well under the LocalCluster's time (docs/benchmarks.md, "Engines at small samples"):
    its workers are forked, not spawned and re-imported, and no scheduler sits between
    batches. Dask stays the engine of clusters (`--scheduler`, dask-jobqueue).
    """
    import sys

    return "local" if sys.platform.startswith("linux") else "dask"


DEFAULT_ENGINE = _default_engine()


def engine_for(engine: str | None, scheduler: str | None) -> str:
    """The engine a run uses: the one named, else Dask with a scheduler, else the default."""
    if engine is None:
        return "dask" if scheduler else DEFAULT_ENGINE
    return engine


def make_engine(name: str, workers: int | None = None, scheduler: str | None = None):
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r} (allowed: {', '.join(ENGINES)})")
    return ENGINES[name].make(workers, scheduler)


_BASE = ("BatchDone", "BatchFailure", "Job", "run_batch")


def __getattr__(name: str) -> Any:
    if name in _BASE:
        return getattr(importlib.import_module("pdegen.run.engines.base"), name)
    raise AttributeError(f"module 'pdegen.run.engines' has no attribute {name!r}")


__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "BatchDone",
    "BatchFailure",
    "Engine",
    "Job",
    "engine_for",
    "make_engine",
    "run_batch",
]
