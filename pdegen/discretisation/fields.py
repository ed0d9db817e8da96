"""Reproducible random inputs.

Every sample draws from its own generator, seeded by (recipe seed, sample index) through
numpy's SeedSequence spawn keys, so a sample can be regenerated alone and is identical
whichever worker, rank or batch produced it.

The Gaussian random field is a truncated cosine (Karhunen-Loeve) series for the covariance
sigma^2 (-Laplacian + tau^2)^(-alpha) with Neumann boundary conditions on the unit cube. The
coefficients are drawn for a fixed number of modes, so the same sample evaluated on a finer
grid is the same function, only sampled more densely: datasets at several resolutions share
their inputs, which is what accuracy-versus-resolution studies need.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator

import numpy as np
import scipy.fft
from threadpoolctl import ThreadpoolController


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for sample `index` of a recipe with seed `seed` (order-independent)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(index,)))


def grf_coefficients(
    rng: np.random.Generator,
    modes: int,
    dim: int,
    alpha: float,
    tau: float,
    sigma: float | None = None,
) -> np.ndarray:
    """Random cosine-series coefficients of a mean-zero GRF, shape (modes,) * dim.

    sigma defaults to tau^(alpha - dim/2), the scaling used by the neural-operator Darcy
    benchmarks, which keeps the field's variance of order one as tau changes.
    """
    coefficients = rng.standard_normal((modes,) * dim)
    coefficients *= _mode_std(modes, dim, alpha, tau, sigma)  # in place: one array per draw
    return coefficients


@functools.lru_cache(maxsize=8)
def _mode_std(modes: int, dim: int, alpha: float, tau: float, sigma: float | None) -> np.ndarray:
    """Each mode's standard deviation, shape (modes,) * dim: the same for every sample of a
    recipe, so computed once (the powers took a third of a 421 x 421 draw). Read-only."""
    if sigma is None:
        sigma = tau ** (alpha - dim / 2)
    k = np.arange(modes)
    ksq = sum(np.meshgrid(*([k**2] * dim), indexing="ij"))
    std = sigma * (np.pi**2 * ksq + tau**2) ** (-alpha / 2)
    std.flat[0] = 0.0  # mean-zero field: the constant mode is dropped
    std.setflags(write=False)
    return std


def _is_node_grid(x: np.ndarray) -> bool:
    """Whether x is the uniform node grid i/N of [0, 1] to 1e-14 (what `np.allclose` with
    rtol 0 tests, without its per-call overhead: this runs twice per drawn field)."""
    if x.size < 2:
        return False
    return bool(np.max(np.abs(x - np.linspace(0.0, 1.0, x.size))) <= 1e-14)


def _local_dct1(field: np.ndarray, axis: int) -> np.ndarray:
    return scipy.fft.dct(field, type=1, axis=axis, overwrite_x=True)


#: who computes the type-I DCTs of `cosine_series` (`transforms_by`)
_DCT1: contextvars.ContextVar[Callable[[np.ndarray, int], np.ndarray]] = contextvars.ContextVar(
    "pdegen_dct1", default=_local_dct1
)


@contextlib.contextmanager
def transforms_by(dct1: Callable[[np.ndarray, int], np.ndarray]) -> Iterator[None]:
    """Within the block, `cosine_series` hands its type-I DCTs to `dct1(field, axis)` (which
    may overwrite `field`): the ranks of a group share them when one sample is solved across
    several (`pdegen.run.group`). Each line's transform is computed alone, so any split of
    the lines among workers gives the same bits as one call (tested)."""
    token = _DCT1.set(dct1)
    try:
        yield
    finally:
        _DCT1.reset(token)


def cosine_series(coefficients: np.ndarray, points: list[np.ndarray]) -> np.ndarray:
    """Evaluate sum_k c_k prod_d phi_k(x_d) on the tensor grid `points` (one 1D array per axis).

    phi_0 = 1 and phi_k = sqrt(2) cos(pi k x) are orthonormal on [0, 1]. On a uniform node
    grid x_i = i/N (i = 0..N) with at most N+1 modes this is a type-I discrete cosine
    transform per axis (fast, O(N log N)); other point sets use the direct sum.
    """
    field, owned = coefficients, False  # owned: field is a temporary of this function's
    for axis, x in enumerate(points):
        modes = coefficients.shape[axis]
        if _is_node_grid(x) and modes <= x.size:
            weights = np.full(x.size, np.sqrt(2.0) / 2.0)
            weights[0], weights[-1] = 1.0, np.sqrt(2.0)
            shape = [1] * field.ndim
            shape[axis] = x.size
            if modes < x.size:  # zero-pad the missing modes
                scaled = np.zeros(field.shape[:axis] + (x.size,) + field.shape[axis + 1 :])
                index = [slice(None)] * field.ndim
                index[axis] = slice(0, modes)
                scaled[tuple(index)] = field
                field, owned = scaled, True
            # in place where the array is a temporary (fewer megabyte allocations per draw;
            # the same operations, so the same bits)
            field = np.multiply(field, weights.reshape(shape), out=field if owned else None)
            field = _DCT1.get()(field, axis)
            owned = True
        else:
            k = np.arange(modes)
            basis = np.sqrt(2.0) * np.cos(np.pi * np.outer(x, k))
            basis[:, 0] = 1.0
            with _one_blas_thread():
                field = np.moveaxis(np.tensordot(basis, field, axes=([1], [axis])), 0, axis)
            owned = True
    return field


@functools.cache
def _blas_threads() -> ThreadpoolController:
    return ThreadpoolController()


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread for the direct sum's products: OpenBLAS splits a large one (a 3D
    cell grid's) among threads and rounds it otherwise, so the draw's bits would depend on
    the calling process's thread count; one thread is what a batch runs
    (`pdegen.run.batch.solve_rows`), so this keeps every dataset's draws, and `pdegen check
    --deep` and a user's own `family.sample` now give them too (a 49^3 draw differed in the
    last bit on two threads)."""
    with _blas_threads().limit(limits=1, user_api="blas"):
        yield


