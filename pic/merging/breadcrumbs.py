"""Model Breadcrumbs (Davari & Belilovsky, 2023): drop both tails of each task vector, per layer.

Within each tensor of each task vector, rank the entries by |τ_t|; zero the largest round(γ·n) (outliers) and the
smallest, so that the round(density·n) just below the outliers survive (the middle band; density + γ ≤ 1). Then
θ = θ_0 + λ Σ_t w_t τ̂_t (combine="linear", the paper's and mergekit's breadcrumbs), or TIES's sign election and
disjoint mean (combine="ties", mergekit's breadcrumbs_ties).
"""
from __future__ import annotations

import torch

from pic.merging.state import MergeError, Models, Patterns, PerModel, StateDict, prepare
from pic.merging.ties import check_density, keep_count, kth_smallest, merge_sparse, resolve_normalize


def middle_band(tau: torch.Tensor, density: torch.Tensor, gamma: float) -> torch.Tensor:
    """tau [T, ...] with, per task, only the round(density_t·n) magnitudes below the round(γ·n) largest kept."""
    magnitude = tau.abs()
    rows = magnitude.reshape(len(tau), -1)
    n = rows.shape[1]
    n_top, n_keep = keep_count(gamma, n), [keep_count(d, n) for d in density.tolist()]
    # by rank: above the (n − n_top − n_keep)-th smallest magnitude (-inf below rank 1), up to the (n − n_top)-th
    low = kth_smallest(rows, [n - n_top - k for k in n_keep])
    high = kth_smallest(rows, [n - n_top] * len(tau)) if n_top > 0 else [float("inf")] * len(tau)
    low = [lo if k > 0 else float("inf") for lo, k in zip(low, n_keep)]  # a band of 0 keeps nothing
    shape = (-1, *[1] * (tau.dim() - 1))
    low_t = torch.tensor(low, dtype=tau.dtype, device=tau.device).view(shape)
    high_t = torch.tensor(high, dtype=tau.dtype, device=tau.device).view(shape)
    return tau * ((magnitude > low_t) & (magnitude <= high_t))


def breadcrumbs(base: StateDict, models: Models, density: PerModel = 0.9, gamma: float = 0.01, lam: float = 1.0,
                weights: PerModel = 1.0, *, combine: str = "linear", normalize: bool | None = None,
                include: Patterns = None, exclude: Patterns = None,
                dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Model Breadcrumbs: per tensor, keep the `density` fraction of each task vector just below its top γ
    fraction, then add (combine="linear") or sign-elect (combine="ties"). normalize defaults to mergekit's: False
    for linear, True for ties. Other keys copied from the base."""
    normalize = resolve_normalize(combine, normalize)
    plan = prepare(models, base, include=include, exclude=exclude)
    dens = plan.per_model(density, "density")
    check_density(dens, plan.names)
    over = [(n, d) for n, d in zip(plan.names, dens.tolist()) if d + gamma > 1.0 + 1e-12 or gamma < 0]
    if over:
        raise MergeError(f"density + gamma must be at most 1 with gamma >= 0 (gamma={gamma}; density by model "
                         f"{over}): lower density to at most {1 - gamma:g}")
    return merge_sparse(plan, lambda tau: middle_band(tau, dens, gamma), plan.per_model(weights, "weights"), lam,
                        combine, normalize, dtype)
