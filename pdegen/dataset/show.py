"""`pdegen show PATH`: PNG figures of a generated dataset, to look at before training on it.

Three figures, with stable names so that a dataset card can embed them:

- `samples.png`: K samples spread evenly over the dataset, one row each, every input and
  output field with its colour bar on the grid's coordinates (x horizontal, y vertical); a 3D
  field as its three mid-plane slices, a trajectory as a strip of frames sharing one colour
  scale (so that decay is visible as fading, not hidden by a rescaled colour bar).
- `solver_stats.png`: histograms of iterations, true relative residual (log scale, the
  recipe's rtol marked) and solve seconds, samples that did not converge stacked in red.
- `params.png`: one histogram per scalar parameter (Helmholtz's wavenumber); only for families
  that have any.

Only the K samples shown and the per-sample statistics and parameter columns are read, so a
large dataset costs what K samples cost. matplotlib is imported here only, and only through
`matplotlib.figure.Figure` (never pyplot): nothing opens a display, no global backend is
switched under a caller that has its own, and no figure is kept alive by a figure manager.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from pdegen.dataset.loader import ShardDataset, open_dataset
from pdegen.dataset.shards import atomic_path
from pdegen.errors import PdegenError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DEFAULT_SAMPLES = 4
FIGURES_DIR = "figures"  # the default --out, inside the dataset directory
FRAMES = 6  # frames of a trajectory's strip, first and last included
DPI = 110
PANEL_INCHES = 2.1  # one field panel; colour bars and titles come on top
NOT_CONVERGED_COLOUR = "tab:red"
STYLE = {"font.size": 7, "axes.titlesize": 7, "figure.titlesize": 9}
TIME_AXIS = "t"

SAMPLES_PNG = "samples.png"
STATS_PNG = "solver_stats.png"
PARAMS_PNG = "params.png"


# -- choosing what to read -------------------------------------------------------------------


def pick_samples(count: int, k: int) -> list[int]:
    """K positions spread evenly over `count` (first and last included), deterministic, so
    that the same dataset always shows the same samples; all of them when K >= count."""
    if count <= 0:
        return []
    if k >= count:
        return list(range(count))
    return sorted({int(round(p)) for p in np.linspace(0, count - 1, k)})


def grid_coordinates(ds: ShardDataset) -> dict[str, np.ndarray]:
    """The node coordinates (`/grid/x`, `y`, `z`, `t`) the first shard stores: every shard
    of a dataset shares one grid. The loader exposes no grid, so read it here."""
    if not ds.index["shards"]:
        return {}
    path = ds.path / ds.index["shards"][0]["file"]
    try:
        with h5py.File(path, "r") as f:
            return {name: np.asarray(v[()]) for name, v in f.get("grid", {}).items()}
    except OSError as err:
        raise PdegenError(f"{path}: unreadable shard ({err})") from None


def _field_order(ds: ShardDataset) -> list[str]:
    """Inputs before outputs, in the family's declared order when the family is known (the
    HDF5 groups list names alphabetically: Poisson's boundary would come before its source)."""
    from pdegen.families import FAMILIES

    axes = ds.axes
    family = FAMILIES.get(str(ds.attrs().get("family", "")))
    declared = [*family.inputs, *family.outputs] if family else []
    return [n for n in declared if n in axes] + [n for n in axes if n not in declared]


# -- drawing -------------------------------------------------------------------------------


@dataclass
class _Panel:
    """One image: a 2D array indexed [a, b] over the axes named `axes`, and its title; or,
    with one axis, a 1D field drawn as a curve."""

    array: np.ndarray
    axes: tuple[str, ...]
    title: str


def _nearest(coords: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(coords - value)))


def _coordinate(coords: dict[str, np.ndarray], axis: str, size: int) -> np.ndarray:
    """The axis's node coordinates, or 0..1 if the shard lacks them (a uniform node grid)."""
    c = coords.get(axis)
    return c if c is not None and len(c) == size else np.linspace(0.0, 1.0, size)


