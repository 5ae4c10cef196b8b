"""Experiment 3, Model Ratatouille under distribution shift, DomainBed-style, in miniature (Ramé et al. 2023).

Data: scikit-learn's bundled 8x8 digits (1,797 images, installed with scikit-learn). As in DomainBed's
RotatedMNIST, each domain is a disjoint set of images rotated by one angle (ANGLES); a further disjoint pool of
unrotated images carries the foundation's pre-training and the auxiliary tasks. One domain at a time is the test
domain (leave one domain out); training, and every model selection (greedy soups), uses only the other domains'
images, split into train and in-domain validation.

Models: an MLP featurizer (64 -> 64 -> 64, ReLU) and a linear head over the 10 digits. Pipeline per seed (the
training notebook):
  foundation  the featurizer pre-trained on the pool by predicting which of 4 right-angle rotations was applied
              (self-supervised; no digit labels)
  auxiliary   one fine-tuning per auxiliary task on the pool: AUX_TASKS, labellings that differ from the target
              (parity, digit >= 5, digit mod 3); linear probe first, then the whole featurizer
per test domain:
  probe       a linear probe of the foundation on the target training domains: the head every run starts from
  soup runs   R target fine-tunings from the foundation (different seeds and learning rates); ERM = each alone
  ratatouille R target fine-tunings, run i starting from auxiliary slot i mod (A + 1) (slot 0: the foundation),
              after a short head-only warm-up
  fusing      R target fine-tunings from the average of the auxiliary featurizers (Choshen et al.'s fusing)
  scratch     two fine-tunings from independent random initialisations (for the linear-mode-connectivity figure)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pic.merging import linear
from pic.train import fit, step_batches, warmup_cosine

ANGLES = (0, 30, 60, 90)
AUX_TASKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "parity": lambda y: y % 2,
    "large": lambda y: (y >= 5).long(),
    "mod3": lambda y: y % 3,
}
AUX_CLASSES = {"parity": 2, "large": 2, "mod3": 3}
LEARNING_RATES = (1e-3, 2e-3, 3e-3)  # run i takes LEARNING_RATES[i % 3]: the runs differ in hyper-parameters too


@dataclass
class Domains:
    """images: angle -> [N_d, 64] in [0, 1]; labels: angle -> [N_d]; train / validation: angle -> rows of that
    domain; pool_images / pool_labels: the unrotated pool of the foundation and the auxiliary tasks."""

    images: dict[int, torch.Tensor]
    labels: dict[int, torch.Tensor]
    train: dict[int, torch.Tensor]
    validation: dict[int, torch.Tensor]
    pool_images: torch.Tensor
    pool_labels: torch.Tensor

    @property
    def angles(self) -> list[int]:
        return list(self.images)


@dataclass
class Split:
    """One leave-one-domain-out split: train and in-domain validation from the training domains, test = the held-out
    domain. `domains` names the training domains."""

    test_domain: int
    domains: tuple[int, ...]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def rotate(images: torch.Tensor, angle: float) -> torch.Tensor:
    """Images [N, 64] (8x8) rotated by `angle` degrees about their centre (bilinear, same size)."""
    from scipy.ndimage import rotate as nd_rotate

    if angle % 360 == 0:
        return images.clone()
    x = images.reshape(-1, 8, 8).numpy()
    out = nd_rotate(x, angle, axes=(1, 2), reshape=False, order=1, mode="constant", cval=0.0)
    return torch.from_numpy(np.clip(out, 0.0, 1.0)).reshape(-1, 64).float()


def make_domains(angles: Sequence[int] = ANGLES, pool: int = 397, val_fraction: float = 0.2,
                 limit: int | None = None) -> Domains:
    """Domains from scikit-learn's digits: a fixed shuffle (seed 0, the same for every model seed), the first
    `pool` images unrotated for the foundation and auxiliary tasks, the rest dealt into len(angles) disjoint
    domains, each rotated by its angle and split into train and validation. limit: keep only that many images
    per domain (smoke)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    rest = len(y) - pool
    per = rest // len(angles)
    images, labels, train, val = {}, {}, {}, {}
    for d, angle in enumerate(angles):
        take = slice(pool + d * per, pool + d * per + (limit or per))
        images[angle], labels[angle] = rotate(x[take], angle), y[take]
        n_val = int(round(val_fraction * len(labels[angle])))
        val[angle] = torch.arange(n_val)
        train[angle] = torch.arange(n_val, len(labels[angle]))
    return Domains(images, labels, train, val, x[:pool], y[:pool])


def leave_one_out(domains: Domains, test_domain: int) -> Split:
    """Train and in-domain validation from every domain but `test_domain`; its images are the test set."""
    if test_domain not in domains.images:
        raise KeyError(f"no domain {test_domain}; the domains are {domains.angles}")
    others = tuple(a for a in domains.angles if a != test_domain)

    def cat(rows):
        return (torch.cat([domains.images[a][rows[a]] for a in others]),
                torch.cat([domains.labels[a][rows[a]] for a in others]))

    (tx, ty), (vx, vy) = cat(domains.train), cat(domains.validation)
    return Split(test_domain, others, tx, ty, vx, vy, domains.images[test_domain], domains.labels[test_domain])


# ------------------------------------------------------------------------------------------------- models

class Classifier(nn.Module):
    """features: 64 -> width -> width (ReLU); head: width -> classes."""

    def __init__(self, classes: int = 10, width: int = 64):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def features_of(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith("features.")}


def head_of(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith("head.")}


