"""Task arithmetic (Ilharco et al. 2023) and vl-merging's modality arithmetic: add task vectors to the base.

θ = θ_0 + λ Σ_t w_t τ_t,   τ_t = θ_t − θ_0
(normalize=True divides the sum by Σ_t w_t, as mergekit's `normalize` does.)
Modality arithmetic (Sung et al. 2023) is the same sum with the seed pre-training as θ_0 and one task vector per
modality: θ = θ_seed + λ Σ_m (θ_m − θ_seed), λ ≈ 0.75–1 in the paper.
"""
from __future__ import annotations

import torch

from pic.merging.state import MergeError, Models, Patterns, PerModel, StateDict, prepare


def weighted_sum(tau: torch.Tensor, weights: torch.Tensor, normalize: bool) -> torch.Tensor:
    """Σ_t w_t τ_t over the first dimension of tau [T, ...] (divided by Σ_t w_t when normalize)."""
    total = torch.tensordot(weights.to(tau.dtype), tau, dims=1)  # one BLAS pass, no [T, ...] temporary
    return total / weights.sum().to(tau.dtype) if normalize else total


def check_weights(weights: torch.Tensor, normalize: bool) -> None:
    if normalize and float(weights.sum()) == 0.0:
        raise MergeError(f"weights {weights.tolist()} sum to 0, so normalize=True would divide by 0: change the "
                         "weights or pass normalize=False")


def task_arithmetic(base: StateDict, models: Models, lam: float = 1.0, weights: PerModel = 1.0, *,
                    normalize: bool = False, include: Patterns = None, exclude: Patterns = None,
                    dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """θ_0 + λ Σ_t w_t τ_t for every merged key; other keys copied from the base."""
    plan = prepare(models, base, include=include, exclude=exclude)
    w = plan.per_model(weights, "weights")
    check_weights(w, normalize)
    merged = {}
    for key in plan.keys:
        tau = plan.tau(key)
        merged[key] = plan.base[key].to(tau.dtype) + lam * weighted_sum(tau, w, normalize)
    return plan.finish(merged, dtype)


def modality_arithmetic(seed: StateDict, models: Models, lam: float = 1.0, *, include: Patterns = None,
                        exclude: Patterns = None, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """vl-merging's θ_seed + λ Σ_m (θ_m − θ_seed): task arithmetic from the shared seed pre-training, one
    modality-specific model per modality (V, L, and VL where the layer has one)."""
    return task_arithmetic(seed, models, lam, include=include, exclude=exclude, dtype=dtype)
