"""Sorted Krylov recycling on PETSc: ordering, GCRO-DR, recycling CG and baselines."""

from solvers.ordering import chain_length, order_systems
from solvers.sequence import METHODS, ChainSolver, SolveResult, solve_sequence

__all__ = [
    "METHODS",
    "ChainSolver",
    "SolveResult",
    "chain_length",
    "order_systems",
    "solve_sequence",
]
