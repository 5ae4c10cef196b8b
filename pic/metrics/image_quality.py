"""FID, KID and IS computed from features and class probabilities of any network (here our Fashion-MNIST
evaluation net, not Inception: the numbers are comparable with each other, not with Inception-based ones).

- FID (Heusel et al. 2017): |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), matrix root by scipy.linalg.sqrtm.
- KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel (a.b / d + 1)^3, averaged over random subsets;
  its std over subsets is reported with it, as in the paper that introduced it.
- IS (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from pic.metrics.distribution import _np


@dataclass(frozen=True)
class Gaussian:
    """Mean and covariance of a feature set: what FID compares."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def fit(cls, features) -> Gaussian:
        f = _np(features)
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"FID needs features [N >= 2, D], got shape {f.shape}")
        return cls(f.mean(0), np.cov(f, rowvar=False))


def fid(a, b) -> float:
    """Frechet distance between two feature sets (or fitted Gaussians)."""
    ga = a if isinstance(a, Gaussian) else Gaussian.fit(a)
    gb = b if isinstance(b, Gaussian) else Gaussian.fit(b)
    with warnings.catch_warnings():  # singular when there are fewer samples than feature dimensions: scipy warns,
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # the finite root is still the metric's, a non-finite
        covmean = linalg.sqrtm(ga.cov @ gb.cov)  # one is regularised just below
    if not np.isfinite(covmean).all():  # near-singular product: regularise, as the reference implementation does
        eps = 1e-6 * np.eye(len(ga.cov))
        covmean = linalg.sqrtm((ga.cov + eps) @ (gb.cov + eps))
    covmean = covmean.real
    return float(((ga.mean - gb.mean) ** 2).sum() + np.trace(ga.cov) + np.trace(gb.cov) - 2 * np.trace(covmean))


def kid(a, b, subset_size: int = 100, n_subsets: int = 100, seed: int = 0) -> tuple[float, float]:
    """(mean, std) over random subsets of the unbiased polynomial-kernel MMD^2 between two feature sets."""
    a, b = _np(a), _np(b)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    d = a.shape[1]
    values = []
    for _ in range(n_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def inception_score(probs) -> float:
    """exp(E_x KL(p(y|x) || p(y))) of class probabilities [N, K]; between 1 and K."""
    p = np.clip(_np(probs), 1e-12, 1.0)
    marginal = p.mean(0, keepdims=True)
    return float(np.exp((p * (np.log(p) - np.log(marginal))).sum(1).mean()))


def class_accuracy(probs, labels) -> float:
    """Share of samples whose most probable class is the one they were asked to show."""
    return float((_np(probs).argmax(1) == _np(labels).astype(int)).mean())