def _field_panels(
    name: str, value: np.ndarray, axes: tuple[str, ...], coords: dict[str, np.ndarray]
) -> list[_Panel]:
    """The panels one field of one sample becomes, which share one colour scale: a 2D field
    itself; a 3D field its mid-planes x, y, z = 0.5; a trajectory FRAMES evenly spaced frames
    (of the z mid-plane in 3D); a 1D field its curve, and a 1D trajectory one space-time
    image (x across, t up)."""
    value = np.asarray(value)
    if TIME_AXIS in axes and len(axes) == 2:
        space = next(a for a in axes if a != TIME_AXIS)
        frames = np.moveaxis(value, axes.index(TIME_AXIS), -1)  # [x, t]
        return [_Panel(frames, (space, TIME_AXIS), f"{name}({space}, t)")]
    if len(axes) == 1:
        return [_Panel(value, axes, name)]
    if TIME_AXIS in axes:
        t_at = axes.index(TIME_AXIS)
        space = tuple(a for a in axes if a != TIME_AXIS)
        frames = np.moveaxis(value, t_at, 0)
        times = coords.get(TIME_AXIS)
        panels = []
        for k in pick_samples(frames.shape[0], FRAMES):
            when = f"t = {times[k]:.4g}" if times is not None and len(times) > k else f"frame {k}"
            frame = frames[k]
            where = ""
            if len(space) == 3:
                z = _coordinate(coords, space[2], frame.shape[2])
                m = _nearest(z, 0.5)
                frame, where = frame[:, :, m], f", {space[2]} = {z[m]:.2g}"
            panels.append(_Panel(frame, space[:2], f"{name}, {when}{where}"))
        return panels
    if len(axes) == 3:
        panels = []
        for cut, axis in enumerate(axes):
            c = _coordinate(coords, axis, value.shape[cut])
            m = _nearest(c, 0.5)
            rest = tuple(a for a in axes if a != axis)
            panels.append(_Panel(np.take(value, m, axis=cut), rest, f"{name}, {axis} = {c[m]:.2g}"))
        return panels
    return [_Panel(value, axes[:2], name)]


def _colour_scale(arrays: list[np.ndarray]) -> tuple[str, float, float]:
    """(colour map, vmin, vmax) shared by a field's panels. A field of both signs gets a
    diverging map centred on zero, so that blue is negative and red positive whatever the
    range; a one-signed field gets viridis over its range."""
    finite = [a[np.isfinite(a)] for a in arrays]
    finite = [a for a in finite if a.size]
    if not finite:
        return "viridis", 0.0, 1.0
    lo = float(min(a.min() for a in finite))
    hi = float(max(a.max() for a in finite))
    peak = max(abs(lo), abs(hi))
    if lo < -0.01 * peak and hi > 0.01 * peak:
        return "RdBu_r", -peak, peak
    if lo == hi:  # a constant field: a range around it, so the colour bar is not empty
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    return "viridis", lo, hi


def _draw(ax: Axes, panel: _Panel, coords: dict[str, np.ndarray], cmap, vmin, vmax):
    """imshow of a[i, j] = u(a_i, b_j) with the first axis horizontal: the array is
    transposed (imshow puts rows vertically) and drawn with origin="lower", each pixel centred
    on its node, so the extent reaches half a spacing past the boundary nodes. A 1D panel
    is a curve over its coordinate (returns None: no colour bar)."""
    if len(panel.axes) == 1:
        (a,) = panel.axes
        ca = _coordinate(coords, a, panel.array.shape[0])
        ax.plot(ca, np.asarray(panel.array, dtype=float), linewidth=1.0)
        ax.set_xlabel(a, labelpad=1)
        ax.set_title(panel.title)
        ax.tick_params(length=2, pad=1)
        return None
    a, b = panel.axes
    ca = _coordinate(coords, a, panel.array.shape[0])
    cb = _coordinate(coords, b, panel.array.shape[1])

    def edges(c: np.ndarray) -> tuple[float, float]:
        half = (c[-1] - c[0]) / (2 * (len(c) - 1)) if len(c) > 1 else 0.5
        return float(c[0] - half), float(c[-1] + half)

    image = ax.imshow(
        np.asarray(panel.array, dtype=float).T,
        origin="lower",
        extent=(*edges(ca), *edges(cb)),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        aspect="auto" if TIME_AXIS in panel.axes else "equal",  # space-time: fill the panel
    )
    ax.set_xlabel(a, labelpad=1)
    ax.set_ylabel(b, labelpad=5, rotation=0, va="center")  # upright: a rotated "y" reads ">"
    ax.set_title(panel.title)
    ticks = [float(ca[0]), float((ca[0] + ca[-1]) / 2), float(ca[-1])]
    ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
    ticks = [float(cb[0]), float((cb[0] + cb[-1]) / 2), float(cb[-1])]
    ax.set_yticks(ticks, [f"{t:.3g}" for t in ticks])
    ax.tick_params(length=2, pad=1)
    return image


