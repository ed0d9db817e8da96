"""The residual bound a stored solution must meet, which `pdegen check --deep` asks each
family for (`Family.stored_residuals`) after re-assembling a sample from its stored inputs.

Why a bound and not the solver's rtol alone: the stored inputs and solution are rounded (to
float32, or only by the two residual computations for float64), and rounding moves the
residual by up to c eps (|| |A| |u| || + ||b||) / ||b|| (docs/format.md, "Checking a dataset").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import factorized

#: c of the documented loss: the stored pair (inputs, solution) satisfies
#: ||b - A u|| <= rtol ||b|| + c eps (|| |A| |u| || + ||b||)
ROUNDING_FACTOR = 4.0
#: eps per storage dtype: float32's unit roundoff; for float64 storage only the rounding of
#: the two residual computations (the writer's and this one, rows of at most 7 terms:
#: 2 gamma_7 < 16 * 2^-53 = c eps)
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-51}

#: one re-checked solve: (its step, or None for a steady solve; relative residual; bound)
StepResidual = tuple[int | None, float, float]


def linear_residual(
    A: sp.spmatrix, u: np.ndarray, b: np.ndarray, b_magnitude: float, rtol: float, eps: float
) -> tuple[float, float]:
    """(||b - A u|| / ||b||, the bound): rtol plus c eps (|| |A| |u| || + |b|) / ||b||, the
    residual that rounding the stored inputs and solution to `eps` can add; `b_magnitude`
    bounds how far rounding the inputs can move b."""
    norm_b = float(np.linalg.norm(b))
    norm_r = float(np.linalg.norm(b - A @ u))
    rounding = float(np.linalg.norm(abs(A) @ np.abs(u))) + b_magnitude
    if norm_b == 0.0:
        return (0.0 if norm_r == 0.0 else math.inf), rtol
    return norm_r / norm_b, rtol + ROUNDING_FACTOR * eps * rounding / norm_b


@dataclass
class Solved:
    """What a trajectory reads of a solve: its solution."""

    x: np.ndarray


def scipy_lu_solve() -> Callable[..., Solved]:
    """A `solve(A, b, x0)` for re-running a trajectory in `check --deep` without PETSc:
    scipy's sparse LU, a second implementation of every step's solve, factorised once per
    matrix object (the trajectories hand the same object to every step of one size, and keep
    it alive for the whole march)."""
    factors: dict[int, Callable[[np.ndarray], np.ndarray]] = {}

    def solve(A: sp.spmatrix, b: np.ndarray, x0: np.ndarray | None = None) -> Solved:
        if id(A) not in factors:
            factors[id(A)] = factorized(A.tocsc())
        return Solved(factors[id(A)](b))

    return solve


def relative_difference(fresh: np.ndarray, stored: np.ndarray) -> float:
    """||fresh - stored|| / ||stored|| (0 for a zero stored frame): how far a frame that
    `check --deep` computed again lies from the stored one."""
    size = float(np.linalg.norm(stored))
    return float(np.linalg.norm(fresh - stored)) / size if size else 0.0
