"""What the checks share: file names and patterns, the expected schema's constants, and small
helpers for values and messages."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

#: the directory of figures `pdegen show` writes (PNG files only)
FIGURES_DIR = "figures"
SHARD_PATTERN = re.compile(r"shard-(\d{5,})\.h5")
TEMPORARY_PATTERN = re.compile(r"\..+\.tmp-.+")  # `pdegen.dataset.shards._temporary_name`

#: problem lines printed per kind before the rest of that kind is only counted
LINES_PER_KIND = 10
#: /stats columns and their dtypes (docs/format.md, "Inside a shard")
STATS_COLUMNS = {
    "iterations": np.dtype("int32"),
    "residual": np.dtype("float64"),
    "converged": np.dtype("bool"),
    "reason": np.dtype("S32"),
    "seconds": np.dtype("float64"),
    "solves": np.dtype("int32"),
    "chain_position": np.dtype("int32"),
}
GROUPS = ("inputs", "outputs", "params", "stats", "grid")
VERSION_KEYS = ("python", "petsc", "petsc4py", "mpi4py", "numpy", "scipy", "h5py", "dask", "pdegen")
#: index.json keys with their JSON types; the last three exist since output.splits does
INDEX_KEYS: dict[str, tuple[type, ...]] = {
    "format_version": (int,),
    "dataset": (str,),
    "family": (str,),
    "recipe_sha256": (str,),
    "samples": (int,),
    "ordering_seconds": (int, float),
    "chain_length": (int, float, type(None)),
    "shards": (list,),
}
SPLIT_KEYS: dict[str, tuple[type, ...]] = {
    "split_fractions": (dict,),
    "splits": (dict,),
    "field_stats": (dict,),
}
#: h5py's errors on a damaged file, a missing member or an unexpected type
READ_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError)


@dataclass
class ShardFindings:
    """What the shard pass learnt about one indexed shard, for the later checks."""

    entry: dict[str, Any]
    path: Path
    partials: dict[str, Any] | None = None  # recomputed per-shard field moments
    indices: list[int] | None = None  # the file's params/index
    converged: np.ndarray | None = None
    fields_ok: bool = False  # every input and output present with its shape: deep may read


def listing(values: Iterable[Any], most: int = 8) -> str:
    values = list(values)
    head = ", ".join(map(str, values[:most]))
    return head + (f", ... ({len(values)} in all)" if len(values) > most else "")


def samples_phrase(indices: Iterable[Any]) -> str:
    """'sample 5' or 'samples 1, 2, ...': which samples a line is about."""
    indices = list(indices)
    return f"sample{'s' if len(indices) != 1 else ''} {listing(indices)}"


def is_json_type(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not isinstance(value, bool)


def same_value(a: Any, b: Any) -> bool:
    """JSON-like values equal, floats to 1e-12 relative (the writer's numbers round-trip
    exactly through JSON; the margin only spares a future change of summation order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def attribute(f: h5py.File, name: str) -> Any:
    value = f.attrs.get(name)
    return value.item() if isinstance(value, np.generic) else value


def as_float64(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
