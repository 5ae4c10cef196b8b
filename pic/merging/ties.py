"""TIES-merging (Yadav et al., NeurIPS 2023): trim, elect sign, disjoint mean.

1. Trim: keep the round(density·n) largest magnitudes of each task vector τ_t, zero the rest. The paper ranks over
   the whole vector (trim="model", our default); mergekit ranks within each tensor (trim="tensor"), which the
   mergekit-shaped configs use. Magnitudes equal to the threshold are all kept.
2. Elect: per coordinate, the sign of the summed trimmed values, σ = sign(Σ_t w_t τ̂_t).
3. Disjoint mean over the tasks whose (non-zero) trimmed value agrees with σ:
   τ_m = Σ_{t∈A} w_t τ̂_t / Σ_{t∈A} w_t   (normalize=False keeps the sum); θ = θ_0 + λ τ_m.
With unit weights this is the paper's definition; weights act as mergekit's. Where σ = 0 the coordinate keeps θ_0.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from pic.merging.state import MergeError, Models, Patterns, PerModel, Plan, StateDict, prepare, work_dtype
from pic.merging.task_arithmetic import check_weights, weighted_sum

TRIMS = ("model", "tensor")
COMBINES = ("linear", "ties")


def keep_count(density: float, n: int) -> int:
    """How many of n entries a `density` keeps: round(density·n)."""
    return int(round(float(density) * n))


def magnitude_threshold(magnitudes: torch.Tensor, density: float) -> float:
    """The smallest magnitude among the round(density·n) largest of a flat tensor (+inf when that keeps none)."""
    n = magnitudes.numel()
    return kth_smallest(magnitudes.reshape(1, -1), [n - keep_count(density, n) + 1])[0]


def kth_smallest(rows: torch.Tensor, ranks: Sequence[int]) -> list[float]:
    """Per row of rows [T, n], its ranks[t]-th smallest value (1-based); rank < 1 gives -inf, rank > n gives +inf.
    Equal ranks take one batched kthvalue, which runs the rows in parallel."""
    n = rows.shape[1]
    if len(set(ranks)) == 1 and 1 <= ranks[0] <= n:
        return torch.kthvalue(rows, ranks[0], dim=1).values.tolist()
    return [float("-inf") if r < 1 else float("inf") if r > n else float(torch.kthvalue(row, r).values)
            for row, r in zip(rows, ranks)]


def trim_magnitudes(tau: torch.Tensor, density: torch.Tensor,
                    thresholds: Sequence[float] | None = None) -> torch.Tensor:
    """Zeroes all but the largest magnitudes of each task vector in tau [T, ...]: per task, the top density_t
    fraction of this tensor, or those at or above a given per-task threshold (the whole-model trim)."""
    magnitude = tau.abs()
    if thresholds is None:
        rows = magnitude.reshape(len(tau), -1)
        thresholds = kth_smallest(rows, [rows.shape[1] - keep_count(d, rows.shape[1]) + 1 for d in density.tolist()])
    thr = torch.tensor(thresholds, dtype=tau.dtype, device=tau.device).view(-1, *[1] * (tau.dim() - 1))
    return tau * (magnitude >= thr)


def elect_sign(values: torch.Tensor) -> torch.Tensor:
    """σ = sign(Σ_t values_t) per coordinate of values [T, ...]."""
    return torch.sign(values.sum(0))


def disjoint_merge(tau: torch.Tensor, weights: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """TIES steps 2-3 on (trimmed) task vectors tau [T, ...]: elect the sign of Σ w_t τ_t, then average (or sum)
    w_t τ_t over the tasks whose non-zero value has that sign."""
    w = weights.to(tau.dtype)
    values = tau * w.view(-1, *[1] * (tau.dim() - 1))
    agree = values * elect_sign(values) > 0  # same sign as elected, and not zero
    total = (values * agree).sum(0)
    if not normalize:
        return total
    count = torch.tensordot(w, agree.to(tau.dtype), dims=1)
    return total / torch.where(count != 0, count, torch.ones_like(count))  # no agreeing task: total is 0


def check_density(density: torch.Tensor, names: Sequence[str], what: str = "density") -> None:
    bad = [(n, d) for n, d in zip(names, density.tolist()) if not 0.0 <= d <= 1.0]
    if bad:
        raise MergeError(f"{what} must be in [0, 1] (the fraction of each task vector kept), got {bad}")


def model_thresholds(plan: Plan, density: torch.Tensor) -> list[float]:
    """Per task, the magnitude threshold of its top density_t fraction over all merged keys (TIES's whole-vector
    trim); one task at a time, so memory holds one flat task vector."""
    out = []
    for t, d in enumerate(density.tolist()):
        flat = torch.cat([(plan.states[t][k].to(work_dtype(plan.base[k])) - plan.base[k]).abs().flatten()
                          for k in plan.keys]) if plan.keys else torch.zeros(0)
        out.append(magnitude_threshold(flat, d))
    return out


def resolve_normalize(combine: str, normalize: bool | None) -> bool:
    """mergekit's default for `normalize`: a disjoint mean for combine="ties", a plain sum for "linear"."""
    if combine not in COMBINES:
        raise MergeError(f"combine={combine!r} is not one of {COMBINES}: 'linear' adds the sparse task vectors, "
                         "'ties' elects signs and takes the disjoint mean")
    return combine == "ties" if normalize is None else normalize


def merge_sparse(plan: Plan, sparsify: Callable[[torch.Tensor], torch.Tensor], weights: torch.Tensor, lam: float,
                 combine: str, normalize: bool, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """The last step TIES, DARE and Breadcrumbs share: per key, θ_0 + λ · (disjoint mean or weighted sum) of the
    sparsified task vectors sparsify(τ [T, ...])."""
    check_weights(weights, normalize)
    merged = {}
    for key in plan.keys:
        tau = sparsify(plan.tau(key))
        delta = disjoint_merge(tau, weights, normalize) if combine == "ties" else weighted_sum(tau, weights, normalize)
        merged[key] = plan.base[key].to(tau.dtype) + lam * delta
    return plan.finish(merged, dtype)


def ties(base: StateDict, models: Models, density: PerModel = 0.2, lam: float = 1.0, weights: PerModel = 1.0, *,
         trim: str = "model", normalize: bool = True, include: Patterns = None, exclude: Patterns = None,
         dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """TIES-merging: θ_0 + λ · disjoint mean of the trimmed task vectors (density: fraction kept per task, the
    paper's k = 20% by default; trim: "model" (paper) or "tensor" (mergekit)). Other keys copied from the base."""
    if trim not in TRIMS:
        raise MergeError(f"trim={trim!r} is not one of {TRIMS}: 'model' ranks magnitudes over the whole task vector "
                         "(TIES), 'tensor' within each tensor (mergekit)")
    plan = prepare(models, base, include=include, exclude=exclude)
    dens = plan.per_model(density, "density")
    check_density(dens, plan.names)
    thresholds = model_thresholds(plan, dens) if trim == "model" else None
    return merge_sparse(plan, lambda tau: trim_magnitudes(tau, dens, thresholds), plan.per_model(weights, "weights"),
                        lam, "ties", normalize, dtype)
