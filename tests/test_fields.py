"""Random inputs: reproducible per sample, resolution-consistent, with the right covariance."""

import numpy as np
import scipy.fft

from pdegen.discretisation.fields import (
    cosine_series,
    gaussian_random_field,
    grf_coefficients,
    sample_rng,
    transforms_by,
)
from pdegen.families import Darcy
from pdegen.specs import CoefficientSpec


def test_a_sample_depends_only_on_seed_and_index():
    family = Darcy.square(31)
    alone = family.sample(seed=11, index=5).inputs["coefficient"]
    for i in range(5):  # drawing other samples first changes nothing
        family.sample(seed=11, index=i)
    again = family.sample(seed=11, index=5).inputs["coefficient"]
    np.testing.assert_array_equal(alone, again)
    other = family.sample(seed=11, index=6).inputs["coefficient"]
    assert not np.array_equal(alone, other)
    assert not np.array_equal(alone, family.sample(seed=12, index=5).inputs["coefficient"])


def test_fixed_modes_give_the_same_field_at_every_resolution():
    coarse = np.linspace(0, 1, 33)
    fine = np.linspace(0, 1, 65)
    a = gaussian_random_field(sample_rng(1, 0), [coarse, coarse], 2.0, 3.0, modes=24)
    b = gaussian_random_field(sample_rng(1, 0), [fine, fine], 2.0, 3.0, modes=24)
    np.testing.assert_allclose(a, b[::2, ::2], atol=1e-12)


def test_pointwise_variance_matches_the_covariance_operator():
    alpha, tau, modes = 2.0, 3.0, 16
    point = [np.array([0.3]), np.array([0.7])]
    draws = np.array(
        [
            gaussian_random_field(sample_rng(5, i), point, alpha, tau, modes=modes)
            for i in range(4000)
        ]
    ).ravel()
    k = np.arange(modes)
    phi_x = np.where(k == 0, 1.0, np.sqrt(2) * np.cos(np.pi * k * 0.3))
    phi_y = np.where(k == 0, 1.0, np.sqrt(2) * np.cos(np.pi * k * 0.7))
    sigma = tau ** (alpha - 1)
    std = sigma * (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau**2) ** (-alpha / 2)
    std[0, 0] = 0
    expected = np.sum(std**2 * np.outer(phi_x**2, phi_y**2))
    assert abs(draws.var() / expected - 1) < 0.08
    assert abs(draws.mean()) < 4 * np.sqrt(expected / draws.size)


def test_threshold_and_lognormal_coefficients_are_positive_with_the_named_values():
    t = Darcy.square(15, CoefficientSpec(kind="threshold", high=12, low=3)).sample(0, 0)
    assert set(np.unique(t.inputs["coefficient"])) <= {3.0, 12.0}
    lg = Darcy.square(15, CoefficientSpec(kind="lognormal", scale=2.0)).sample(0, 0)
    assert lg.inputs["coefficient"].min() > 0
    assert grf_coefficients(sample_rng(0, 0), 4, 2, 2.0, 3.0)[0, 0] == 0.0


def test_fast_cosine_transform_matches_the_direct_sum():
    rng = np.random.default_rng(3)
    coefficients = rng.standard_normal((20, 17))
    grid = [np.linspace(0, 1, 33), np.linspace(0, 1, 26)]
    fast = cosine_series(coefficients, grid)
    off_grid = [g * (1 + 1e-12) for g in grid]  # not the node grid: takes the direct sum
    direct = cosine_series(coefficients, off_grid)
    k0, k1 = np.arange(20), np.arange(17)
    phi0 = np.where(k0 == 0, 1, np.sqrt(2)) * np.cos(np.pi * np.outer(grid[0], k0))
    phi1 = np.where(k1 == 0, 1, np.sqrt(2)) * np.cos(np.pi * np.outer(grid[1], k1))
    expected = phi0 @ coefficients @ phi1.T
    np.testing.assert_allclose(fast, expected, atol=1e-11)
    np.testing.assert_allclose(direct, expected, atol=1e-10)


def test_named_scalar_distributions_stay_in_range_and_differ():
    from pdegen.specs import RangeSpec

    rng = np.random.default_rng(0)
    uniform = np.array([RangeSpec(1.0, 100.0).draw(rng) for _ in range(4000)])
    logu = np.array([RangeSpec(1.0, 100.0, "loguniform").draw(rng) for _ in range(4000)])
    assert uniform.min() >= 1 and uniform.max() <= 100 and logu.min() >= 1 and logu.max() <= 100
    assert abs(np.median(uniform) - 50.5) < 3  # uniform: median in the middle
    assert abs(np.median(logu) - 10.0) < 1  # loguniform: median at the geometric middle


def test_a_draw_whose_transforms_are_split_by_lines_is_the_same_bits():
    """`transforms_by`: the cosine series' type-I DCTs handed out in blocks of lines (as the
    ranks of a group share a draw, `pdegen.run.group.SharedTransforms`) give the very bits of
    one call per axis, on a grid whose DCT length has a large prime factor (128 nodes)."""
    calls = []

    def by_blocks(field, axis):
        across = 1 if axis == 0 else 0
        cuts = [0, 5, 44, 90, field.shape[across]]
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            lines = tuple(slice(lo, hi) if d == across else slice(None) for d in range(3))
            field[lines] = scipy.fft.dct(np.ascontiguousarray(field[lines]), type=1, axis=axis)
        calls.append(axis)
        return field

    points = [np.linspace(0.0, 1.0, 128)] * 3
    expected = gaussian_random_field(sample_rng(3, 4), points, 2.0, 3.0)
    with transforms_by(by_blocks):
        got = gaussian_random_field(sample_rng(3, 4), points, 2.0, 3.0)
    assert calls == [0, 1, 2]
    np.testing.assert_array_equal(got, expected)


def test_a_draw_on_cell_centres_has_the_same_bits_on_any_number_of_blas_threads():
    """Centres take the direct sum, whose large products OpenBLAS splits among threads and
    rounds otherwise (a 49^3 draw differed in the last bit on two threads): the draw runs
    them on one thread, as a batch does, so `pdegen check --deep` and a user's own
    `family.sample` re-draw a dataset's inputs bit for bit."""
    from threadpoolctl import threadpool_limits

    centres = (np.arange(49) + 0.5) / 49
    draws = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            draws.append(gaussian_random_field(sample_rng(0, 3), [centres] * 3, 2.0, 3.0))
    np.testing.assert_array_equal(draws[0], draws[1])