def gaussian_random_field(
    rng: np.random.Generator,
    points: list[np.ndarray],
    alpha: float,
    tau: float,
    sigma: float | None = None,
    modes: int | None = None,
) -> np.ndarray:
    """One GRF sample on the tensor grid `points`; `modes` defaults to the grid size."""
    modes = modes or max(len(x) for x in points)
    coefficients = grf_coefficients(rng, modes, len(points), alpha, tau, sigma)
    return cosine_series(coefficients, points)


def grf_pointwise_std_bound(
    dim: int, alpha: float, tau: float, sigma: float | None = None, modes: int = 64
) -> float:
    """An upper bound on the pointwise standard deviation of the field, used to check recipes
    before sampling (for example the wavelength resolution): |phi_k|^2 <= 2 for k > 0."""
    if sigma is None:
        sigma = tau ** (alpha - dim / 2)
    k = np.arange(modes)
    grids = np.meshgrid(*([k] * dim), indexing="ij")
    ksq = sum(g**2 for g in grids)
    nonzero = sum((g > 0).astype(int) for g in grids)
    with np.errstate(divide="ignore"):  # tau = 0: the constant mode's 0^-alpha, dropped next
        var = sigma**2 * (np.pi**2 * ksq + tau**2) ** (-alpha) * 2.0**nonzero
    var.flat[0] = 0.0
    return float(np.sqrt(var.sum()))


def periodic_gaussian_random_field(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    alpha: float,
    tau: float,
    sigma: float | None = None,
    lengths: tuple[float, ...] | None = None,
) -> np.ndarray:
    """A mean-zero periodic GRF on the unit torus sampled at `shape` points (j / n per axis),
    with the law of FNO's `random_fields.GaussianRF`, the sampler FNO's data come from
    (Navier-Stokes' initial vorticity: alpha = 2.5, tau = 7; Burgers' initial state: alpha =
    2, tau = 5, sigma = 25). sigma defaults to tau^(alpha - d/2), as FNO's does.

    Each Fourier mode k (integer wavenumbers, angular 2 pi k) gets an independent complex
    normal coefficient, sqrt(2) sigma (4 pi^2 |k|^2 + tau^2)^(-alpha/2) (a + i b), and the
    field is the real part of its inverse FFT, as in FNO's code. Note the sqrt(2): a mode's
    variance, and the pointwise variance summed over the modes, are 2 sigma^2 (4 pi^2 |k|^2 +
    tau^2)^(-alpha), twice the covariance sigma^2 (-Laplacian + tau^2)^(-alpha) that FNO's
    paper writes (tested). The constant mode is zero (a mean-zero field, as FNO's). On a
    torus of `lengths` other than 1 the wavenumbers are 2 pi k / L (the same law in the
    domain's own units: the covariance of (-Laplacian + tau^2)^(-alpha) there).
    """
    dim = len(shape)
    if sigma is None:
        sigma = tau ** (alpha - dim / 2)
    lengths = lengths or (1.0,) * dim
    k = np.meshgrid(
        *(np.fft.fftfreq(n, 1.0 / n) / L for n, L in zip(shape, lengths, strict=True)),
        indexing="ij",
    )
    ksq = sum(ki**2 for ki in k)
    std = np.sqrt(2.0) * sigma * (4.0 * np.pi**2 * ksq + tau**2) ** (-alpha / 2)
    std.flat[0] = 0.0
    coefficients = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return np.fft.ifftn(std * coefficients * np.prod(shape)).real


def sine_modes_field(
    rng: np.random.Generator,
    x: np.ndarray,
    length: float,
    modes: int = 2,
    max_wavenumber: int = 4,
    absolute: float = 0.1,
    window: float = 0.1,
    window_width: float = 0.01,
) -> np.ndarray:
    """PDEBench's 1D initial law on the periodic interval (0, L) at the points `x`: the sum
    of `modes` sine modes A sin(2 pi k x / L + phi), each with its wavenumber k uniform on
    1 .. max_wavenumber, amplitude A uniform on (0, 1) and phase phi uniform on (0, 2 pi);
    then with probability `absolute` its absolute value, a random sign (+-1, even odds), and
    with probability `window` a tanh window 0.5 (tanh((x - a) / w) - tanh((x - b) / w)) with
    a uniform on (0.1, 0.45) L, b on (0.55, 0.9) L and w = `window_width` L.

    The draws are made in a fixed order whatever the outcome (every uniform is drawn), so a
    sample's generator state never depends on its branches."""
    wavenumbers = rng.integers(1, max_wavenumber + 1, size=modes)
    amplitudes = rng.uniform(0.0, 1.0, size=modes)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=modes)
    take_absolute, flip, windowed = rng.uniform(size=3)
    left, right = rng.uniform(0.1, 0.45), rng.uniform(0.55, 0.9)
    u = np.zeros_like(x, dtype=float)
    for k, a, phi in zip(wavenumbers, amplitudes, phases, strict=True):
        u += a * np.sin(2.0 * np.pi * k * x / length + phi)
    if take_absolute < absolute:
        u = np.abs(u)
    if flip < 0.5:
        u = -u
    if windowed < window:
        w = window_width * length
        u *= 0.5 * (np.tanh((x - left * length) / w) - np.tanh((x - right * length) / w))
    return u
