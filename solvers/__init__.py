"""Sorted Krylov recycling on PETSc: ordering, GCRO-DR, recycling CG and baselines.

The names below are imported on first use, so that `solvers.registry` (the method,
preconditioner and ordering names, read by recipe validation) is importable without starting
PETSc.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "METHODS": "solvers.registry",
    "ORDERINGS": "solvers.registry",
    "PRECONDITIONERS": "solvers.registry",
    "chain_length": "solvers.ordering",
    "order_systems": "solvers.ordering",
    "ChainSolver": "solvers.sequence",
    "SolveResult": "solvers.sequence",
    "solve_sequence": "solvers.sequence",
    "NewtonResult": "solvers.newton",
    "NewtonSolver": "solvers.newton",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'solvers' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
