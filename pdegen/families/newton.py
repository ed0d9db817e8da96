"""What the Newton families share: one Newton solver per chain, and their /stats columns.

A family instance lives for one batch (`pdegen.run.batch.solve_rows`), as does its chain solver,
so the Newton solver (one PETSc SNES) is made once per chain and reused sample after sample:
whatever the chain carries (recycled space, factorisation, multigrid set-up) persists across
Newton steps, time steps and samples.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from pdegen.families.base import Family
from pdegen.families.residuals import StepResidual
from pdegen.specs import NewtonSpec


class NewtonFamily(Family):
    """A family whose samples are nonlinear solves (`solvers.newton.NewtonSolver`)."""

    #: newton_iterations: Newton steps summed over the sample's nonlinear solves (one, or one
    #: per time step); newton_residual: the worst final ||F(u)|| / ||F(u_0)|| among them
    stats_columns: ClassVar[dict[str, str]] = {
        "newton_iterations": "int32",
        "newton_residual": "float64",
    }

    @property
    def newton_spec(self) -> NewtonSpec:
        return self.problem.newton

    def newton(self, chain):
        """The Newton solver over `chain` (made at the first call for that chain)."""
        from solvers.newton import NewtonSolver  # PETSc: not needed to validate a recipe

        solver = getattr(self, "_newton", None)
        if solver is None or solver.chain is not chain:
            spec = self.newton_spec
            solver = NewtonSolver(chain, spec.rtol, spec.atol, spec.max_it, spec.line_search)
            self._newton = solver
        return solver

    def newton_march(self, u0: np.ndarray, step_problem, newton_solve) -> tuple[list, list]:
        """March `time_stepping` from u0 with one Newton solve per step: `step_problem(u, t,
        step)` gives the step's (F, J), `newton_solve(F, J, x0)` a result with `x` and
        `converged`. After a step whose Newton solve fails the trajectory has no meaning: the
        later steps are not attempted (measured: a failed Allen-Cahn march costs up to 40 s
        per sample in 10000-iteration linear solves that all fail), their frames are NaN and
        their results say `NOT_SOLVED`, so that the sample, flagged by its first failure,
        still has one result per step."""
        failed = False

        def advance(u: np.ndarray, t: float, step: float):
            nonlocal failed
            if failed:
                from solvers.newton import NewtonResult  # PETSc: only once a march fails

                u = np.full_like(u, np.nan)
                return u, NewtonResult(u, 0, np.inf, False, "NOT_SOLVED", 0.0)
            F, J = step_problem(u, t, step)
            result = newton_solve(F, J, u)
            failed = not result.converged
            return result.x, result

        return self.time_stepping.march(np.asarray(u0, dtype=float).copy(), advance)

    def stored_residuals(
        self, sample, outputs: dict[str, np.ndarray], rtol: float, eps: float
    ) -> list[StepResidual]:
        """For `pdegen check --deep`: (step or None, ||F(u)|| / ||F(u_0)||, bound) of the
        stored solution, re-evaluated from the stored inputs. The bound is what a converged
        Newton solve guarantees, max(rtol, atol / ||F(u_0)||) with the recipe's
        `problem.newton` tolerances, plus c eps (`ROUNDING_FACTOR`, `eps`) times
        (|| |J| |u| || + ||F(u_0)||) / ||F(u_0)||: the rounding of the stored fields."""
        raise NotImplementedError

    def residual_tolerance(self, rtol: float) -> str:
        return "problem.newton's tolerances"

    def newton_bound(self, first: float, jacobian, u, slack: float) -> float:
        """The bound of `stored_residuals` for one nonlinear solve whose start had ||F|| =
        `first`, with J = `jacobian` at the stored state u."""
        spec = self.newton_spec
        if first == 0.0:
            return spec.rtol
        rounding = float(np.linalg.norm(abs(jacobian) @ np.abs(u))) + first
        return max(spec.rtol, spec.atol / first) + slack * rounding / first

    def sample_stats(self, results: list) -> dict[str, float]:
        return {
            "newton_iterations": sum(r.newton_iterations for r in results),
            "newton_residual": max(r.relative_norm for r in results),
        }
