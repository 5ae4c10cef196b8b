"""The cross-model consensus's weights and per-scorer normalisation, chosen on held-out *train* problems only.

Normalisation: the likelihood scorer is standardised per proposer (mean and sd of -mean log p over that
proposer's train candidates: models differ in how sure they are of their own text); then every scorer's energy
is divided by its sd over all train candidates, so that no term drowns another by its scale alone. Weights: a
grid search over the standardised scorers (the agreement weight fixed at 1: argmin ignores a common scale) for the
highest accuracy of the argmin on the fitting problems; ties go to the smallest total weight. The result is a
committed checkpoint (pic.tasks.gsm8k.checkpoints.CONSENSUS) that notebook 32 loads; test problems never enter.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import numpy as np
import torch

from pic.tasks.gsm8k.scorers import ACROSS_MODELS, OwnLikelihood, across_models_energy

GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
ANCHOR = "agreement"


@dataclass
class ConsensusWeights:
    weights: dict[str, float]  # on standardised energies
    scales: dict[str, float]  # each scorer's sd over the train candidates
    lm_scales: dict[str, tuple[float, float]]  # proposer -> (mean, sd) of -mean log p
    fit_accuracy: float
    problems: int

    def effective(self) -> dict[str, float]:
        """The weights of the raw energies: weight / scale."""
        return {k: self.weights[k] / self.scales[k] for k in self.weights}

    def energy(self):
        return across_models_energy(self.effective(), self.lm_scales)

    def every_scorer(self):
        """All ACROSS_MODELS scorers with unit weights (for the rows of each scorer alone)."""
        return across_models_energy({n: 1.0 for n in ACROSS_MODELS}, self.lm_scales)

    def to_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        names = list(ACROSS_MODELS)
        tensors = {"weights": torch.tensor([self.weights[n] for n in names], dtype=torch.float64),
                   "scales": torch.tensor([self.scales[n] for n in names], dtype=torch.float64)}
        meta = {"scorers": json.dumps(names), "lm_scales": json.dumps(self.lm_scales, sort_keys=True),
                "fit_accuracy": f"{self.fit_accuracy:.6f}", "problems": str(self.problems)}
        return tensors, meta

    @classmethod
    def from_checkpoint(cls, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> ConsensusWeights:
        names = json.loads(meta["scorers"])
        return cls(dict(zip(names, tensors["weights"].tolist())), dict(zip(names, tensors["scales"].tolist())),
                   {k: tuple(v) for k, v in json.loads(meta["lm_scales"]).items()}, float(meta["fit_accuracy"]),
                   int(meta["problems"]))


def lm_scales(pools) -> dict[str, tuple[float, float]]:
    """proposer -> (mean, sd) of -mean log p over its candidates in `pools` (lists of Candidate)."""
    values: dict[str, list[float]] = {}
    for pool in pools:
        for c in pool:
            if c.mean_logprob is not None:
                values.setdefault(c.proposer, []).append(-c.mean_logprob)
    def sd(v):  # a proposer whose candidates all score alike has no spread to divide by
        s = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
        return s if s > 1e-9 else 1.0

    return {k: (float(np.mean(v)), sd(v)) for k, v in values.items()}


def energy_matrix(pools, questions, scales: dict[str, tuple[float, float]]) -> list[np.ndarray]:
    """Per problem: [candidates, scorers] energies of the ACROSS_MODELS scorers (in that order)."""
    energy = across_models_energy({n: 1.0 for n in ACROSS_MODELS}, scales)
    out = []
    for pool, q in zip(pools, questions):
        e = energy(pool, question=q)
        out.append(np.stack([e.terms[n].numpy() for n in ACROSS_MODELS], axis=1).astype(float))
    return out


def argmin_correct(energies: list[np.ndarray], correct: list[np.ndarray], w: np.ndarray) -> np.ndarray:
    """[problems, len(w)] correctness of argmin_i sum_n w_n E_in per problem (energies: [candidates, scorers] each)
    for each weight vector (rows of w); ties to the first candidate."""
    w = np.atleast_2d(w)
    return np.array([c[np.argmin(e @ w.T, axis=0)] for e, c in zip(energies, correct)], dtype=float)


def argmin_accuracy(energies: list[np.ndarray], correct: list[np.ndarray], w: np.ndarray) -> np.ndarray:
    """[len(w)] accuracy of argmin_i sum_n w_n E_in for each weight vector (rows of w); ties to the first."""
    return argmin_correct(energies, correct, w).mean(0)


def fit_weights(pools, questions, correct: list[np.ndarray], grid=GRID) -> ConsensusWeights:
    """Normalisation and weights from train pools (see the module docstring)."""
    scales_lm = lm_scales(pools)
    energies = energy_matrix(pools, questions, scales_lm)
    spread = np.concatenate(energies).std(axis=0, ddof=1)
    spread = np.where(spread > 1e-9, spread, 1.0)
    standard = [e / spread for e in energies]
    free = [n for n in ACROSS_MODELS if n != ANCHOR]
    combos = np.array([[1.0 if n == ANCHOR else dict(zip(free, ws))[n] for n in ACROSS_MODELS]
                       for ws in itertools.product(grid, repeat=len(free))])
    combos = combos[np.argsort(combos.sum(1), kind="stable")]  # ties go to the smallest total weight
    acc = argmin_accuracy(standard, correct, combos)
    best = int(np.argmax(acc))
    return ConsensusWeights(dict(zip(ACROSS_MODELS, combos[best].tolist())), dict(zip(ACROSS_MODELS, spread.tolist())),
                            scales_lm, float(acc[best]), len(pools))
