"""The dataset card: README.md in a finished dataset directory, for whoever receives only that.

Why a card: a directory of HDF5 files says what its arrays are, not what problem they solve,
which random laws drew the inputs, how well the solves converged, or how to cite and load it.
The Well ships such a card per dataset; ours is written by `pdegen generate` from what the
directory itself records (index.json, the shards' provenance attributes), so it can never
describe another run than the one it sits beside, and is rewritten with it.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pdegen.dataset.loader import open_dataset
from pdegen.specs import CoefficientSpec, FieldSpec, PeriodicFieldSpec, RangeSpec
from solvers.registry import METHODS

CARD_NAME = "README.md"


def _grf_law(spec: FieldSpec, dim: int) -> str:
    sigma = spec.sigma if spec.sigma is not None else spec.tau ** (spec.alpha - dim / 2)
    modes = spec.modes if spec.modes is not None else "as many as the stored points per axis"
    law = (
        f"Gaussian random field, covariance σ²(−Δ + τ²)^(−α) with α = {spec.alpha:g}, "
        f"τ = {spec.tau:g}, σ = {sigma:.6g}"
        f"{' (the default τ^(α−d/2))' if spec.sigma is None else ''}, mean {spec.mean:g}, "
        f"cosine modes per axis: {modes}"
    )
    if isinstance(spec, CoefficientSpec):
        if spec.kind == "threshold":
            return f"{law}; thresholded: {spec.high:g} where the field ≥ 0, {spec.low:g} elsewhere"
        return f"{law}; lognormal: {spec.scale:g} · exp(field)"
    return law


def _periodic_law(spec: PeriodicFieldSpec, dim: int) -> str:
    if spec.law == "sines":
        law = (
            f"PDEBench's sine modes: {spec.modes} modes, wavenumbers uniform on 1 .. "
            f"{spec.max_wavenumber}, amplitudes U(0, 1), phases U(0, 2π); absolute value with "
            f"probability {spec.absolute:g}, a random sign, a tanh window with probability "
            f"{spec.window:g}"
        )
    else:
        sigma = spec.sigma if spec.sigma is not None else spec.tau ** (spec.alpha - dim / 2)
        law = (
            f"FNO's periodic Gaussian random field, mode variance 2σ²(4π²|k|²/L² + τ²)^(−α) "
            f"with α = {spec.alpha:g}, τ = {spec.tau:g}, σ = {sigma:.6g}, mean zero"
        )
    if spec.rescale:
        law += "; rescaled onto [0, 1]"
    return law + (f"; times {spec.scale:g}" if spec.scale != 1.0 else "")


def _law(value: Any, dim: int) -> str:
    """One recipe `problem:` entry in words."""
    if isinstance(value, FieldSpec):
        return _grf_law(value, dim)
    if isinstance(value, PeriodicFieldSpec):
        return _periodic_law(value, dim)
    if isinstance(value, RangeSpec):
        if value.min == value.max:
            return f"the constant {value.min:g}"
        return f"{value.distribution} on [{value.min:g}, {value.max:g}]"
    return f"fixed: {value!r}"


def _family(recipe: dict[str, Any]) -> Any:
    """The family of the stored recipe, built from it (its `problem:` section as its
    dataclass: the specs carry the laws' words)."""
    from pdegen.families import family_from_recipe
    from pdegen.recipe.schema import recipe_from_dict

    return family_from_recipe(recipe_from_dict(recipe, "the stored recipe"))


def _stats_rows(ds, fields: dict[str, Any]) -> list[str]:
    rows = [
        "| field | stored in | axes per sample | shape | dtype | mean | std | min | max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    first = ds[0] if len(ds) else {}
    for group, names in (("inputs", ds.input_fields), ("outputs", ds.output_fields)):
        for name in names:
            st = fields.get(name, {})
            values = [st.get(k) for k in ("mean", "std", "min", "max")]
            shown = " | ".join("—" if v is None else f"{v:.4g}" for v in values)
            shape = tuple(first[name].shape) if name in first else "?"
            dtype = first[name].dtype if name in first else "?"
            rows.append(
                f"| `{name}` | `/{group}` | ({', '.join(ds.axes.get(name, ()))}) | {shape} | "
                f"{dtype} | {shown} |"
            )
    return rows


def card_text(directory: Path, figures: list[Path] | None = None) -> str:
    """The card's markdown for the finished dataset in `directory`."""
    from pdegen.families import FAMILIES

    directory = Path(directory)
    with open_dataset(directory, include_unconverged=True) as ds:
        attrs = ds.attrs()
        recipe = json.loads(attrs["recipe"])
        versions = json.loads(attrs.get("versions", "{}"))
        family_cls = FAMILIES[recipe["family"]]
        family = _family(recipe)
        problem, dim = family.problem, family.dim
        stats = ds.stats()
        converged = stats.get("converged", np.zeros(0, dtype=bool))
        by_index = dict(zip(ds.sample_indices.tolist(), converged.tolist(), strict=True))
        splits = ds.splits
        field_stats = ds.index.get("field_stats", {})
        name = recipe["name"]
        module_doc = inspect.cleandoc(sys.modules[family_cls.__module__].__doc__ or "")
        lines = [
            f"# {name}",
            "",
            f"A `{recipe['family']}` dataset of {len(ds)} solved PDE instances on a "
            f"{family.grid_words()}, generated by pdegen "
            f"{versions.get('pdegen', '?')} from the recipe below. Everything on this card "
            "is read from this directory (`index.json` and the shards' attributes).",
            "",
            "## The problem",
            "",
            module_doc,
            "",
            f"{family.describe_domain()} {family.describe_discretisation()} "
            "Layout, axes and attributes: pdegen's `docs/format.md` (format version "
            f"{attrs.get('format_version', '?')}).",
            "",
            "## Random inputs",
            "",
            f"Sample `i` draws from `numpy.random.default_rng(SeedSequence({recipe['seed']}, "
            "spawn_key=(i,)))`, so any sample can be regenerated alone.",
            "",
        ]
        for field in dataclasses.fields(problem):
            lines.append(f"- `{field.name}`: {_law(getattr(problem, field.name), dim)}")
        lines += [
            "",
            "## Samples and splits",
            "",
            "| split | samples | converged (served by the loader) |",
            "|---|---|---|",
        ]
        for split, members in splits.items():
            ok = sum(by_index.get(i, False) for i in members)
            lines.append(f"| {split} | {len(members)} | {ok} |")
        lines += [
            "",
            f"Fractions {json.dumps(ds.index.get('split_fractions', {}))}; a sample's split is "
            "drawn from its own seed, so adding samples never moves one.",
            "",
            "## Fields (statistics over the converged training samples, every stored point)",
            "",
            *_stats_rows(ds, field_stats),
            "",
        ]
        if ds.param_names:
            params = ds.params()
            lines += ["Scalar parameters per sample:", ""]
            for p in ds.param_names:
                v = params[p]
                lines.append(f"- `{p}`: min {v.min():.6g}, max {v.max():.6g}, mean {v.mean():.6g}")
            lines.append("")
        lines += _solver_lines(attrs, recipe, stats)
        lines += _run_lines(ds.index.get("incidents", []))
        lines += _loading_lines(directory, name)
        if figures:
            lines += ["## Figures", ""]
            for path in figures:
                rel = path.relative_to(directory) if path.is_relative_to(directory) else path
                lines.append(f"![{path.stem}]({rel.as_posix()})")
            lines.append("")
        lines += [
            "## Provenance",
            "",
            f"Recipe SHA-256: `{ds.index.get('recipe_sha256', '?')}`; card written "
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}.",
            "",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".",
            "",
            "The resolved recipe (every default filled in; `pdegen generate` on it reproduces "
            "this dataset):",
            "",
            "```yaml",
            yaml.safe_dump(recipe, sort_keys=False).rstrip(),
            "```",
            "",
            "## Citation",
            "",
            f"> {name}: a {recipe['family']} dataset generated with pdegen "
            f"{versions.get('pdegen', '?')} (recipe SHA-256 "
            f"{ds.index.get('recipe_sha256', '?')[:12]}), seed {recipe['seed']}.",
            "",
        ]
    return "\n".join(lines)


def _solver_lines(attrs: dict[str, Any], recipe: dict[str, Any], stats: dict) -> list[str]:
    s = recipe["solver"]
    method = METHODS.get(str(attrs.get("method")))
    integrator = method is not None and method.integrator
    stopping = (
        "no linear system to solve (the statistics' residual is 0)"
        if integrator
        else f"stopping at ‖b − A u‖₂ ≤ {s['rtol']:g} ‖b‖₂"
    )
    out = [
        "## Solver",
        "",
        f"Method `{attrs.get('method')}` with preconditioner `{attrs.get('pc')}` (recipe: "
        f"`{s['method']}` / `{s['pc']}`), {stopping}, ordering `{s['ordering']}`"
        + _ranks_words(s.get("ranks_per_sample", 1))
        + ".",
        "",
    ]
    if len(stats.get("iterations", ())):
        its, sec = stats["iterations"], stats["seconds"]
        bad = int(np.sum(~stats["converged"]))
        counted = "internal time steps" if integrator else "iterations"
        out += [
            f"- {counted} per sample: mean {its.mean():.1f}, min {its.min()}, max {its.max()}",
            *_solver_quality(stats, integrator),
            f"- solve time: {sec.sum():.2f} s in all, {sec.mean() * 1e3:.1f} ms per sample",
            f"- not converged: {bad} (stored and flagged; the loader leaves them out)",
            "",
        ]
    return out


def _ranks_words(ranks: int) -> str:
    """How many ranks solved each sample, when more than one (docs/cluster.md)."""
    if ranks == 1:
        return ""
    return (
        f"; each sample solved by {ranks} MPI ranks together (smoothers and incomplete "
        "factorisations act on each rank's rows, so iteration counts may differ from one "
        "rank's; the solutions agree to the tolerance)"
    )


def _solver_quality(stats: dict, integrator: bool) -> list[str]:
    """The line that says how far to trust the solves: the worst residual, or for a
    spectral integrator the resolution indicator (`pdegen.families.spectral`)."""
    if not integrator:
        return [
            "- true relative residual, recomputed after each solve: "
            f"max {stats['residual'].max():.2e}"
        ]
    tail = stats.get("spectral_tail")
    if tail is None or not len(tail):
        return []
    return [
        f"- spectral tail (relative L2 norm of the modes in the upper half of the dealiased "
        f"band, worst frame): median {np.nanmedian(tail):.2e}, max {np.nanmax(tail):.2e} "
        "(below 1e-6: resolved; 1e-3 and above: the grid does not resolve the solution)"
    ]


def _run_lines(incidents: list[str]) -> list[str]:
    """What the runs that wrote the dataset survived (index.json's `incidents`)."""
    if not incidents:
        return ["## The run", "", "Nothing was lost or retried while this dataset was made.", ""]
    return [
        "## The run",
        "",
        f"The runs that made this dataset survived {len(incidents)} incident(s). The data are "
        "whole all the same: each batch is written once, atomically, by the attempt "
        "that finished it, and the same plan gives the same bits on any worker.",
        "",
        *[f"- {line}" for line in incidents],
        "",
    ]


def _loading_lines(directory: Path, name: str) -> list[str]:
    path = directory.name
    return [
        "## Loading",
        "",
        "With numpy (pdegen's loader imports no ML framework):",
        "",
        "```python",
        "import pdegen",
        f'train = pdegen.open_dataset("{path}", split="train")   # also "valid", "test"',
        "sample = train[0]              # dict of numpy arrays: fields, parameters, index",
        "stats = train.field_stats()    # mean/std/min/max per field (training split)",
        "xy = train.as_xy()             # {'x': (C_in, *grid), 'y': (C_out, *grid)} float32",
        "```",
        "",
        "PyTorch (worker processes each open their own HDF5 handles):",
        "",
        "```python",
        "import torch",
        "loader = torch.utils.data.DataLoader(xy, batch_size=16, shuffle=True, num_workers=2)",
        'for batch in loader: x, y = batch["x"], batch["y"]',
        "```",
        "",
        "JAX:",
        "",
        "```python",
        "import jax.numpy as jnp",
        "batch = {k: jnp.asarray(v) for k, v in xy.batch(range(16)).items()}",
        "```",
        "",
        f"The Well's format: `pdegen export {path} --format the-well --out {name}-well`.",
        "",
    ]


def write_card(directory: Path, figures: list[Path] | None = None) -> Path:
    """Write (or rewrite) the card of the finished dataset in `directory`, by rename."""
    from pdegen.dataset.shards import atomic_path

    path = Path(directory) / CARD_NAME
    text = card_text(Path(directory), figures)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


__all__ = ["CARD_NAME", "card_text", "write_card"]