def _row_title(item: dict[str, np.ndarray], params: list[str], converged: bool) -> str:
    title = f"sample {int(item['index'])}"
    values = [f"{p} = {float(item[p]):.4g}" for p in params if p in item]
    if values:
        title += ": " + ", ".join(values)
    return title + ("" if converged else " (NOT CONVERGED)")


def samples_figure(ds: ShardDataset, positions: list[int]) -> Figure:
    """One row per sample (positions in `ds`), one group of panels per field with one colour
    bar per group: 2D field, the three mid-planes of a 3D one, the frames of a trajectory."""
    import matplotlib
    from matplotlib.figure import Figure

    coords = grid_coordinates(ds)
    axes = ds.axes
    names = _field_order(ds)
    params = [p for p in ds.params() if p != "index"]
    converged = ds.stats().get("converged")
    rows = []
    for i in positions:
        item = ds[i]
        groups = [_field_panels(n, item[n], axes[n], coords) for n in names]
        ok = True if converged is None else bool(converged[i])
        rows.append((_row_title(item, params, ok), groups))
    columns = max((sum(len(g) for g in groups) for _, groups in rows), default=1)
    bars = max((len(groups) for _, groups in rows), default=1)
    width = columns * PANEL_INCHES + bars * 0.55
    height = max(1, len(rows)) * (PANEL_INCHES + 0.45) + 0.4
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        attrs = ds.attrs()
        title = (
            f"{attrs.get('dataset', ds.path.name)} ({attrs.get('family', '?')}): "
            f"{len(rows)} of {_count(len(ds), 'sample')}"
        )
        bad = 0 if converged is None else int((~np.asarray(converged, dtype=bool)).sum())
        if bad and converged is not None and all(converged[i] for i in positions):
            title += f" ({bad} not converged, not shown)"
        fig.suptitle(title)
        subfigures = fig.subfigures(len(rows), 1, squeeze=False)[:, 0] if rows else []
        for sub, (row_title, groups) in zip(subfigures, rows, strict=True):
            sub.suptitle(row_title, fontweight="bold")
            panel_axes = sub.subplots(1, columns, squeeze=False)[0]
            used = 0
            for group in groups:
                cmap, vmin, vmax = _colour_scale([p.array for p in group])
                here = list(panel_axes[used : used + len(group)])
                for ax, panel in zip(here, group, strict=True):
                    image = _draw(ax, panel, coords, cmap, vmin, vmax)
                if image is not None:  # a curve needs none
                    sub.colorbar(image, ax=here, shrink=0.8, pad=0.02, aspect=25)
                used += len(group)
            for ax in panel_axes[used:]:  # a shorter row (never, in one dataset): blank
                ax.set_axis_off()
    return fig


def _bins(values: np.ndarray, log: bool = False, integer: bool = False) -> np.ndarray:
    """Bin edges for a histogram: integers on unit bins when few, log-spaced for residuals,
    and a small range around a constant (a direct solve's iterations are all 1)."""
    lo, hi = float(values.min()), float(values.max())
    if log:  # bars at least a tenth of a decade wide, aligned on decades
        a, b = np.log10(lo), np.log10(hi)
        width = max(0.1, (b - a) / 30)
        start, stop = np.floor(a / width) * width, (np.ceil(b / width) + (a == b)) * width
        return 10.0 ** np.arange(start, stop + width / 2, width)
    if integer and hi - lo <= 40:
        return np.arange(lo - 0.5, hi + 1.5)
    if lo == hi:
        pad = abs(lo) * 0.1 or 0.5
        return np.linspace(lo - pad, hi + pad, 8)
    return np.histogram_bin_edges(values, bins=min(30, max(5, int(np.sqrt(len(values))))))


