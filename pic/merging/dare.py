"""DARE (Yu et al., ICML 2024, "Language Models are Super Mario"): drop and rescale, then combine.

Each entry of every task vector is dropped independently with probability p and the survivors are multiplied by
1/(1 − p), so E[τ̃_t] = τ_t. The sparse task vectors are then combined by task arithmetic (combine="linear",
mergekit's dare_linear: θ_0 + λ Σ w_t τ̃_t) or by TIES's sign election and disjoint mean without further trimming
(combine="ties", mergekit's dare_ties). The drops come from one torch.Generator seeded with `seed`, drawn key by
key in the state dict's order, so a merge is reproducible.
"""
from __future__ import annotations

import torch

from pic.merging.state import MergeError, Models, Patterns, PerModel, StateDict, prepare
from pic.merging.ties import merge_sparse, resolve_normalize


def drop_and_rescale(tau: torch.Tensor, p: torch.Tensor, generator: torch.Generator,
                     rescale: bool = True) -> torch.Tensor:
    """DARE on task vectors tau [T, ...]: zero each entry of task t with probability p_t (p: [T]), and divide the
    survivors by 1 − p_t (rescale=False keeps them as they are, which biases the merge towards θ_0)."""
    p = p.to(tau.dtype).view(-1, *[1] * (tau.dim() - 1))
    uniform = torch.rand(tau.shape, generator=generator, dtype=tau.dtype).to(tau.device)
    kept = torch.where(uniform >= p.to(tau.device), tau, torch.zeros_like(tau))
    return kept / (1 - p.to(tau.device)) if rescale else kept


def check_drop(p: torch.Tensor, names) -> None:
    bad = [(n, q) for n, q in zip(names, p.tolist()) if not 0.0 <= q < 1.0]
    if bad:
        raise MergeError(f"drop probability p must be in [0, 1) (p = 1 drops everything and rescales by 1/0), got "
                         f"{bad}; in a config, density = 1 − p must be in (0, 1]")


def dare(base: StateDict, models: Models, p: PerModel, lam: float = 1.0, weights: PerModel = 1.0, *,
         combine: str = "linear", rescale: bool = True, normalize: bool | None = None, seed: int = 0,
         include: Patterns = None, exclude: Patterns = None,
         dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """DARE with drop probability p (one for all tasks, or one per task), then task arithmetic (combine="linear")
    or TIES's sign election and disjoint mean (combine="ties"). normalize defaults to mergekit's: False for
    linear, True for ties. Other keys copied from the base."""
    normalize = resolve_normalize(combine, normalize)
    plan = prepare(models, base, include=include, exclude=exclude)
    drop = plan.per_model(p, "p")
    check_drop(drop, plan.names)
    generator = torch.Generator().manual_seed(seed)
    return merge_sparse(plan, lambda tau: drop_and_rescale(tau, drop, generator, rescale),
                        plan.per_model(weights, "weights"), lam, combine, normalize, dtype)
