"""FNO's Navier-Stokes reference scheme against ETDRK4 (solvers.spectral), both against a
fine reference solution at every recorded frame.

    cd benchmarks && ../.venv/bin/python navier_stokes_fno.py [--t-final 2] [--frames 4]
        [--nu 1e-3] [--steps 0.02 0.01 0.005] [--grids 256 128] [--reference-dt 2.5e-4]

FNO's full horizon (T = 50 at nu = 1e-3, a frame per time unit):

    ../.venv/bin/python navier_stokes_fno.py --t-final 50 --frames 50 --steps 0.02 \
        --grids 128 --reference-dt 1e-3

FNO's data (Li et al., `data_generation/navier_stokes/ns_2d.py`) are made at 256^2 with
Crank-Nicolson for the viscous term and forward Euler for the advection and the forcing,
dt = 1e-4, then stored at 64^2 (every 4th point). This script reimplements that scheme
faithfully (the same wavenumbers, the same 2/3 mask, the same update formula), draws one
initial vorticity from FNO's law (periodic GRF, alpha 2.5, tau 7) at 256^2, and runs to
`--t-final` with nu = 1e-3 and FNO's forcing 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y)):

- FNO's scheme at 256^2, dt = 1e-4;
- ETDRK4 at 256^2 and at 128^2 (the draw truncated to the modes a 128^2 grid holds), at each
  step in --steps;
- the reference: ETDRK4 at 256^2 with dt = 2.5e-4 (--reference-dt);
- pdegen's `navier-stokes` family as recipes/navier-stokes.yaml runs it (128^2, its CFL 0.5
  step rule, every 2nd point stored), from the same draw truncated to 128^2: the time and
  error a user of the recipe gets.

Errors are measured where FNO's data live: at the 64^2 stored points, max norm, relative to
the reference's max, at every frame. Writes results/navier_stokes_fno.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from pdegen.discretisation.fields import periodic_gaussian_random_field
from solvers.spectral import PeriodicGrid, integrate, navier_stokes_vorticity

NU = 1e-3
STORED = 64


def forcing(points: int) -> np.ndarray:
    x = np.arange(points) / points
    X, Y = np.meshgrid(x, x, indexing="ij")
    return 0.1 * (np.sin(2 * math.pi * (X + Y)) + np.cos(2 * math.pi * (X + Y)))


def fno_scheme(w0: np.ndarray, f: np.ndarray, nu: float, times: list[float], dt: float):
    """FNO's `navier_stokes_2d` (ns_2d.py), on numpy's rfft2: Crank-Nicolson for nu Lap w,
    forward Euler for -u.grad(w) + f, its 2/3 mask on |k_x|, |k_y| <= 2/3 k_max."""
    s = w0.shape[0]
    k_max = s // 2
    k = np.concatenate([np.arange(0, k_max), np.arange(-k_max, 0)])
    k_x = np.tile(k, (s, 1)).T[:, : k_max + 1]
    k_y = np.tile(k, (s, 1))[:, : k_max + 1]
    lap = 4 * math.pi**2 * (k_x**2 + k_y**2)
    lap[0, 0] = 1.0
    dealias = (np.abs(k_y) <= (2 / 3) * k_max) & (np.abs(k_x) <= (2 / 3) * k_max)
    w_h, f_h = np.fft.rfft2(w0), np.fft.rfft2(f)
    frames, t, step = [w0.copy()], 0.0, 0
    for target in times[1:]:
        steps = round((target - t) / dt)
        for _ in range(steps):
            psi_h = w_h / lap
            q = np.fft.irfft2(2 * math.pi * 1j * k_y * psi_h, s=(s, s))
            v = np.fft.irfft2(-2 * math.pi * 1j * k_x * psi_h, s=(s, s))
            w_x = np.fft.irfft2(2 * math.pi * 1j * k_x * w_h, s=(s, s))
            w_y = np.fft.irfft2(2 * math.pi * 1j * k_y * w_h, s=(s, s))
            F_h = np.fft.rfft2(q * w_x + v * w_y) * dealias
            w_h = (-dt * F_h + dt * f_h + (1.0 - 0.5 * dt * nu * lap) * w_h) / (
                1.0 + 0.5 * dt * nu * lap
            )
            step += 1
        t = target
        frames.append(np.fft.irfft2(w_h, s=(s, s)))
    return frames, step


def truncate(w: np.ndarray, points: int) -> np.ndarray:
    """The field's Fourier modes that a `points`^2 grid holds, on that grid."""
    big = w.shape[0]
    w_h = np.fft.fft2(w) / big**2
    keep = np.concatenate([np.arange(points // 2), np.arange(big - points // 2, big)])
    small = w_h[np.ix_(keep, keep)]
    small[points // 2, :] = 0.0  # the Nyquist rows have no sign
    small[:, points // 2] = 0.0
    return np.fft.ifft2(small * points**2).real


def etdrk4(w0: np.ndarray, nu: float, times: list[float], dt: float):
    s = w0.shape[0]
    grid = PeriodicGrid((s, s), (1.0, 1.0))
    states, steps = integrate(
        navier_stokes_vorticity(grid, nu, forcing(s)), grid.forward(w0), times, dt
    )
    return [grid.inverse(state) for state in states], steps


def recipe_run(w0: np.ndarray, nu: float, times: list[float]):
    """The `navier-stokes` family with recipes/navier-stokes.yaml's settings, from w0."""
    from pdegen.families import family_from_recipe
    from pdegen.recipe import load_recipe

    root = Path(__file__).resolve().parent.parent
    settings = [
        f"problem.t_end={times[-1]}",
        f"problem.frames={len(times) - 1}",
        f"problem.viscosity.min={nu}",
        f"problem.viscosity.max={nu}",
        "problem.stored_points=null",
    ]
    family = family_from_recipe(load_recipe(root / "recipes" / "navier-stokes.yaml", settings))
    frames, results = family.trajectory_from(
        {"initial": w0, "forcing": forcing(w0.shape[0])}, {"viscosity": nu}
    )
    return list(frames), sum(r.iterations for r in results)


def stored(w: np.ndarray) -> np.ndarray:
    return w[:: w.shape[0] // STORED, :: w.shape[0] // STORED]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t-final", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--steps", type=float, nargs="+", default=[0.02, 0.01, 0.005])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nu", type=float, default=NU)
    parser.add_argument("--grids", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--reference-dt", type=float, default=2.5e-4)
    args = parser.parse_args()
    nu = args.nu
    times = list(np.linspace(0.0, args.t_final, args.frames + 1))
    w0 = periodic_gaussian_random_field(np.random.default_rng(args.seed), (256, 256), 2.5, 7.0)

    start = time.perf_counter()
    reference, _ = etdrk4(w0, nu, times, args.reference_dt)
    reference_seconds = time.perf_counter() - start
    scale = [np.abs(stored(r)).max() for r in reference]

    def errors(frames):
        return [np.abs(stored(a) - stored(r)).max() / m
                for a, r, m in zip(frames[1:], reference[1:], scale[1:], strict=True)]  # fmt: skip

    rows = []
    start = time.perf_counter()
    fno, steps = fno_scheme(w0, forcing(256), nu, times, 1e-4)
    fno_seconds = time.perf_counter() - start
    rows.append(("FNO's scheme (CN + forward Euler)", 256, 1e-4, steps, fno_seconds, errors(fno)))
    for points in args.grids:
        start_w = w0 if points == 256 else truncate(w0, points)
        for dt in args.steps:
            start = time.perf_counter()
            ours, steps = etdrk4(start_w, nu, times, dt)
            rows.append(("ETDRK4", points, dt, steps, time.perf_counter() - start, errors(ours)))
    start = time.perf_counter()
    ours, steps = recipe_run(truncate(w0, 128), nu, times)
    seconds = time.perf_counter() - start
    rows.append(("pdegen's recipe (CFL 0.5)", 128, "CFL", steps, seconds, errors(ours)))

    lines = [
        f"nu = {nu:g}, t in [0, {args.t_final:g}], {args.frames} frames, errors at the 64^2 "
        f"stored points relative to the reference's max (reference: ETDRK4 at 256^2, dt "
        f"{args.reference_dt:g}, {reference_seconds:.0f} s)",
        "",
        "| scheme | grid | dt | steps | seconds | time vs FNO's | worst frame error | "
        + " | ".join(f"t = {t:g}" for t in times[1:])
        + " |",
        "|---|---|---|---|---|---|---|" + "---|" * args.frames,
    ]
    for name, points, dt, steps, seconds, errs in rows:
        lines.append(
            f"| {name} | {points}² | {dt if isinstance(dt, str) else format(dt, 'g')} | "
            f"{steps} | {seconds:.1f} | "
            f"{fno_seconds / seconds:.1f}x | {max(errs):.1e} | "
            + " | ".join(f"{e:.1e}" for e in errs)
            + " |"
        )
    text = "\n".join(lines)
    print(text)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    name = f"navier_stokes_fno_T{args.t_final:g}_nu{nu:g}.md"
    (results / name).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
