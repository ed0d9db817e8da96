"""Normalisation statistics of stored fields: per-shard partial moments, merged exactly.

Each shard's training samples give partial moments per field (count, mean, sum of squared
deviations M2, min, max; for a field with a time axis also per frame). Partials are merged with
the pairwise update of Chan, Golub and LeVeque (1979), in batch order, so the result depends
only on the stored data: every engine, worker count and resumed run gives the same numbers, to
the bit. Moments are taken in float64 over the values as stored (after any float32 conversion),
over every grid point of every training sample that converged; `std` is the population
standard deviation (ddof 0), which is what normalising a field by (u - mean) / std uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

Partial = dict[str, Any]  # JSON-ready: floats round-trip exactly through json (repr)
KEYS = ("count", "mean", "m2", "min", "max")


def _columns(per: list[Partial], keys: tuple[str, ...] = KEYS) -> dict[str, list]:
    return {key: [p[key] for p in per] for key in keys}


def _row(frames: Mapping[str, list], t: int) -> Partial:
    return {key: frames[key][t] for key in frames}


def partial_moments(values: np.ndarray, time_axis: bool, compiled: bool = True) -> Partial:
    """Moments of `values` (samples on axis 0; then the time axis if `time_axis`); with
    `compiled` False by numpy alone (`_mean_and_m2`: the same bits)."""
    values = np.asarray(values, dtype=np.float64)
    out = _moments(values, compiled)
    if time_axis:
        frames = np.moveaxis(values, 1, 0).reshape(values.shape[1], -1)
        out["frames"] = _columns([_moments(frame, compiled) for frame in frames])
    return out


def _moments(values: np.ndarray, compiled: bool) -> Partial:
    count = int(values.size)
    if count == 0:
        return {"count": 0, "mean": 0.0, "m2": 0.0, "min": None, "max": None}  # strict JSON
    mean, m2 = _mean_and_m2(values, compiled)
    return {
        "count": count,
        "mean": mean,
        "m2": m2,
        "min": float(values.min()),
        "max": float(values.max()),
    }


def _mean_and_m2(values: np.ndarray, compiled: bool = True) -> tuple[float, float]:
    """values.mean() and np.square(values - mean).sum(), by the compiled kernel where it is
    built and `compiled` (`pdegen_sum_and_m2` in solvers/csrc/moments.c: numpy's pairwise
    order, so the same bits, tested) for a C-contiguous float64 array, else by numpy.

    Why: numpy takes four passes and two temporary arrays for these, the kernel two passes
    and none: 0.06 against 0.46 ms for a 421 x 421 field, each training sample's every field
    as it is written. Only a C-contiguous array: numpy sums any other along its last axis
    first, in another order. Why `compiled` False: the library links PETSc, and `pdegen
    check` starts no PETSc; recomputing a shard's moments with numpy also makes the check an
    independent second implementation of the writer's kernel.
    """
    if compiled and values.dtype == np.float64 and values.flags.c_contiguous:
        from solvers.native import kernels as built  # here: reading stats needs no PETSc

        kernels = built()
        if kernels is not None:
            out = kernels.run("pdegen_sum_and_m2", values=values.reshape(-1), count=values.size)
            return out.sum / values.size, out.m2
    mean = float(values.mean())
    return mean, float(np.square(values - mean).sum())


def _merge_one(a: Partial, b: Partial) -> Partial:
    n = a["count"] + b["count"]
    if a["count"] == 0 or b["count"] == 0:
        return dict(b if a["count"] == 0 else a)
    delta = b["mean"] - a["mean"]
    return {
        "count": n,
        "mean": a["mean"] + delta * b["count"] / n,
        "m2": a["m2"] + b["m2"] + delta * delta * a["count"] * b["count"] / n,
        "min": min(a["min"], b["min"]),
        "max": max(a["max"], b["max"]),
    }


def merge(a: Partial, b: Partial) -> Partial:
    """The moments of the union of two disjoint sets of samples."""
    out = _merge_one(a, b)
    if "frames" in a or "frames" in b:
        fa, fb = a.get("frames"), b.get("frames")
        if fa is None or fb is None:
            out["frames"] = dict(fa or fb)
        else:
            per = [_merge_one(_row(fa, t), _row(fb, t)) for t in range(len(fa["count"]))]
            out["frames"] = _columns(per)
    return out


def merge_all(partials: Iterable[Mapping[str, Partial]]) -> dict[str, Partial]:
    """Merge per-shard {field: partial} maps in the order given (batch order)."""
    total: dict[str, Partial] = {}
    for shard in partials:
        for name, part in shard.items():
            total[name] = merge(total[name], part) if name in total else dict(part)
    return total


def _finish(p: Partial) -> dict[str, Any]:
    if p["count"] == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None}  # no samples
    return {
        "count": p["count"],
        "mean": p["mean"],
        "std": float(np.sqrt(p["m2"] / p["count"])),
        "min": p["min"],
        "max": p["max"],
    }


def finish(p: Partial) -> dict[str, Any]:
    """mean, std (population), min, max and count; `per_frame` lists for time-axis fields."""
    out = _finish(p)
    if "frames" in p:
        f = p["frames"]
        per = [_finish(_row(f, t)) for t in range(len(f["count"]))]
        out["per_frame"] = _columns(per, ("mean", "std", "min", "max"))
    return out


__all__ = ["Partial", "finish", "merge", "merge_all", "partial_moments"]
