"""The time-stepping declaration of a time-dependent family, and the one march loop.

A family with a trajectory declares a `TimeStepping` (`Family.time_stepping`); every consumer
reads that instead of asking which family it has: the march loop below, `pdegen check --deep`
(frame 0 against the initial input, then the family's per-step residuals), the dataset card
(the scheme, step and frames) and The Well export (which input is frame 0 of which output).

Why the recorded frames are separate from the internal step: the datasets people train on
record a frame every fixed time (FNO's Navier-Stokes: every time unit) while the integrator's
step is set by stability or accuracy (a CFL number, a stiff reaction). The march lands on
every frame time exactly: between two frames it takes equal steps no longer than `dt`, and
exactly `dt` where the frames lie on multiples of it (to rounding), so a scheme whose matrices
were built for `dt` is never handed another step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from solvers.stepping import substeps

State = TypeVar("State")

#: scheme name -> how the card and docs write it
SCHEME_NAMES = {
    "backward-euler": "backward Euler (theta = 1, first order, L-stable)",
    "crank-nicolson": "Crank-Nicolson (theta = 1/2, second order, A-stable)",
    "cnab2": (
        "CNAB2 (Crank-Nicolson for the diffusion, second-order Adams-Bashforth for the "
        "reaction, forward Euler at the first step; second order)"
    ),
    "newmark": (
        "Newmark's average acceleration (beta = 1/4, gamma = 1/2: second order, "
        "unconditionally stable, energy-conserving)"
    ),
    "leapfrog": "explicit leapfrog (central differences in time, second order, no linear solve)",
    "oseen-projection": (
        "backward Euler with the convection linearised about the last step (Oseen), then an "
        "incremental pressure-correction projection (first order)"
    ),
    "oseen-projection-bdf2": (
        "BDF2 (second-order backward differences, variable-step) with the convection "
        "linearised about the extrapolation 2u^n - u^(n-1) (Oseen), then an incremental "
        "pressure-correction projection (second order in the velocity; backward Euler at "
        "the first step)"
    ),
    "etdrk4": (
        "ETDRK4 (Cox and Matthews' exponential Runge-Kutta, fourth order, the linear part "
        "exact; Kassam and Trefethen's contour coefficients)"
    ),
}
#: theta of the one-step theta schemes
THETA = {"backward-euler": 1.0, "crank-nicolson": 0.5}


@dataclass(frozen=True, eq=False)
class TimeStepping:
    """How a family's trajectory is marched and recorded.

    `scheme` names the integrator (`SCHEME_NAMES`: the theta schemes today; explicit, IMEX
    and exponential integrators declare their own names); `dt` is the internal step (the
    largest one taken); `frame_times` are the recorded times, frame 0 first; with
    `initial_frame` frame 0 is the initial state itself, and `initial_input` names the input
    field it equals (None when the initial state is not stored as an input); `trajectory` is
    the output that holds the frames.
    """

    scheme: str
    dt: float
    frame_times: np.ndarray
    initial_frame: bool = True
    initial_input: str | None = None
    trajectory: str = "solution"

    @property
    def theta(self) -> float:
        """The implicit weight of a one-step theta scheme."""
        return THETA[self.scheme]

    @property
    def description(self) -> str:
        return SCHEME_NAMES.get(self.scheme, self.scheme)

    def substeps(self, start: float, end: float) -> tuple[int, float]:
        """(steps, step) that march from frame time `start` to `end` (`solvers.stepping`)."""
        return substeps(start, end, self.dt)

    @property
    def steps(self) -> int:
        """The internal steps of one trajectory."""
        times = self.frame_times
        return sum(self.substeps(times[k], times[k + 1])[0] for k in range(len(times) - 1))

    def march(
        self,
        state: State,
        advance: Callable[[State, float, float], tuple[State, Any]],
        record: Callable[[State], Any] = np.copy,
    ) -> tuple[list, list]:
        """March from `state` at frame_times[0]: `advance(state, t, step)` returns the state
        at t + step and that step's solve result. Returns (frames, results): one recorded
        frame per frame time (`record(state)`; frame 0 only with `initial_frame`) and one
        result per internal step, in order."""
        times = self.frame_times
        frames = [record(state)] if self.initial_frame else []
        results = []
        for k in range(len(times) - 1):
            count, step = self.substeps(times[k], times[k + 1])
            for j in range(count):
                t = times[k] if j == 0 else times[k] + j * step
                state, result = advance(state, t, step)
                results.append(result)
            frames.append(record(state))
        return frames, results


def uniform_frames(dt: float, steps: int) -> np.ndarray:
    """Frame times 0, dt, ..., steps dt: a frame after every internal step."""
    with np.errstate(over="ignore"):  # a dt that overflows is refused by the family's check
        return dt * np.arange(steps + 1)


def backward_difference(
    u: np.ndarray,
    previous: np.ndarray | None = None,
    step: float = 1.0,
    previous_step: float | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """The backward-difference step from u (and `previous`, the state one step of
    `previous_step` before): (a0, history, w) with a0 u^(n+1) - history = step x (the right-
    hand side at the new time), and w the extrapolated state a linearised term is taken
    about. Backward Euler without `previous` (a0 = 1, history = w = u); BDF2 with it, its
    variable-step form (ratio r = step / previous_step): a0 = (1 + 2r) / (1 + r), history =
    (1 + r) u - r^2 / (1 + r) u^(n-1), w = (1 + r) u - r u^(n-1) (3/2, 2u - u^(n-1)/2 and
    2u - u^(n-1) at a constant step). Why variable-step: frames that do not fall on multiples
    of dt change the step between frame intervals (`substeps`)."""
    if previous is None:
        return 1.0, u, u
    r = step / previous_step
    history = (1.0 + r) * u - (r * r / (1.0 + r)) * previous
    return (1.0 + 2.0 * r) / (1.0 + r), history, (1.0 + r) * u - r * previous