def _histogram(
    ax: Axes, values: np.ndarray, ok: np.ndarray, label: str, log=False, integer=False
) -> None:
    """Converged samples in blue with the unconverged stacked on top in red, so that failures
    stand out by where they sit; non-finite values (and non-positive ones on a log axis) cannot
    be placed and are counted in the title instead of being dropped silently."""
    from matplotlib.ticker import MaxNLocator

    values = np.asarray(values, dtype=float)
    placeable = np.isfinite(values) & ((values > 0) if log else True)
    title = label
    if not placeable.all():
        title += f" ({int((~placeable).sum())} not shown: not finite{' or <= 0' if log else ''})"
    values, ok = values[placeable], ok[placeable]
    ax.set_title(title)
    if not values.size:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        return
    bins = _bins(values, log=log, integer=integer)
    data, colours, labels = [values[ok]], ["tab:blue"], [f"converged ({int(ok.sum())})"]
    if (~ok).any():
        data.append(values[~ok])
        colours.append(NOT_CONVERGED_COLOUR)
        labels.append(f"not converged ({int((~ok).sum())})")
    ax.hist(data, bins=bins, stacked=True, color=colours, label=labels, edgecolor="white", lw=0.3)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(bins[0] / 10**0.3, bins[-1] * 10**0.3)  # bars off the frame
    if integer:  # whole iterations only, also when there are just one or two values
        lo, hi = int(values.min()), int(values.max())
        if hi - lo <= 8:
            ax.set_xlim(lo - 1, hi + 1)
            ax.set_xticks(range(lo, hi + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("samples")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 of a sample


def _legend(fig: Figure, ok: np.ndarray) -> None:
    """One legend for the figure, below the panels, when there is anything red to explain
    (inside a panel it would hide bars)."""
    if ok.all():
        return
    for ax in fig.axes:
        handles, labels = ax.get_legend_handles_labels()
        if len(handles) == 2:
            fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
            return


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _recipe(ds: ShardDataset) -> dict[str, Any]:
    try:
        return json.loads(ds.attrs().get("recipe", "{}"))
    except (TypeError, ValueError):
        return {}


def stats_figure(ds: ShardDataset) -> Figure:
    """Histograms of the solver statistics of every sample, converged or not."""
    import matplotlib
    from matplotlib.figure import Figure

    stats = ds.stats()  # {} for a dataset without samples (all skipped as unconverged)
    ok = np.asarray(stats.get("converged", []), dtype=bool)
    attrs = ds.attrs()
    rtol = _recipe(ds).get("solver", {}).get("rtol")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(3 * 2.9, 2.6), dpi=DPI, layout="constrained")
        name = attrs.get("dataset", ds.path.name)
        fig.suptitle(
            f"{name}: solver statistics of {_count(len(ok), 'sample')}, "
            f"{int((~ok).sum())} not converged ({attrs.get('method', '?')} + "
            f"{attrs.get('pc', '?')}" + (f", rtol {rtol:g})" if rtol else ")")
        )
        its, res, sec = fig.subplots(1, 3)
        _histogram(its, stats.get("iterations", []), ok, "iterations per sample", integer=True)
        its.set_xlabel("iterations (summed over the sample's solves)")
        _histogram(res, stats.get("residual", []), ok, "true relative residual", log=True)
        res.set_xlabel("max over solves of ‖b − Ax‖ / ‖b‖")
        if rtol:  # in view even when every residual is far below it (a direct solve)
            lo, hi = res.get_xlim()
            res.set_xlim(min(lo, rtol / 3), max(hi, rtol * 10))  # room for its label
            res.axvline(rtol, color="black", ls="--", lw=0.8)
            res.text(rtol, 0.98, " rtol", transform=res.get_xaxis_transform(), va="top", ha="left")
        _histogram(sec, stats.get("seconds", []), ok, "solve time per sample")
        sec.set_xlabel("seconds")
        _legend(fig, ok)
    return fig


def params_figure(ds: ShardDataset) -> Figure | None:
    """One histogram per scalar parameter (not the generation index); None without any."""
    import matplotlib
    from matplotlib.figure import Figure

    params = {k: v for k, v in ds.params().items() if k != "index"}
    if not params:
        return None
    ok = np.asarray(ds.stats()["converged"], dtype=bool)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(len(params) * 2.9, 2.6), dpi=DPI, layout="constrained")
        fig.suptitle(
            f"{ds.attrs().get('dataset', ds.path.name)}: parameters of {_count(len(ok), 'sample')}"
        )
        for ax, (name, values) in zip(
            fig.subplots(1, len(params), squeeze=False)[0], params.items(), strict=True
        ):
            _histogram(ax, values, ok, name)
            if values.size:
                ax.set_xlabel(f"{name} (min {values.min():.4g}, max {values.max():.4g})")
        _legend(fig, ok)
    return fig


