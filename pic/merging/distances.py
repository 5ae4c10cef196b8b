"""Pre-merge checks: how far apart two models' weights (or task vectors) are, as predictors of how well they merge.

Each function takes two tensors or two state dicts (then all merged keys, flattened into one vector; include and
exclude select keys, e.g. one layer). With `base`, the vectors compared are the task vectors x − θ_0, y − θ_0.
Sums run in float64.

l2_distance                       ‖x − y‖₂ (the base cancels)
cosine_similarity                 ⟨x, y⟩ / (‖x‖ ‖y‖)
sign_conflict_rate                share of coordinates where two of the task vectors have opposite signs (TIES's
                                  interference count), over all coordinates
soft_sign_dissimilarity           ours: 1 − mean_i |x_i + y_i| / (|x_i| + |y_i|) over entries not both 0
truncated_soft_sign_dissimilarity ours: the same over the `keep` fraction of entries with the largest |x_i| + |y_i|

vl-merging (Sung et al. 2023, arXiv 2304.14933) proposes two weight-distance metrics, with L2 and cosine as
baselines. Their definitions could not be read here (neither the repository ylsung/vl-merging @13c3041 nor any
stored copy of the paper's text holds them), so the two sign-based metrics above are OUR definitions, named after
what they compute; do not cite them as the paper's metrics until checked against its text.
"""
from __future__ import annotations

from typing import Iterator, Union

import torch

from pic.merging.state import MergeError, Models, Patterns, StateDict, named, prepare
from pic.merging.ties import magnitude_threshold

Weights = Union[torch.Tensor, StateDict]


def _vectors(x: Weights, y: Weights, base: Weights | None, include: Patterns,
             exclude: Patterns) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Pairs of flat float64 pieces of (x − base, y − base): one per tensor, or one per merged key."""
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)) or x.shape != y.shape:
            raise MergeError(f"compare two tensors of one shape or two state dicts, got {_what(x)} and {_what(y)}")
        b = base if base is not None else torch.zeros((), dtype=x.dtype)
        yield (x.double() - b.double()).flatten(), (y.double() - b.double()).flatten()
        return
    plan = prepare({"x": x, "y": y}, base, include=include, exclude=exclude)
    for key in plan.keys:
        stacked = plan.tau(key) if base is not None else plan.stack(key)
        yield stacked[0].double().flatten(), stacked[1].double().flatten()


def _what(v) -> str:
    return f"a tensor of shape {tuple(v.shape)}" if isinstance(v, torch.Tensor) else f"a {type(v).__name__}"


def l2_distance(x: Weights, y: Weights, *, include: Patterns = None, exclude: Patterns = None) -> float:
    """‖x − y‖₂ over every merged entry."""
    return float(sum(((a - b) ** 2).sum() for a, b in _vectors(x, y, None, include, exclude)) ** 0.5)


def cosine_similarity(x: Weights, y: Weights, base: Weights | None = None, *, include: Patterns = None,
                      exclude: Patterns = None) -> float:
    """⟨x', y'⟩ / (‖x'‖ ‖y'‖) with x' = x − base (task vectors) or x itself when base is None."""
    dot = nx = ny = 0.0
    for a, b in _vectors(x, y, base, include, exclude):
        dot, nx, ny = dot + float(a @ b), nx + float(a @ a), ny + float(b @ b)
    if nx == 0.0 or ny == 0.0:
        raise MergeError("the cosine of a zero vector is undefined: one model equals the base (its task vector is 0)")
    return dot / (nx * ny) ** 0.5


def sign_conflict_rate(models: Models | list[torch.Tensor], base: StateDict | None = None, *,
                       include: Patterns = None, exclude: Patterns = None) -> float:
    """The share of coordinates at which some task vector is > 0 and another < 0. models: task vectors (tensors
    of one shape, or state dicts), or the fine-tuned models themselves with their `base`."""
    if isinstance(models, (list, tuple)) and models and all(isinstance(m, torch.Tensor) for m in models):
        stacks = [torch.stack([m - base if base is not None else m for m in models]).flatten(1)]
    else:
        plan = prepare(named(models), base, include=include, exclude=exclude)
        stacks = [(plan.tau(k) if base is not None else plan.stack(k)).flatten(1) for k in plan.keys]
    conflicts = sum(int(((s > 0).any(0) & (s < 0).any(0)).sum()) for s in stacks)
    total = sum(s.shape[1] for s in stacks)
    if total == 0:
        raise MergeError("no coordinates to compare: include/exclude left no key")
    return conflicts / total


def soft_sign_dissimilarity(x: Weights, y: Weights, base: Weights | None = None, *, include: Patterns = None,
                            exclude: Patterns = None) -> float:
    """Ours: 1 − mean_i |x_i + y_i| / (|x_i| + |y_i|) over the entries not both zero. 0 when every sign agrees,
    1 when y = −x; an entry's share of disagreement grows with how evenly it is split between the two signs."""
    total = count = 0.0
    for a, b in _vectors(x, y, base, include, exclude):
        ratio, valid = _agreement(a, b)
        total, count = total + float(ratio[valid].sum()), count + int(valid.sum())
    if count == 0:
        raise MergeError("every entry is 0 in both: there are no signs to compare")
    return 1.0 - total / count


def truncated_soft_sign_dissimilarity(x: Weights, y: Weights, base: Weights | None = None, keep: float = 0.2, *,
                                      include: Patterns = None, exclude: Patterns = None) -> float:
    """Ours: soft_sign_dissimilarity over only the round(keep·n) entries with the largest |x_i| + |y_i| (ties at
    the threshold included; small entries flip sign by noise and would dominate the count)."""
    if not 0.0 < keep <= 1.0:
        raise MergeError(f"keep={keep} must be in (0, 1]: the fraction of largest entries compared")
    pieces = list(_vectors(x, y, base, include, exclude))
    a, b = torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces])
    top = (a.abs() + b.abs()) >= magnitude_threshold(a.abs() + b.abs(), keep)
    if not bool(top.any()):
        raise MergeError(f"keep={keep} of {a.numel()} entries keeps none: raise keep")
    return soft_sign_dissimilarity(a[top], b[top])


def _agreement(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(|a + b| / (|a| + |b|), mask of the entries where |a| + |b| > 0)."""
    size = a.abs() + b.abs()
    valid = size > 0
    return (a + b).abs() / torch.where(valid, size, torch.ones_like(size)), valid

