"""`pdegen show`: figures of real (tiny) generated datasets, their panels, colour bars and
orientation, the PNGs written, and bad input refused in one line with nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pdegen import cli
from pdegen.dataset.loader import open_dataset
from pdegen.dataset.show import (
    PARAMS_PNG,
    SAMPLES_PNG,
    STATS_PNG,
    build_figures,
    params_figure,
    pick_samples,
    samples_figure,
    stats_figure,
    write_figures,
)
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.generate import generate
from tests.helpers import small_recipe_dict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make(root: Path, name: str, **changes) -> Path:
    recipe = recipe_from_dict(small_recipe_dict(name=name, **changes), name)
    generate(recipe, out=root / name, progress=False, engine="serial")
    return root / name


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("show")
    direct = {"method": "direct", "pc": "auto"}
    return {
        "darcy": make(root, "darcy", samples=6, grid={"n": 7}),  # two shards of 4 and 2
        "darcy3d": make(root, "darcy3d", samples=3, grid={"n": 5, "dim": 3}),
        "heat": make(
            root,
            "heat",
            family="heat",
            samples=2,
            grid={"n": 7},
            problem={"steps": 10, "dt": 0.01},
            solver=direct,
        ),
        "helmholtz": make(
            root,
            "helmholtz",
            family="helmholtz",
            samples=5,
            grid={"n": 15},
            problem={
                "wavenumber": {"min": 6.0, "max": 7.0},
                "coefficient": {"kind": "lognormal", "sigma": 0.1},
            },
            solver=direct,
        ),
        # one CG iteration converges nothing: every sample stored, flagged
        "failed": make(root, "failed", samples=3, grid={"n": 7}, solver={"max_iterations": 1}),
    }


def images(fig):
    """The field panels (axes holding an image) and the colour bars of a figure."""
    panels = [ax for ax in fig.axes if ax.images]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    return panels, bars


def row_titles(fig) -> list[str]:
    return [sub.get_suptitle() for sub in fig.subfigs]


def test_samples_are_spread_evenly_and_deterministically():
    assert pick_samples(64, 4) == [0, 21, 42, 63]
    assert pick_samples(6, 1) == [0]
    assert pick_samples(3, 10) == [0, 1, 2]
    assert pick_samples(11, 6) == [0, 2, 4, 6, 8, 10]  # a trajectory's frames
    assert pick_samples(0, 4) == []


def test_2d_figure_one_panel_and_colour_bar_per_field_on_the_grid(datasets):
    with open_dataset(datasets["darcy"], include_unconverged=True) as ds:
        fig = samples_figure(ds, [0, 5])
        items = [ds[0], ds[5]]
    panels, bars = images(fig)
    assert len(panels) == 4 and len(bars) == 4  # 2 samples x (coefficient, solution)
    assert [ax.get_title() for ax in panels] == ["coefficient", "solution"] * 2
    assert row_titles(fig) == ["sample 0", "sample 5"]
    assert "6 samples" in fig.get_suptitle()
    # orientation: u[i, j] = u(x_i, y_j) drawn transposed with origin lower, so x runs
    # horizontally and y upwards; pixels centred on the nodes, boundary included
    h = 1.0 / 8
    for ax, item, name in zip(
        panels, [items[0]] * 2 + [items[1]] * 2, ["coefficient", "solution"] * 2, strict=True
    ):
        image = ax.images[0]
        np.testing.assert_array_equal(image.get_array(), item[name].T)
        assert image.origin == "lower"
        np.testing.assert_allclose(image.get_extent(), [-h / 2, 1 + h / 2] * 2)
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")


def test_3d_figure_three_mid_planes_per_field_sharing_a_colour_bar(datasets):
    with open_dataset(datasets["darcy3d"], include_unconverged=True) as ds:
        fig = samples_figure(ds, [0, 1, 2])
        item = ds[2]
    panels, bars = images(fig)
    assert len(panels) == 3 * 2 * 3 and len(bars) == 3 * 2
    titles = [ax.get_title() for ax in panels[:6]]
    assert titles == [f"{f}, {a} = 0.5" for f in ("coefficient", "solution") for a in "xyz"]
    # n = 5: 7 nodes, the middle one at 0.5; each slice keeps the other two axes in order
    u = item["solution"]
    last = panels[-3:]
    for ax, expected, labels in zip(
        last,
        [u[3, :, :], u[:, 3, :], u[:, :, 3]],
        [("y", "z"), ("x", "z"), ("x", "y")],
        strict=True,
    ):
        np.testing.assert_array_equal(ax.images[0].get_array(), expected.T)
        assert (ax.get_xlabel(), ax.get_ylabel()) == labels
    assert len({ax.images[0].get_clim() for ax in last}) == 1  # one scale for the three


def test_trajectory_figure_strip_of_frames_with_times_and_one_scale(datasets):
    with open_dataset(datasets["heat"], include_unconverged=True) as ds:
        assert ds.axes["solution"] == ("t", "x", "y")
        fig = samples_figure(ds, [0, 1])
        item = ds[1]
    panels, bars = images(fig)
    per_row = 2 + 6  # coefficient, initial, then six of the eleven frames
    assert len(panels) == 2 * per_row and len(bars) == 2 * 3
    titles = [ax.get_title() for ax in panels[2:per_row]]
    assert titles == [f"solution, t = {t:g}" for t in (0, 0.02, 0.04, 0.06, 0.08, 0.1)]
    frames = panels[-6:]
    for ax, k in zip(frames, [0, 2, 4, 6, 8, 10], strict=True):
        np.testing.assert_array_equal(ax.images[0].get_array(), item["solution"][k].T)
    assert len({ax.images[0].get_clim() for ax in frames}) == 1  # decay shows as fading


def test_stats_and_params_figures(datasets):
    with open_dataset(datasets["helmholtz"], include_unconverged=True) as ds:
        stats, params = stats_figure(ds), params_figure(ds)
        k = ds.params()["wavenumber"]
    titles = [ax.get_title() for ax in stats.axes]
    assert titles == ["iterations per sample", "true relative residual", "solve time per sample"]
    assert stats.axes[1].get_xscale() == "log"
    assert "5 samples, 0 not converged" in stats.get_suptitle()
    assert [ax.get_title() for ax in params.axes] == ["wavenumber"]
    assert f"max {k.max():.4g}" in params.axes[0].get_xlabel()
    with open_dataset(datasets["darcy"]) as ds:
        assert params_figure(ds) is None  # Darcy has no scalar parameter (index is skipped)


def test_unconverged_samples_are_counted_and_marked(datasets):
    with open_dataset(datasets["failed"], include_unconverged=True) as ds:
        assert not ds.stats()["converged"].any()
        stats, fig = stats_figure(ds), samples_figure(ds, [0])
    assert "3 not converged" in stats.get_suptitle()
    assert [t.get_text() for t in stats.legends[0].get_texts()] == [
        "converged (0)",
        "not converged (3)",
    ]
    assert row_titles(fig) == ["sample 0 (NOT CONVERGED)"]
    with open_dataset(datasets["failed"]) as ds:  # what a loader skipping them sees: nothing
        assert len(ds) == 0
        assert sorted(build_figures(ds)) == [SAMPLES_PNG, STATS_PNG]


def test_write_figures_writes_valid_pngs_into_the_dataset_by_default(datasets, tmp_path):
    from matplotlib.image import imread

    darcy = tmp_path / "darcy"
    shutil.copytree(datasets["darcy"], darcy)
    written = write_figures(darcy, samples=2)
    assert written == [darcy / "figures" / SAMPLES_PNG, darcy / "figures" / STATS_PNG]
    for path in written:
        assert path.read_bytes()[:8] == PNG_MAGIC
        pixels = imread(path)
        assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
        assert 200 <= pixels.shape[0] <= 4000 and 400 <= pixels.shape[1] <= 4000
        assert pixels.std() > 0.05  # something is drawn
    assert sorted(p.name for p in (darcy / "figures").iterdir()) == [SAMPLES_PNG, STATS_PNG]
    out = tmp_path / "elsewhere" / "figs"
    assert write_figures(datasets["helmholtz"], out)[-1] == out / PARAMS_PNG


def test_cli_show_prints_the_files_it_wrote(datasets, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pdegen.cli", "show", str(datasets["heat"]), "--out", "figs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"figs/{SAMPLES_PNG}", f"figs/{STATS_PNG}"]
    assert (tmp_path / "figs" / SAMPLES_PNG).stat().st_size > 10_000


def test_import_pdegen_stays_free_of_matplotlib():
    code = (
        "import sys, pdegen, pdegen.cli, pdegen.dataset.show; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def bad_format(root: Path, darcy: Path) -> Path:
    copy = root / "future"
    shutil.copytree(darcy, copy)
    index = json.loads((copy / "index.json").read_text())
    (copy / "index.json").write_text(json.dumps({**index, "format_version": 99}))
    return copy


BAD = {
    "not a dataset": (lambda root, d: ["show", str(root / "empty")], "not a pdegen dataset"),
    "no such path": (lambda root, d: ["show", str(root / "nope")], "no such dataset directory"),
    "zero samples": (
        lambda root, d: ["show", str(d), "--samples", "0", "--out", str(root / "o")],
        "--samples: 0 is out of range (must be at least 1)",
    ),
    "out is a file": (
        lambda root, d: ["show", str(d), "--out", str(root / "file.txt")],
        "file.txt is a file (must be a directory",
    ),
    "out under a file": (
        lambda root, d: ["show", str(d), "--out", str(root / "file.txt" / "figs")],
        "is inside",
    ),
    "unknown format": (
        lambda root, d: ["show", str(bad_format(root, d))],
        "format_version 99 is not one this pdegen reads",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_nothing_written(case, datasets, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("not a directory\n")
    darcy = tmp_path / "darcy"
    shutil.copytree(datasets["darcy"], darcy)
    argv, message = BAD[case]
    argv = argv(tmp_path, darcy)
    before = tree(tmp_path)
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pdegen: error: "), err
    assert message in lines[0], lines[0]
    assert out == "" and tree(tmp_path) == before
