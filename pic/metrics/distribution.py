"""Distances between two sample sets: how far consensus samples are from a target distribution."""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel


def _np(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)


def sliced_wasserstein(a, b, n_projections: int = 50, seed: int = 0) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the projected samples."""
    a, b = _np(a), _np(b)
    dirs = np.random.default_rng(seed).standard_normal((a.shape[1], n_projections))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    pa, pb = a @ dirs, b @ dirs
    return float(np.mean([wasserstein_distance(pa[:, i], pb[:, i]) for i in range(n_projections)]))


def mmd_rbf(a, b, bandwidth: float | None = None, max_points: int = 2000, seed: int = 0) -> float:
    """Unbiased squared maximum mean discrepancy with a Gaussian kernel (bandwidth: median heuristic)."""
    rng = np.random.default_rng(seed)
    a, b = _np(a), _np(b)
    a = a[rng.permutation(len(a))[:max_points]]
    b = b[rng.permutation(len(b))[:max_points]]
    if bandwidth is None:
        both = np.concatenate([a, b])
        bandwidth = float(np.median(euclidean_distances(both, both)))
    gamma = 1.0 / (2 * bandwidth**2)
    kaa, kbb, kab = rbf_kernel(a, a, gamma=gamma), rbf_kernel(b, b, gamma=gamma), rbf_kernel(a, b, gamma=gamma)
    n, m = len(a), len(b)
    return float((kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
                 - 2 * kab.mean())
