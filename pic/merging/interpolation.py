"""Weighted averages of weights: linear merging, two-model interpolation, and vl-merging's interpolation rule.

linear:        θ = Σ_m w_m θ_m / Σ_m w_m       (normalize=False drops the division, as mergekit's `normalize`)
interpolate:   θ = α θ_a + (1 − α) θ_b
vl-merging (Sung et al. 2023): θ = α θ_V + (1 − α) θ_L; in layers that also have a vision-language expert the
weights are 2α/3, 2(1 − α)/3 and 1/3 for V, L and VL (`vl_expert_weights`).
"""
from __future__ import annotations

from typing import Mapping

import torch

from pic.merging.state import MergeError, Models, Patterns, PerModel, StateDict, _check, prepare, work_dtype
from pic.merging.task_arithmetic import check_weights, weighted_sum


def linear(models: Models, weights: PerModel = 1.0, *, normalize: bool = True, include: Patterns = None,
           exclude: Patterns = None, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Σ_m w_m θ_m (/ Σ_m w_m when normalize) for every merged key; other keys copied from the first model."""
    plan = prepare(models, include=include, exclude=exclude)
    w = plan.per_model(weights, "weights")
    check_weights(w, normalize)
    merged = {key: weighted_sum(plan.stack(key), w, normalize) for key in plan.keys}
    return plan.finish(merged, dtype)


def interpolate(a: StateDict, b: StateDict, alpha: float, *, include: Patterns = None, exclude: Patterns = None,
                dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """α θ_a + (1 − α) θ_b (α = 1 gives a, α = 0 gives b, exactly); other keys copied from a."""
    return linear({"a": a, "b": b}, [alpha, 1.0 - alpha], normalize=False, include=include, exclude=exclude,
                  dtype=dtype)


def vl_expert_weights(alpha: float) -> tuple[float, float, float]:
    """vl-merging's weights of the V, L and VL experts in a layer that has all three: 2α/3, 2(1 − α)/3, 1/3."""
    return 2 * alpha / 3, 2 * (1 - alpha) / 3, 1 / 3


def vl_interpolation(vision: StateDict, language: StateDict, alpha: float = 0.5,
                     vision_language: StateDict | None = None, *, include: Patterns = None,
                     exclude: Patterns = None, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """vl-merging's interpolation of modality-specific weights into one modality-agnostic model.

    vision, language: the V and L experts' weights under the merged model's keys; vision_language (optional): the
    VL experts' weights, only for the keys of the layers that have one. Keys in it take vl_expert_weights(α), the
    others α θ_V + (1 − α) θ_L. Keys not merged are copied from vision.
    """
    merged = interpolate(vision, language, alpha, include=include, exclude=exclude, dtype=dtype)
    if vision_language is None:
        return merged
    if not isinstance(vision_language, Mapping):
        raise MergeError(f"vision_language is a {type(vision_language).__name__}, not a state dict: pass the VL "
                         "experts' weights by key")
    unknown = [k for k in vision_language if k not in vision]
    if unknown:
        raise MergeError(f"vision_language has keys the V/L models lack, e.g. {unknown[:3]}: name the VL experts' "
                         "weights by the merged model's keys")
    _check([("vision", {k: vision[k] for k in vision_language}),
            ("language", {k: language[k] for k in vision_language}), ("vision_language", vision_language)])
    plan = prepare({"vision": vision, "language": language}, include=include, exclude=exclude)
    weights = vl_expert_weights(alpha)
    for key in plan.keys:
        if key in vision_language:
            wd = work_dtype(vision[key])
            parts = (vision[key], language[key], vision_language[key])
            value = sum(w * p.to(wd) for w, p in zip(weights, parts))
            merged[key] = value.to(dtype if dtype is not None else vision[key].dtype)
    return merged
