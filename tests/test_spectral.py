"""The spectral integrator (solvers/spectral.py) against oracles that share no code with it:
Burgers' exact Cole-Hopf solution, the measured order of ETDRK4, spectral convergence in
space, the closed-form ETD coefficients, and frames landing on their times exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solvers.spectral import ETDRK4, PeriodicGrid, burgers, integrate, substeps

NU = 0.05


def cole_hopf(points: int, t: float, nu: float = NU, fine: int = 2048) -> np.ndarray:
    """Burgers' solution from u0 = sin(2 pi x) on the unit torus, by Cole-Hopf: phi =
    exp(-U / (2 nu)) with U' = u solves the heat equation phi_t = nu phi_xx, evolved exactly
    mode by mode (numpy's FFT on a fine grid), and u = -2 nu phi_x / phi."""
    x = np.arange(fine) / fine
    potential = (1.0 - np.cos(2.0 * math.pi * x)) / (2.0 * math.pi)  # U, with U' = sin(2 pi x)
    phi0 = np.exp(-(potential - potential.min()) / (2.0 * nu))  # shifted: no underflow
    k = 2.0 * math.pi * np.fft.fftfreq(fine, 1.0 / fine)
    phi_hat = np.fft.fft(phi0) * np.exp(-nu * k**2 * t)
    phi = np.fft.ifft(phi_hat).real
    phi_x = np.fft.ifft(1j * k * phi_hat).real
    return (-2.0 * nu * phi_x / phi)[:: fine // points]


def burgers_at(points: int, t: float, dt: float, frames=None) -> np.ndarray:
    grid = PeriodicGrid((points,), (1.0,))
    u0 = np.sin(2.0 * math.pi * grid.coordinates[0])
    states, _ = integrate(burgers(grid, NU), grid.forward(u0), frames or [0.0, t], dt)
    return grid.inverse(states[-1])


def test_burgers_matches_the_cole_hopf_solution():
    error = np.abs(burgers_at(128, 0.25, 1e-3) - cole_hopf(128, 0.25)).max()
    assert error < 1e-9, error


def test_etdrk4_is_fourth_order_in_time():
    reference = cole_hopf(256, 0.25)
    errors = [np.abs(burgers_at(256, 0.25, dt) - reference).max() for dt in (0.01, 0.005, 0.0025)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert all(3.7 < p < 4.3 for p in orders), (errors, orders)


def test_space_converges_spectrally():
    """Each doubling of the points gains orders of magnitude until the time error floors it
    (a second-order method would gain a factor of 4)."""
    errors = {n: np.abs(burgers_at(n, 0.25, 1e-3) - cole_hopf(n, 0.25)).max() for n in (16, 32, 64)}
    assert errors[16] / errors[32] > 100 and errors[32] / errors[64] > 1000, errors


def test_frames_land_on_their_times_whatever_the_step():
    """Uneven frame times: equal steps no longer than dt between frames, and each frame is
    the solution at its own time."""
    times = [0.0, 0.07, 0.1, 0.25]
    grid = PeriodicGrid((128,), (1.0,))
    u0 = np.sin(2.0 * math.pi * grid.coordinates[0])
    states, steps = integrate(burgers(grid, NU), grid.forward(u0), times, 0.004)
    for t, state in zip(times, states, strict=True):
        # a frame one step off its time would be off by about 1e-3
        assert np.abs(grid.inverse(state) - cole_hopf(128, t)).max() < 1e-7, t
    assert steps == sum(substeps(a, b, 0.004)[0] for a, b in zip(times, times[1:], strict=False))
    assert substeps(0.0, 0.07, 0.004) == (18, 0.07 / 18)
    assert substeps(0.1, 0.25, 0.01) == (15, 0.01)  # a whole number of dt: dt itself


def test_contour_coefficients_equal_the_closed_forms_where_those_are_accurate():
    """Kassam and Trefethen's contour means against Cox and Matthews' formulas at h L far
    from 0 (where the formulas do not cancel)."""
    h, L = 0.1, np.array([-5.0, -40.0, -300.0])
    E, E2, Q, f1, f2, f3 = ETDRK4(L, lambda u, t: 0 * u).coefficients(h)
    z = h * L
    np.testing.assert_allclose(E, np.exp(z), rtol=1e-14)
    np.testing.assert_allclose(Q, h * (np.exp(z / 2) - 1) / z, rtol=1e-12)
    np.testing.assert_allclose(f1, h * (-4 - z + np.exp(z) * (4 - 3 * z + z**2)) / z**3, rtol=1e-12)
    np.testing.assert_allclose(f2, h * (2 + z + np.exp(z) * (z - 2)) / z**3, rtol=1e-12)
    np.testing.assert_allclose(f3, h * (-4 - 3 * z - z**2 + np.exp(z) * (4 - z)) / z**3, rtol=1e-12)


def test_the_mean_is_conserved_and_the_grid_checks_its_shape():
    grid = PeriodicGrid((64,), (2.0,))
    u0 = 0.3 + np.cos(math.pi * grid.coordinates[0])
    states, _ = integrate(burgers(grid, NU), grid.forward(u0), [0.0, 0.5], 1e-3)
    assert abs(grid.inverse(states[-1]).mean() - 0.3) < 1e-14
    with pytest.raises(ValueError, match="even"):
        PeriodicGrid((63,), (1.0,))
    assert grid.dealias.sum() == 22  # |k| < 64 / 3: 0..21 of the 33 real-FFT modes
