"""Order N systems into a chain in which neighbours are similar.

- "greedy": the published nearest-neighbour chain on Euclidean distances between feature
  vectors, O(N^2 d) through one Gram matrix (computed in blocks for large N).
- "fast": project the features onto their 8 leading principal components (randomised SVD),
  where a KD-tree proposes the nearest unvisited candidates in O(log N) (KD-trees lose their
  edge beyond about 8 dimensions), and re-rank those few candidates by the full-feature
  distance; the tree is rebuilt on the unvisited points as they thin out.
Both start from system 0 and are deterministic (ties go to the lowest index).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from solvers.registry import ORDERINGS, unknown


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


def _kdtree_chain(points: np.ndarray, full: np.ndarray | None = None) -> np.ndarray:
    """Nearest-unvisited chain through a KD-tree on low-dimensional `points`.

    The tree is rebuilt on the unvisited points each time half of its points have been
    visited, so queries keep finding free neighbours (O(N log N) in all). When `full`
    features are given, the free candidates the tree proposes are re-ranked by their
    distance in the full feature space, which keeps the chain close to the greedy one.
    """
    n = points.shape[0]
    visited = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    alive = np.arange(n)
    tree = cKDTree(points)
    used_in_tree = 0
    current = 0
    for step in range(n):
        order[step] = current
        visited[current] = True
        used_in_tree += 1
        if step == n - 1:
            break
        if used_in_tree * 2 > alive.size and alive.size > 64:
            alive = np.flatnonzero(~visited)
            tree = cKDTree(points[alive])
            used_in_tree = 0
        free = np.empty(0, dtype=np.int64)
        for k in (16, 64):
            _, idx = tree.query(points[current], k=min(k, alive.size))
            candidates = alive[np.atleast_1d(idx)]
            free = candidates[~visited[candidates]]
            if free.size:
                break
        if not free.size:  # every near neighbour is taken: scan the tree's unvisited points
            remaining = alive[~visited[alive]]
            diff = points[remaining] - points[current]
            free = remaining[np.argsort(np.einsum("ij,ij->i", diff, diff))[:16]]
        if full is not None and free.size > 1:
            free = free[:8]  # the tree's closest free candidates, re-ranked exactly
            diff = full[free] - full[current]
            free = free[[int(np.argmin(np.einsum("ij,ij->i", diff, diff)))]]
        current = int(free[0])
    return order


def order_systems(features: np.ndarray, method: str = "greedy", components: int = 8) -> np.ndarray:
    """A permutation of range(N) putting similar systems next to each other.

    `features` is (N, d): for example flattened coefficient fields plus scalar parameters
    (scale each so that distances mean what you want). Use `chain_length` to compare methods.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2D (N, d) array, got shape {features.shape}")
    n = features.shape[0]
    if method not in ORDERINGS:
        raise unknown("ordering", method, ORDERINGS)
    if method == "none" or n <= 2:
        return np.arange(n)
    if method == "greedy":
        return _greedy(features)
    full = np.asarray(features, dtype=np.float64)
    return _kdtree_chain(reduce_features(full, components), full)
