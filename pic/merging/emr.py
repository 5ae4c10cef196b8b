"""EMR-merging (Huang et al., NeurIPS 2024, "Elect, Mask & Rescale"): one unified task vector, a mask and a scale
per task, so each task runs with its own light-weight modulated model.

Elect:   σ = sign(Σ_t τ_t);  τ_u = σ ⊙ max over the tasks that agree with σ of |τ_t|  (0 where none agrees)
Mask:    M_t = [τ_t ⊙ σ > 0]
Rescale: λ_t = Σ|τ_t| / Σ|M_t ⊙ τ_u|, the sums over every merged entry of the model
Task t:  θ_t ≈ θ_0 + λ_t M_t ⊙ τ_u   (needs the task id at inference)
What is stored besides θ_0: τ_u (one float per entry), T bit-masks and T scalars.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pic.merging.state import MergeError, Models, Patterns, StateDict, prepare


def elect_unified(tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(τ_u, masks [T, ...]) from task vectors tau [T, ...]: the elected sign times the largest agreeing magnitude,
    and each task's agreement mask M_t = [τ_t ⊙ σ > 0]."""
    sign = torch.sign(tau.sum(0))
    masks = tau * sign > 0
    return sign * (tau.abs() * masks).amax(0), masks


@dataclass
class EMRMerge:
    """The result of EMR-merging: `weights(task)` gives one task's model; `storage()` says what is kept.

    base: θ_0 (every key, including those not merged); unified: τ_u per merged key; masks: per merged key a bool
    tensor [T, ...]; scales: λ_t, float64 [T]; tasks: the task (model) names, in mask order.
    """

    base: dict[str, torch.Tensor]
    unified: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    scales: torch.Tensor
    tasks: list[str]
    dtype: torch.dtype | None = None

    def weights(self, task: str | int) -> dict[str, torch.Tensor]:
        """θ_0 + λ_t M_t ⊙ τ_u for the task given by name or index; other keys are θ_0's."""
        t = self._index(task)
        out = {}
        for key, b in self.base.items():
            if key in self.unified:
                u = self.unified[key]
                value = b.to(u.dtype) + float(self.scales[t]) * (u * self.masks[key][t])
                out[key] = value.to(self.dtype if self.dtype is not None else b.dtype)
            else:
                out[key] = b.clone()
        return out

    def storage(self) -> dict[str, int]:
        """What the merge keeps besides θ_0: unified_values (floats of τ_u), mask_bits (T per entry), scales (T)."""
        entries = sum(u.numel() for u in self.unified.values())
        return {"unified_values": entries, "mask_bits": entries * len(self.tasks), "scales": len(self.tasks)}

    def _index(self, task: str | int) -> int:
        if isinstance(task, int) and 0 <= task < len(self.tasks):
            return task
        if isinstance(task, str) and task in self.tasks:
            return self.tasks.index(task)
        raise MergeError(f"no task {task!r} in this EMR merge: pass one of {self.tasks} or an index below "
                         f"{len(self.tasks)}")


def emr(base: StateDict, models: Models, *, include: Patterns = None, exclude: Patterns = None,
        dtype: torch.dtype | None = None) -> EMRMerge:
    """EMR-merging of the models' task vectors against `base`; returns an EMRMerge (one model per task)."""
    plan = prepare(models, base, include=include, exclude=exclude)
    unified, masks = {}, {}
    kept_sum = torch.zeros(len(plan.names), dtype=torch.float64)
    task_sum = torch.zeros(len(plan.names), dtype=torch.float64)
    for key in plan.keys:
        tau = plan.tau(key)
        unified[key], masks[key] = elect_unified(tau)
        task_sum += tau.abs().flatten(1).sum(1).double()
        kept_sum += (masks[key].flatten(1).to(tau.dtype) @ unified[key].abs().flatten()).double()
    # a task whose every entry is 0 (or disagrees everywhere) keeps nothing: its scale is moot, 1 keeps it finite
    scales = torch.where(kept_sum > 0, task_sum / torch.where(kept_sum > 0, kept_sum, torch.ones_like(kept_sum)),
                         torch.ones_like(kept_sum))
    return EMRMerge(plan.finish({}), unified, masks, scales, plan.names, dtype)
