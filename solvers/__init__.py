"""Sorted Krylov recycling on PETSc: ordering, GCRO-DR, recycling CG and baselines."""

from solvers.ordering import chain_length, order_systems
from solvers.sequence import METHODS, SolveResult, solve_sequence

__all__ = ["METHODS", "SolveResult", "chain_length", "order_systems", "solve_sequence"]
