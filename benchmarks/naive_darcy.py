"""The Darcy generator a user writes by hand, the baseline pdegen's engines must beat.

    .venv/bin/python benchmarks/naive_darcy.py OUT.h5 --nodes 64 --samples 4000 [--processes 2]

What a careful user writes without pdegen: FNO's thresholded Gaussian random field drawn by
an FFT (their `GaussianRF`, periodic, on the node grid), the 5-point finite-volume matrix of
-div(a grad u) = 1 with harmonic face means and u = 0 on the boundary assembled with numpy
and scipy.sparse, scipy's `spsolve` (SuperLU), samples spread over a process pool with one
BLAS thread each, and one HDF5 file (coefficient, solution) written by the parent. The same
law and discretisation as `recipes/darcy.yaml`, not the same draws: the timing, not the bits,
is compared.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402


def coefficient(rng: np.random.Generator, n: int, alpha=2.0, tau=3.0) -> np.ndarray:
    """FNO's GaussianRF on an n x n grid, thresholded to 12 / 3."""
    k = np.fft.fftfreq(n, 1.0 / n)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    sigma = tau ** (alpha - 1.0)
    sqrt_eig = n * n * sigma * (4 * np.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha / 2)
    sqrt_eig[0, 0] = 0.0
    xi = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    field = np.fft.ifft2(sqrt_eig * xi).real
    return np.where(field >= 0.0, 12.0, 3.0)


def solve(a: np.ndarray) -> np.ndarray:
    """-div(a grad u) = 1, u = 0 on the boundary nodes, on the unit square's node grid."""
    n = a.shape[0]
    m, h = n - 2, 1.0 / (n - 1)
    east = 2 * a[1:-1, 1:-1] * a[2:, 1:-1] / (a[1:-1, 1:-1] + a[2:, 1:-1])
    west = 2 * a[1:-1, 1:-1] * a[:-2, 1:-1] / (a[1:-1, 1:-1] + a[:-2, 1:-1])
    north = 2 * a[1:-1, 1:-1] * a[1:-1, 2:] / (a[1:-1, 1:-1] + a[1:-1, 2:])
    south = 2 * a[1:-1, 1:-1] * a[1:-1, :-2] / (a[1:-1, 1:-1] + a[1:-1, :-2])
    index = np.arange(m * m).reshape(m, m)
    rows, cols, vals = [index.ravel()], [index.ravel()], [(east + west + north + south).ravel()]
    for coeff, shift in ((east, (1, 0)), (west, (-1, 0)), (north, (0, 1)), (south, (0, -1))):
        i0 = slice(max(0, -shift[0]), m - max(0, shift[0]))
        j0 = slice(max(0, -shift[1]), m - max(0, shift[1]))
        i1 = slice(max(0, shift[0]), m - max(0, -shift[0]))
        j1 = slice(max(0, shift[1]), m - max(0, -shift[1]))
        rows.append(index[i0, j0].ravel())
        cols.append(index[i1, j1].ravel())
        vals.append(-coeff[i0, j0].ravel())
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))))
    u = np.zeros((n, n))
    u[1:-1, 1:-1] = spla.spsolve(A, np.full(m * m, h * h)).reshape(m, m)
    return u


def one_sample(args: tuple[int, int, int]) -> tuple[int, np.ndarray, np.ndarray]:
    seed, index, n = args
    a = coefficient(np.random.default_rng([seed, index]), n)
    return index, a.astype(np.float32), solve(a).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    n, count = args.nodes, args.samples
    with h5py.File(args.out, "w") as f, multiprocessing.Pool(args.processes) as pool:
        coefficients = f.create_dataset("coefficient", (count, n, n), dtype="f4")
        solutions = f.create_dataset("solution", (count, n, n), dtype="f4")
        work = ((args.seed, i, n) for i in range(count))
        for index, a, u in pool.imap_unordered(one_sample, work, chunksize=16):
            coefficients[index] = a
            solutions[index] = u
    print(f"{count} samples in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
