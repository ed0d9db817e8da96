"""Redraw docs/gallery.png: one row per family, each drawn by `pdegen show` on a small
dataset generated from that family's recipe in recipes/.

    .venv/bin/python scripts/gallery.py            # about a minute on 2 cores

Each recipe is generated as it is (its own grid and problem) with --samples 2 on the serial
engine into a scratch directory, `pdegen show --samples 1` draws its first sample (every input
and output field, a trajectory as a strip of frames), and the rows are stacked into one PNG.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: one recipe per family, in the README's order
RECIPES = (
    "darcy",
    "poisson",
    "helmholtz",
    "heat",
    "convection-diffusion",
    "elasticity",
    "stokes",
    "nonlinear-diffusion",
    "reaction-diffusion",
    "burgers-pdebench",
    "navier-stokes",
    "kuramoto-sivashinsky",
    "advection",
    "fisher-kpp",
    "fitzhugh-nagumo",
    "diffusion-sorption",
    "acoustic",
    "cavity",
    "channel",
)


def draw_rows(scratch: Path) -> list[Path]:
    """Generate each recipe and let `pdegen show` draw one sample; the PNGs, in order."""
    pdegen = [sys.executable, "-m", "pdegen.cli"]
    rows = []
    for name in RECIPES:
        data, figures = scratch / name, scratch / f"{name}-figures"
        subprocess.run(
            [*pdegen, "generate", str(ROOT / "recipes" / f"{name}.yaml"), "--out", str(data),
             "--samples", "2", "--engine", "serial", "--quiet", "--no-figures"],
            check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        subprocess.run(
            [*pdegen, "show", str(data), "--samples", "1", "--out", str(figures)],
            check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        rows.append(figures / "samples.png")
        print(f"drew {name}", flush=True)
    return rows


def stack(rows: list[Path], out: Path, width_pixels: int = 1400) -> None:
    """The row PNGs one above the other at one scale (every panel the same size, as `pdegen
    show` draws them), left-aligned on white, the whole scaled to `width_pixels`."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    images = [imread(str(p))[..., :3] for p in rows]
    width = max(im.shape[1] for im in images)
    canvas = np.ones((sum(im.shape[0] for im in images), width, 3), dtype=np.float32)
    top = 0
    for image in images:
        canvas[top : top + image.shape[0], : image.shape[1]] = image
        top += image.shape[0]
    dpi = 100
    scale = width_pixels / width
    fig = Figure(figsize=(width_pixels / dpi, canvas.shape[0] * scale / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="antialiased", aspect="auto")
    ax.set_axis_off()
    fig.savefig(out, dpi=dpi)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "gallery.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        stack(draw_rows(Path(scratch)), Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
