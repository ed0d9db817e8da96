"""Order N systems into a chain in which neighbours are similar.

- "greedy": the published nearest-neighbour chain on Euclidean distances between feature
  vectors, O(N^2 d) through one Gram matrix (computed in blocks for large N).
- "fast": project the features onto their leading principal components (randomised SVD), then
  build the same nearest-unvisited chain in that low-dimensional space with a KD-tree, which
  answers most steps in O(log N) and falls back to a scan of the unvisited points only when
  all near neighbours are taken.
Both start from system 0 and are deterministic (ties go to the lowest index).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

ORDERING_METHODS = ("none", "greedy", "fast")


def chain_length(features: np.ndarray, order: np.ndarray) -> float:
    """Sum of Euclidean distances between consecutive systems of the chain."""
    f = np.asarray(features, dtype=float)[order]
    return float(np.linalg.norm(np.diff(f, axis=0), axis=1).sum())


def _greedy(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=float)
    n = f.shape[0]
    sq = np.einsum("ij,ij->i", f, f)
    gram = f @ f.T if n <= 20000 else None
    visited = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    current = 0
    for step in range(n):
        order[step] = current
        visited[current] = True
        if step == n - 1:
            break
        dots = gram[current] if gram is not None else f @ f[current]
        dist = sq - 2.0 * dots  # + sq[current], the same for every candidate
        dist[visited] = np.inf
        current = int(np.argmin(dist))
    return order


def reduce_features(features: np.ndarray, components: int = 16, seed: int = 0) -> np.ndarray:
    """Scores on the leading principal components (randomised range finder, 2 power steps)."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    components = min(components, n, d)
    mean = f.mean(axis=0)
    rng = np.random.default_rng(seed)
    sketch = rng.standard_normal((d, components + 8))
    Y = f @ sketch - np.outer(np.ones(n), mean @ sketch)
    for _ in range(2):
        Q, _ = np.linalg.qr(Y)
        Z = f.T @ Q - np.outer(mean, Q.sum(axis=0))
        Q2, _ = np.linalg.qr(Z)
        Y = f @ Q2 - np.outer(np.ones(n), mean @ Q2)
    Q, _ = np.linalg.qr(Y)
    B = Q.T @ f - np.outer(Q.sum(axis=0), mean)  # (c+8, d): the centred data in Q's basis
    _, _, Vt = np.linalg.svd(B, full_matrices=False)
    return f @ Vt[:components].T - mean @ Vt[:components].T


def _kdtree_chain(points: np.ndarray) -> np.ndarray:
    n = points.shape[0]
    tree = cKDTree(points)
    visited = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    current = 0
    for step in range(n):
        order[step] = current
        visited[current] = True
        if step == n - 1:
            break
        nxt = -1
        k = 8
        while k <= 64:
            _, idx = tree.query(points[current], k=min(k, n))
            idx = np.atleast_1d(idx)
            free = idx[~visited[idx]]
            if free.size:
                nxt = int(free[0])
                break
            k *= 4
        if nxt < 0:  # every near neighbour is taken: scan what is left
            remaining = np.flatnonzero(~visited)
            d = np.einsum(
                "ij,ij->i", points[remaining] - points[current], points[remaining] - points[current]
            )
            nxt = int(remaining[np.argmin(d)])
        current = nxt
    return order


def order_systems(features: np.ndarray, method: str = "greedy", components: int = 16) -> np.ndarray:
    """A permutation of range(N) putting similar systems next to each other.

    `features` is (N, d): for example flattened coefficient fields plus scalar parameters
    (scale each so that distances mean what you want). Use `chain_length` to compare methods.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2D (N, d) array, got shape {features.shape}")
    n = features.shape[0]
    if method not in ORDERING_METHODS:
        raise ValueError(f"unknown ordering {method!r} (allowed: {', '.join(ORDERING_METHODS)})")
    if method == "none" or n <= 2:
        return np.arange(n)
    if method == "greedy":
        return _greedy(features)
    return _kdtree_chain(reduce_features(features, components))
