"""What a family declares about its data, and the check of those declarations.

The stored fields' axes (`FieldAxes`), one drawn sample (`Sample`), and `check_declarations`,
which `Family.__init_subclass__` runs when a family class is defined: a family that
contradicts itself (a name used twice, an `auto` solver its own operator cannot take, a time
axis without a time stepping) fails on import, not in a worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solvers.registry import METHODS, PRECONDITIONERS

SPACE_AXES = ("x", "y", "z")
TIME_AXIS = "t"
#: keys the loader adds to every item itself, which no field or parameter may take
RESERVED_NAMES = frozenset({"index"})


@dataclass(frozen=True)
class FieldAxes:
    """The axes of one stored field of one sample: an optional leading time axis, then space.

    A field exists on the node grid of every dimension in `dims` (a 3D-only component such as
    a velocity's z part says `dims=(3,)`).
    """

    time: bool = False
    dims: tuple[int, ...] = (2, 3)  # the grid dimensions it exists in (`Family.grid_dims`)

    def names(self, dim: int) -> tuple[str, ...]:
        """Axis names in array order: ("t",) when the field is a trajectory, then x, y (, z)."""
        return ((TIME_AXIS,) if self.time else ()) + SPACE_AXES[:dim]


@dataclass
class Sample:
    """One sample's inputs on the node grid, plus its scalar parameters.

    `inputs` are stored in a shard's /inputs group, `params` (scalars) in /params; their names
    are the family's declared `inputs` and `params`.
    """

    index: int
    inputs: dict[str, np.ndarray]
    params: dict[str, float] = field(default_factory=dict)


def check_declarations(cls: Any, base: Any) -> None:
    """Reject a family whose declarations contradict themselves, when the class is defined.

    The loader merges a sample's inputs, outputs and parameters into one dict, so a name used
    twice would silently overwrite one of them; an `auto` solver the family's own operator
    cannot take would fail every sample. Both are programming errors: TypeError on import.
    `base` is the class whose `time_stepping` means "none" (`Family`).
    """
    where = f"family {cls.__name__}"
    if not isinstance(cls.name, str) or not cls.name:
        raise TypeError(f"{where}: name must be a non-empty string")
    if not dataclasses.is_dataclass(getattr(cls, "Problem", None)):
        raise TypeError(f"{where}: Problem must be the dataclass of its recipe section")
    for flag in ("symmetric", "positive_definite", "shared_operator"):
        if not isinstance(getattr(cls, flag), bool):
            raise TypeError(f"{where}: {flag} must be True or False")
    if not isinstance(getattr(cls, "inputs", None), dict):
        raise TypeError(f"{where}: inputs must map each input field to its FieldAxes")
    if not isinstance(cls.outputs, dict) or not cls.outputs:
        raise TypeError(f"{where}: outputs must map at least one output field to its FieldAxes")
    if not isinstance(cls.params, tuple) or not all(isinstance(p, str) for p in cls.params):
        raise TypeError(f"{where}: params must be a tuple of parameter names")
    seen: dict[str, str] = {name: "reserved by the loader" for name in RESERVED_NAMES}
    declared = [("input", k) for k in cls.inputs] + [("output", k) for k in cls.outputs]
    for kind, name in [*declared, *(("parameter", p) for p in cls.params)]:
        if not (isinstance(name, str) and name.isidentifier()):
            raise TypeError(f"{where}: {kind} name {name!r} must be an identifier")
        if name in seen:
            raise TypeError(
                f"{where}: {name!r} is declared as {kind} but is already {seen[name]} "
                "(the loader merges inputs, outputs and parameters into one item)"
            )
        seen[name] = f"an {kind}" if kind[0] in "io" else f"a {kind}"
    for kind, fields in (("input", cls.inputs), ("output", cls.outputs)):
        for name, axes in fields.items():
            if not isinstance(axes, FieldAxes) or not set(axes.dims) <= set(cls.grid_dims):
                raise TypeError(
                    f"{where}: {kind} {name!r} must be a FieldAxes for dims {cls.grid_dims}"
                )
    times = any(a.time for a in (*cls.inputs.values(), *cls.outputs.values()))
    if not isinstance(getattr(cls, "discretisation", None), str):
        raise TypeError(f"{where}: discretisation must say how the PDE is discretised")
    if times != (cls.time_stepping is not base.time_stepping):
        raise TypeError(
            f"{where}: a family declares `time_stepping` exactly when a field has a time axis"
        )
    if not cls.grid_dims or not set(cls.grid_dims) <= {1, 2, 3}:
        raise TypeError(f"{where}: grid_dims must be some of 1, 2, 3")
    if set(cls.auto_solvers) != set(cls.grid_dims):
        raise TypeError(f"{where}: auto_solvers must name a (method, pc) for each of grid_dims")
    smoother = cls.multigrid_smoother
    by_dim = smoother if isinstance(smoother, dict) else {2: smoother, 3: smoother}
    if set(by_dim) != {2, 3} or not all(isinstance(v, str) for v in by_dim.values()):
        raise TypeError(f"{where}: multigrid_smoother must be one name or a name for dims 2 and 3")
    choices = [(f"auto_solvers[{d}]", m, pc) for d, (m, pc) in cls.auto_solvers.items()]
    for label, method, pc in [*choices, ("iterative_pc", None, cls.iterative_pc)]:
        if method is not None and (method not in METHODS or not cls.supports(METHODS[method])):
            raise TypeError(f"{where}: {label}: method {method!r} is not usable here")
        if pc not in PRECONDITIONERS or not cls.supports(PRECONDITIONERS[pc]):
            raise TypeError(f"{where}: {label}: preconditioner {pc!r} is not usable here")
        if method is not None and METHODS[method].direct != PRECONDITIONERS[pc].factorisation:
            raise TypeError(f"{where}: {label}: {method!r} cannot run with pc {pc!r}")
