"""Experiment 4, weight space against output space on the same members: one merged model (run once), the logit
ensemble (every member run, probabilities averaged) and PIC's consensus (every member a scorer of the candidate
labels through pic.energy.ComposedEnergy, the label of least summed energy chosen by pic.optim.selection's
select_argmin), with their cost: parameters stored, forward passes per example, wall time.

A member's energy of label c for image x is −log p_member(c | x), so PIC's consensus is the product of the
members' distributions (the ensemble averages them instead). Also the linear-mode-connectivity curve: the
accuracy of (1 − α) θ_a + α θ_b along α, for members that share an initialisation and for members that do not.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from pic.energy import ComposedEnergy, Scorer
from pic.merging import interpolate, uniform_soup
from pic.optim.selection import select_argmin
from pic.tasks.merging.domains import accuracy, classifier

LABELS = list(range(10))


class MemberScorer(Scorer):
    """energy(labels [K], image=x [64]) -> −log p(label | x) under one member, [K]; counts its forward passes."""

    differentiable = False

    def __init__(self, state: dict[str, torch.Tensor], name: str):
        self.model, self.name, self.forward_passes = classifier(state).eval(), name, 0

    def energy(self, labels, image: torch.Tensor, **context) -> torch.Tensor:
        self.forward_passes += 1
        with torch.no_grad():
            logp = F.log_softmax(self.model(image.unsqueeze(0))[0], -1)
        return -logp[torch.as_tensor(list(labels))]


def consensus(members: Sequence[dict[str, torch.Tensor]]) -> ComposedEnergy:
    """The members as equally weighted scorers of one product of experts."""
    return ComposedEnergy([MemberScorer(m, f"member {i}") for i, m in enumerate(members)])


def consensus_predict(energy: ComposedEnergy, images: torch.Tensor) -> torch.Tensor:
    """Per image, the label of least summed energy (select_argmin over the 10 labels)."""
    return torch.tensor([select_argmin(LABELS, energy, image=x).candidate for x in images])


@torch.no_grad()
def ensemble_predict(members: Sequence[dict[str, torch.Tensor]], images: torch.Tensor) -> torch.Tensor:
    """The label of the largest mean probability over the members (every member run on every image)."""
    return torch.stack([F.softmax(classifier(m).eval()(images), -1) for m in members]).mean(0).argmax(1)


@dataclass
class Composition:
    """One way of composing the members, measured: accuracy, parameters stored, forward passes per example,
    wall time (seconds for the whole test set, the model(s) already built)."""

    method: str
    accuracy: float
    parameters: int
    forward_passes: float
    seconds: float
    examples: int


def compare(members: Sequence[dict[str, torch.Tensor]], images: torch.Tensor, labels: torch.Tensor) -> list[Composition]:
    """Weight space (uniform soup), output space (logit ensemble, PIC consensus) on the same members."""
    size = int(sum(v.numel() for v in members[0].values()))
    n = len(members)
    merged = classifier(uniform_soup(list(members))).eval()
    start = time.perf_counter()
    with torch.no_grad():
        merged_pred = merged(images).argmax(1)
    t_merged = time.perf_counter() - start
    start = time.perf_counter()
    ens_pred = ensemble_predict(members, images)
    t_ens = time.perf_counter() - start
    energy = consensus(members)
    start = time.perf_counter()
    pic_pred = consensus_predict(energy, images)
    t_pic = time.perf_counter() - start
    passes = sum(t.scorer.forward_passes for t in energy.terms) / len(images)

    def acc(pred):
        return float((pred == labels).float().mean())

    return [Composition("merged (uniform soup)", acc(merged_pred), size, 1.0, t_merged, len(images)),
            Composition("logit ensemble", acc(ens_pred), n * size, float(n), t_ens, len(images)),
            Composition("PIC consensus", acc(pic_pred), n * size, passes, t_pic, len(images))]


def connectivity(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
                 alphas: Sequence[float]) -> list[float]:
    """Accuracy of α θ_b + (1 − α) θ_a for each α."""
    return [accuracy(interpolate(b, a, float(alpha)), images, labels) for alpha in alphas]