def classifier(state: dict[str, torch.Tensor] | None = None, classes: int = 10, seed: int = 0) -> Classifier:
    """A classifier with the given weights (random from `seed` where state lacks them)."""
    torch.manual_seed(seed)
    model = Classifier(classes)
    if state is not None:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return model


def train(model: Classifier, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, seed: int,
          head_only: bool = False, batch_size: int = 64):
    """AdamW on cross-entropy via pic.train.fit; head_only trains the head alone (a linear probe / warm-up)."""
    model.features.requires_grad_(not head_only)
    gen = torch.Generator().manual_seed(seed)
    log = fit(model, lambda i: F.cross_entropy(model(x[i]), y[i]),
              step_batches(len(y), min(batch_size, len(y)), steps, gen), lr=lr,
              schedule=warmup_cosine(steps, max(1, steps // 10)), seed=seed, log_every=max(1, steps // 5))
    model.features.requires_grad_(True)
    return log


@torch.no_grad()
def accuracy(model: Classifier | dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    if not isinstance(model, nn.Module):
        model = classifier(model)
    return float((model.eval()(x).argmax(1) == y).float().mean())


# ------------------------------------------------------------------------------------------------- pipeline

@dataclass(frozen=True)
class Steps:
    """Training lengths: foundation, auxiliary linear probe and fine-tune, target linear probe, warm-up, run."""

    foundation: int = 1000
    aux_probe: int = 100
    aux_finetune: int = 300
    probe: int = 100
    warmup: int = 20
    run: int = 400


def pretrain_foundation(domains: Domains, steps: int, seed: int) -> dict[str, torch.Tensor]:
    """The featurizer pre-trained to tell which right-angle rotation (0, 90, 180, 270) the pool image underwent."""
    x = torch.cat([rotate(domains.pool_images, 90 * k) for k in range(4)])
    y = torch.arange(4).repeat_interleave(len(domains.pool_images))
    model = classifier(classes=4, seed=seed)
    train(model, x, y, steps, 3e-3, seed)
    return features_of(model.state_dict())


def auxiliary(foundation: dict[str, torch.Tensor], domains: Domains, task: str, steps: Steps,
              seed: int) -> dict[str, torch.Tensor]:
    """Linear probe, then full fine-tuning of the foundation on an auxiliary labelling of the pool; its featurizer."""
    y = AUX_TASKS[task](domains.pool_labels)
    model = classifier(foundation, AUX_CLASSES[task], seed)
    train(model, domains.pool_images, y, steps.aux_probe, 1e-2, seed, head_only=True)
    train(model, domains.pool_images, y, steps.aux_finetune, 2e-3, seed + 1)
    return features_of(model.state_dict())


def linear_probe(features: dict[str, torch.Tensor], split: Split, steps: int, seed: int) -> dict[str, torch.Tensor]:
    """The target head fitted on frozen features (the head every target run starts from)."""
    model = classifier(features, seed=seed)
    train(model, split.train_x, split.train_y, steps, 1e-2, seed, head_only=True)
    return head_of(model.state_dict())


def init_slot(run: int, n_aux: int) -> int:
    """Ratatouille's initialisation of target run `run`: auxiliary slot run mod (A + 1), slot 0 the foundation."""
    return run % (n_aux + 1)


def target_run(features: dict[str, torch.Tensor], head: dict[str, torch.Tensor], split: Split, steps: Steps,
               run: int, seed: int) -> dict[str, torch.Tensor]:
    """One target fine-tuning: a head-only warm-up, then the whole model, at learning rate LEARNING_RATES[run % 3]."""
    model = classifier({**features, **head}, seed=seed)
    if steps.warmup:
        train(model, split.train_x, split.train_y, steps.warmup, 1e-2, seed, head_only=True)
    train(model, split.train_x, split.train_y, steps.run, LEARNING_RATES[run % len(LEARNING_RATES)], seed + 1)
    return model.state_dict()


def scratch_run(split: Split, steps: Steps, seed: int) -> dict[str, torch.Tensor]:
    """A fine-tuning from a random initialisation (its own seed), as long as a warm-up plus a run."""
    model = classifier(seed=seed)
    train(model, split.train_x, split.train_y, steps.warmup + steps.run, LEARNING_RATES[0], seed + 1)
    return model.state_dict()


def fused(auxiliaries: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Fusing's initialisation: the uniform average of the auxiliary featurizers."""
    return linear(list(auxiliaries))


def train_domain(foundation: dict[str, torch.Tensor], auxiliaries: dict[str, dict[str, torch.Tensor]],
                 split: Split, steps: Steps, runs: int, seed: int) -> dict[str, list[dict[str, torch.Tensor]]]:
    """Every target model of one test domain: {"soup": [...], "ratatouille": [...], "fusing": [...], "scratch":
    [two]}; run seeds are derived from `seed`, the domain and the run index."""
    base = 1000 * seed + 10 * split.test_domain
    head = linear_probe(foundation, split, steps.probe, base)
    slots = [foundation] + list(auxiliaries.values())
    fusion = fused(list(auxiliaries.values()))
    out = {"soup": [target_run(foundation, head, split, steps, i, base + 100 + i) for i in range(runs)],
           "ratatouille": [target_run(slots[init_slot(i, len(auxiliaries))], head, split, steps, i, base + 200 + i)
                           for i in range(runs)],
           "fusing": [target_run(fusion, head, split, steps, i, base + 300 + i) for i in range(runs)],
           "scratch": [scratch_run(split, steps, base + 400 + i) for i in range(2)]}
    return out
