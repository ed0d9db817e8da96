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

    sigma defaults to tau^(alpha - d/2); `modes` (per axis) defaults to the stored points per
    axis (nodes or cells), and a fixed value makes the field the same function at every
    resolution.
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
class PeriodicFieldSpec:
    """A random field on a periodic grid (`pdegen.discretisation.fields`), by `law`:

    - `grf`: FNO's periodic Gaussian random field (its `random_fields.GaussianRF`), mean
      zero, mode variance 2 sigma^2 (4 pi^2 |k|^2 / L^2 + tau^2)^(-alpha); sigma defaults to
      tau^(alpha - d/2). FNO's Navier-Stokes: alpha 2.5, tau 7; its Burgers: 2, 5, sigma 25.
    - `sines` (1D): PDEBench's law, `modes` sine modes of wavenumbers 1 .. `max_wavenumber`,
      amplitudes U(0, 1), phases U(0, 2 pi); with probability `absolute` the absolute value, a
      random sign, with probability `window` a tanh window.

    `rescale` maps each draw affinely onto [0, 1] (PDEBench's diffusion-reaction initial
    states); `scale` multiplies it (after the rescaling).
    """

    law: Literal["grf", "sines"] = "grf"
    alpha: float = rule(2.5, gt=0.5)
    tau: float = rule(7.0, gt=0.0)
    sigma: float | None = rule(None, gt=0.0)
    modes: int = rule(2, ge=1, le=64)
    max_wavenumber: int = rule(4, ge=1)
    absolute: float = rule(0.1, ge=0.0, le=1.0)
    window: float = rule(0.1, ge=0.0, le=1.0)
    rescale: bool = False
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
    """The grid, in 1, 2 or 3 dimensions: `n` points per axis, on a domain of `length` per
    axis (one number for every axis, or one per axis).

    What `n` counts depends on the boundary: on a non-periodic axis the unknowns are the n
    interior nodes (n + 2 nodes with the boundary, the unit interval); on a periodic axis the
    n points j L / n, j = 0 .. n - 1 (the point at L is the one at 0). `periodic` (one value,
    or one per axis) is the family's own when omitted: the spectral families are periodic,
    the others are not; a family refuses what it cannot solve (`Family.check_grid`).
    """

    n: int = rule(ge=3, le=65536)
    dim: int = rule(2, ge=1, le=3)
    periodic: bool | tuple[bool, ...] | None = None
    length: float | tuple[float, ...] = rule(1.0, gt=0.0)
    #: where the values live on a bounded grid: `nodes` (n interior nodes per axis, the
    #: boundary nodes stored with their Dirichlet values) or `cells` (n cells per axis, the
    #: values at their centres, the walls on their outer faces); `Family.layouts` says which
    #: a family takes, and None (left out) is the family's own
    layout: Literal["nodes", "cells"] | None = None

    def per_axis(self, name: str) -> tuple:
        """`name`'s value for each of the `dim` axes (a single value applies to all)."""
        value = getattr(self, name)
        return tuple(value) if isinstance(value, tuple) else (value,) * self.dim

    @property
    def periodic_axes(self) -> tuple[bool, ...]:
        return self.per_axis("periodic")

    @property
    def lengths(self) -> tuple[float, ...]:
        return self.per_axis("length")


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
    #: ranks that solve each sample together (the MPI engine; `pdegen.run.group`)
    ranks_per_sample: int = rule(1, ge=1)
    #: the most samples one worker solves in a row, carrying what it can from each to the
    #: next (a batch, the unit of work); None: chosen by `pdegen.recipe.sharding` when the
    #: recipe is resolved. A batch never spans two shards (`output.shard_size`).
    batch_size: int | None = rule(None, ge=1)


def field_specs(spec: Any, where: str) -> Iterator[tuple[str, FieldSpec]]:
    """Every random field in a problem section, with its dotted path."""
    if isinstance(spec, FieldSpec):
        yield where, spec
        return
    if dataclasses.is_dataclass(spec):
        for f in dataclasses.fields(spec):
            yield from field_specs(getattr(spec, f.name), f"{where}.{f.name}")