# -- writing -----------------------------------------------------------------------------


def _check_samples(samples: int, name: str) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 1:
        raise PdegenError(f"{name}: {samples!r} is out of range (must be at least 1)")


def _check_out(out: Path, out_name: str) -> None:
    for parent in (out, *out.parents):  # a file anywhere on the way makes mkdir fail later
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == out else f"is inside {parent}, a file"
                raise PdegenError(f"{out_name}: {out} {what} (must be a directory to write into)")
            break


def _open(path: Path) -> ShardDataset:
    if not path.exists():
        raise PdegenError(f"{path}: no such dataset directory")
    return open_dataset(path, include_unconverged=True)


def build_figures(ds: ShardDataset, samples: int = DEFAULT_SAMPLES) -> dict[str, Figure]:
    """The figures of an open dataset by file name, built in memory (nothing written).

    Samples are chosen among the converged ones (what a loader hands to training); only if
    none converged are unconverged ones shown, marked in their row's title.
    """
    stats = ds.stats()
    converged = np.flatnonzero(np.asarray(stats.get("converged", []), dtype=bool))
    pool = converged if converged.size else np.arange(len(ds))
    positions = [int(pool[p]) for p in pick_samples(len(pool), samples)]
    figures = {SAMPLES_PNG: samples_figure(ds, positions), STATS_PNG: stats_figure(ds)}
    params = params_figure(ds)
    if params is not None:
        figures[PARAMS_PNG] = params
    return figures


def write_figures(
    dataset_dir: str | Path, out_dir: str | Path | None = None, samples: int = DEFAULT_SAMPLES
) -> list[Path]:
    """Write the dataset's figures into `out_dir` (default `<dataset_dir>/figures`) and return
    the files written: samples.png, solver_stats.png, and params.png when the family has
    scalar parameters. Names are stable, so a dataset card can link them.

    Every check (a path that is not a dataset, samples < 1, an out_dir that is a file, an
    unknown format version) runs, and every figure is drawn, before anything is created; each
    file is written under a temporary name and renamed, so a reader never sees half a PNG.
    """
    return _write(Path(dataset_dir), out_dir, samples, "out_dir", "samples")


def _write(path: Path, out, samples: int, out_name: str, samples_name: str) -> list[Path]:
    _check_samples(samples, samples_name)
    with _open(path) as ds:  # the dataset first: a default out lies inside it
        out = Path(out) if out is not None else path / FIGURES_DIR
        _check_out(out, out_name)
        figures = build_figures(ds, samples)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, fig in figures.items():
            with atomic_path(out / name) as tmp:
                fig.savefig(tmp, format="png", dpi=DPI)
            written.append(out / name)
    except OSError as err:
        raise PdegenError(f"{out_name}: cannot write into {out} ({err.strerror or err})") from None
    return written


def show_command(path: str, out: str | None, samples: int) -> list[Path]:
    """`pdegen show`: write the figures and print where each went. Errors name the flags."""
    written = _write(Path(path), out, samples, "--out", "--samples")
    for file in written:
        print(file)
    return written
