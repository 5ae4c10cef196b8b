"""Training data and training loop of the per-camera relation scorers (notebook 40_train_relation_scorer).

Data: random arrangements of 3 cubes (each cube beside an earlier one with probability 0.6, and half of the
scenes with one cube resting on another), rendered from every camera, labelled with the truth of every caption "the <a> cube is <relation> the <b> cube" computed from the
simulator's poses. Only captions about two cubes that are in the scene count in the loss and the accuracy.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from pic.tasks.robot.relation_clip import RelationClip, sigmoid_clip_loss
from pic.tasks.robot.goals import RELATIONS, RelationGoal, relation_holds
from pic.tasks.robot.scenes import sample_layout
from pic.tasks.robot.sim import COLOURS, VIEWS, Placement, TabletopWorld

TRIPLES = [RelationGoal(a, r, b) for a, b in itertools.permutations(COLOURS, 2) for r in RELATIONS]
CAPTIONS = [t.caption for t in TRIPLES]


@dataclass
class RelationData:
    images: torch.Tensor  # [N, V, 3, H, W] uint8
    truth: torch.Tensor  # [N, T] bool, T = len(CAPTIONS)
    mask: torch.Tensor  # [N, T] bool: both cubes of the caption are in the scene

    def __len__(self) -> int:
        return self.images.shape[0]

    def view(self, v: int, index=slice(None)) -> torch.Tensor:
        return self.images[index, v].float() / 255.0


def render_relation_data(world: TabletopWorld, n: int, seed: int, p_stack: float = 0.5,
                         p_beside: float = 0.6) -> RelationData:
    """`n` random arrangements rendered from every camera, with their caption truths."""
    rng = np.random.default_rng([seed, 40])
    images = np.empty((n, len(VIEWS), world.size, world.size, 3), dtype=np.uint8)
    truth = np.zeros((n, len(TRIPLES)), dtype=bool)
    mask = np.zeros((n, len(TRIPLES)), dtype=bool)
    for i in range(n):
        layout = sample_layout(rng, 3, p_stack, p_beside=p_beside)
        snap = world.reset_scene(layout.cubes, save=layout.stack is not None)
        if layout.stack is not None:
            snap = world.predict(snap, Placement(layout.stack[0], onto=layout.stack[1]))
            world.release_states()
        images[i] = world.render_rgb()
        pos = snap.positions
        for k, t in enumerate(TRIPLES):
            if t.subject in pos and t.obj in pos:
                mask[i, k] = True
                truth[i, k] = relation_holds(t.relation, pos[t.subject], pos[t.obj])
    images = torch.from_numpy(images).permute(0, 1, 4, 2, 3).contiguous()
    truth, mask = torch.from_numpy(truth), torch.from_numpy(mask)
    return RelationData(images, truth, mask)


def train_relation_clip(model: RelationClip, data: RelationData, v: int, epochs: int, batch_size: int = 128,
                        lr: float = 2e-3, seed: int = 0, log=None) -> list[float]:
    """AdamW on the sigmoid CLIP loss for camera `v`; returns the mean loss of each epoch."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(data) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    positives = (data.truth & data.mask).sum(0).float()
    pos_weight = ((data.mask.sum(0) - positives) / positives.clamp_min(1)).clamp(1.0, 20.0)  # balance each caption
    history = []
    model.train()
    for epoch in range(epochs):
        order, total = torch.randperm(len(data), generator=gen), 0.0
        for start in range(0, len(data), batch_size):
            idx = order[start:start + batch_size]
            images = augment(data.view(v, idx), gen)
            loss = sigmoid_clip_loss(model.logits(images, CAPTIONS), data.truth[idx], data.mask[idx], pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        history.append(total / len(data))
        if log:
            log(f"view {VIEWS[v]} epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}")
    model.eval()
    return history


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Small brightness/contrast jitter: the renderer is deterministic, so the scorer must not rely on exact pixels
    (no geometric jitter: positions are the labels)."""
    b = images.shape[0]
    gain = 1 + 0.1 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    shift = 0.05 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    return (images * gain + shift).clamp(0, 1)


@torch.no_grad()
def caption_logits(model: RelationClip, data: RelationData, v: int, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([model.logits(data.view(v, slice(i, i + batch_size)), CAPTIONS)
                      for i in range(0, len(data), batch_size)])


def relation_accuracy(logits: torch.Tensor, data: RelationData) -> dict[str, float]:
    """Held-out balanced accuracy of `logit > 0` (mean of the true- and false-caption accuracies) per relation
    type and overall, over the captions of cubes in the scene; balanced, since most captions are false."""
    predicted, out = logits > 0, {}
    for name, cols in [*((r, torch.tensor([t.relation == r for t in TRIPLES])) for r in RELATIONS),
                       ("all", torch.ones(len(TRIPLES), dtype=torch.bool))]:
        m, truth, pred = data.mask[:, cols], data.truth[:, cols], predicted[:, cols]
        rates = [float((pred[m & (truth == value)] == value).float().mean()) for value in (True, False)]
        out[name] = sum(rates) / 2
    return out
