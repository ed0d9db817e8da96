"""Recipe checks that the per-field rules of the schema cannot express.

The schema checks each value on its own (type, range). Some values pass that and still fail
later, deep inside a run: after the output directory exists, with a traceback or a hang. Each
check here names the field and runs at recipe load, before anything is written:

- integers that PETSc receives (iteration limit, GMRES restart, recycle count) must fit its
  32-bit integer, or petsc4py raises OverflowError in every batch;
- the dataset name and output directory must be file names this system can create (a NUL
  byte, an unencodable character or a 300-character name raised ValueError, UnicodeError or
  OSError from `mkdir`);
- a random field's scale must be a finite number: the default sigma = tau^(alpha - d/2)
  overflows for large alpha (OverflowError while sampling, or while the Helmholtz check
  bounds the coefficient), and a lognormal coefficient scale * exp(field) must stay finite
  and positive (exp underflowing to 0 makes the matrix singular: harmonic means 0/0);
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from pdegen.discretisation.fields import grf_pointwise_std_bound
from pdegen.errors import RecipeError
from pdegen.messages import show
from pdegen.specs import CoefficientSpec, FieldSpec, field_specs

PETSC_INT_MAX = 2**31 - 1  # PetscInt without --with-64-bit-indices (scripts/install.sh)
NAME_MAX = 255  # bytes in one path component (Linux, macOS)
PATH_MAX = 4096


def check_limits(recipe) -> None:
    """Raise RecipeError (without the file prefix) for the first value that cannot run."""
    for name in ("max_iterations", "restart", "recycle"):
        value = getattr(recipe.solver, name)
        if value > PETSC_INT_MAX:
            raise RecipeError(
                f"solver.{name}: {show(value)} is out of range (must be at most "
                f"{PETSC_INT_MAX}, PETSc's largest integer)"
            )
    _check_file_name("name", recipe.name)
    _check_path("output.dir", recipe.output.dir)
    for where, spec in field_specs(recipe.problem, "problem"):
        _check_field_scale(where, spec, recipe.grid.dim)


def _check_file_name(where: str, name: str) -> None:
    _check_path(where, name)
    if len(os.fsencode(name)) > NAME_MAX:
        raise RecipeError(
            f"{where}: too long ({len(name)} characters; at most {NAME_MAX} bytes, since it "
            "names the dataset directory)"
        )


def _check_path(where: str, path: str) -> None:
    if "\0" in path:
        raise RecipeError(f"{where}: {show(path)} contains a NUL character (not allowed in paths)")
    try:
        raw = os.fsencode(path)
    except UnicodeError:
        raise RecipeError(
            f"{where}: {show(path)} cannot be encoded as a file name on this system"
        ) from None
    if len(raw) > PATH_MAX or any(len(part) > NAME_MAX for part in raw.split(b"/")):
        raise RecipeError(
            f"{where}: too long for a path ({len(raw)} bytes; at most {PATH_MAX}, and "
            f"{NAME_MAX} per directory name)"
        )


def _field_ok(spec: FieldSpec, dim: int) -> bool:
    """True when the field's values (and a lognormal coefficient built from them) are finite
    numbers, judged from a 3-sigma bound on the pointwise standard deviation."""
    try:
        std = _std_bound(dim, spec.alpha, spec.tau, spec.sigma)
        low, high = spec.mean - 3 * std, spec.mean + 3 * std
        if not (math.isfinite(low) and math.isfinite(high)):
            return False
        if isinstance(spec, CoefficientSpec) and spec.kind == "lognormal":
            lowest, highest = spec.scale * math.exp(low), spec.scale * math.exp(high)
            return lowest > 0 and math.isfinite(highest)
    except (OverflowError, ZeroDivisionError):
        return False
    return True


@functools.lru_cache(maxsize=256)
def _std_bound(dim: int, alpha: float, tau: float, sigma: float | None) -> float:
    """grf_pointwise_std_bound, remembered: in 3D it sums 64^3 terms (10 ms per field), and
    a recipe is checked again at every load."""
    with np.errstate(all="ignore"):
        return grf_pointwise_std_bound(dim, alpha, tau, sigma)


def _check_field_scale(where: str, spec: FieldSpec, dim: int) -> None:
    if _field_ok(spec, dim):
        return
    name = _culprit(spec, lambda s: _field_ok(s, dim))
    kind = "scale * exp(field)" if getattr(spec, "kind", "") == "lognormal" else "the field"
    raise RecipeError(
        f"{where}.{name}: {show(getattr(spec, name))} makes {kind} overflow or vanish in "
        f"floating point (alpha {spec.alpha:g}, tau {spec.tau:g}, sigma "
        f"{'tau^(alpha - d/2)' if spec.sigma is None else format(spec.sigma, 'g')}, "
        f"mean {spec.mean:g})"
    )


def _culprit(spec: Any, ok: Callable[[Any], bool]) -> str:
    """The parameter whose default alone repairs `spec` (the first such), to name it. The
    numbers are tried before `kind`: switching a lognormal coefficient to a threshold also
    "repairs" a huge `scale`, but the number is what the user has to change."""
    changed = [
        f
        for f in dataclasses.fields(spec)
        if f.default is not dataclasses.MISSING and getattr(spec, f.name) != f.default
    ]
    changed.sort(key=lambda f: f.name == "kind")  # stable: the numbers in field order first
    for f in changed:
        if ok(dataclasses.replace(spec, **{f.name: f.default})):
            return f.name
    return changed[0].name if changed else "alpha"
