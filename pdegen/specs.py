"""Recipe building blocks shared by the families: random fields, ranges, grids, the solver.

Each is a frozen dataclass whose field metadata carries its validation rules (gt, ge, lt, le,
choices), read by `pdegen.recipe.schema`. Defaults here are the documented defaults of a recipe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from solvers import registry as solver_registry
from solvers.settings import DEFAULTS


def rule(default: Any = dataclasses.MISSING, **rules: Any) -> Any:
    """A dataclass field with validation rules in its metadata."""
    return dataclasses.field(default=default, metadata=rules)


def nested(cls: type, **defaults: Any) -> Any:
    """A dataclass-typed field whose default is `cls(**defaults)`."""
    return dataclasses.field(default_factory=lambda: cls(**defaults))


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """A Gaussian random field: covariance sigma^2 (-Laplacian + tau^2)^(-alpha), mean `mean`.

    sigma defaults to tau^(alpha - d/2); `modes` (per axis) defaults to the node count, and a
    fixed value makes the field the same function at every resolution.
    """

    alpha: float = rule(2.0, gt=1.0)
    tau: float = rule(3.0, gt=0.0)
    sigma: float | None = rule(None, gt=0.0)
    modes: int | None = rule(None, ge=1)
    mean: float = 0.0


@dataclasses.dataclass(frozen=True)
class CoefficientSpec(FieldSpec):
    """A positive coefficient from a GRF: thresholded to high/low, or scale * exp(field)."""

    kind: Literal["threshold", "lognormal"] = "threshold"
    high: float = rule(12.0, gt=0.0)
    low: float = rule(3.0, gt=0.0)
    scale: float = rule(1.0, gt=0.0)


@dataclasses.dataclass(frozen=True)
class RangeSpec:
    """A random scalar on [min, max] from a named distribution (min == max: a constant).

    Bounded distributions only, so that recipes can be checked before sampling (wavelength
    resolution, indefiniteness). "loguniform" spreads samples evenly over scales (min > 0).
    """

    min: float
    max: float
    distribution: Literal["uniform", "loguniform"] = "uniform"

    def draw(self, rng) -> float:
        if self.distribution == "loguniform":
            return float(np.exp(rng.uniform(np.log(self.min), np.log(self.max))))
        return float(rng.uniform(self.min, self.max))


@dataclasses.dataclass(frozen=True)
class GridSpec:
    """n interior nodes per axis (n + 2 with the boundary), unit square (dim 2) or cube (3)."""

    n: int = rule(ge=3, le=4096)
    dim: int = rule(2, ge=2, le=3)


@dataclasses.dataclass(frozen=True)
class NewtonSpec:
    """Newton's method for the nonlinear families (`solvers.newton`: PETSc SNES newtonls).

    Converged when ||F(u)||_2 <= max(rtol ||F(u_0)||_2, atol); each Newton step's linear
    system is solved by the recipe's `solver:` section, to its `rtol`.
    """

    rtol: float = rule(1e-8, gt=0.0, lt=1.0)
    atol: float = rule(1e-10, ge=0.0)
    max_it: int = rule(50, ge=1, le=1000)
    line_search: Literal["bt", "basic"] = "bt"


# The solver's names come from `solvers.registry`; "auto" lets the family choose
# (`Family.resolve_solver`, `Family.resolve_ordering`).
METHODS = ("auto", *solver_registry.METHODS)
PRECONDITIONERS = ("auto", *solver_registry.PRECONDITIONERS)
ORDERINGS = ("auto", *solver_registry.ORDERINGS)


@dataclasses.dataclass(frozen=True)
class SolverSpec:
    """A recipe's `solver:` section; its defaults are `solvers.settings.DEFAULTS`."""

    method: str = rule("auto", choices=METHODS)
    pc: str = rule("auto", choices=PRECONDITIONERS)
    rtol: float = rule(DEFAULTS.rtol, gt=0.0, lt=1.0)
    max_iterations: int = rule(DEFAULTS.max_iterations, ge=1)
    restart: int = rule(DEFAULTS.restart, ge=2)
    recycle: int = rule(DEFAULTS.recycle, ge=0)
    warm_start: bool = False
    ordering: str = rule("auto", choices=ORDERINGS)


def field_specs(spec: Any, where: str) -> Iterator[tuple[str, FieldSpec]]:
    """Every random field in a problem section, with its dotted path."""
    if isinstance(spec, FieldSpec):
        yield where, spec
        return
    if dataclasses.is_dataclass(spec):
        for f in dataclasses.fields(spec):
            yield from field_specs(getattr(spec, f.name), f"{where}.{f.name}")
