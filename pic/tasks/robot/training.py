"""Training data and training loop of the per-camera relation scorers (notebook 40_train_relation_scorer).

Data: random arrangements of 3 cubes (each cube beside an earlier one with probability 0.6, and half of the
scenes with one cube resting on another), rendered from every camera, labelled with the truth of every caption
"the <a> cube is <relation> the <b> cube" computed from the simulator's poses. Only captions about two cubes that
are in the scene count in the loss and the accuracy. Training runs on pic.train.fit; `train_or_load` is 40's
`retrain` switch (train here, or load the committed checkpoints through checkpoints.py).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
import torch

from pic.models.text_encoder import FrozenTextEncoder
from pic.train import batches_per_epoch, epoch_batches, fit, one_cycle
from pic.tasks.robot import checkpoints
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
    """pic.train.fit (AdamW, one-cycle) on the sigmoid CLIP loss for camera `v`; returns the mean loss of each
    epoch. One generator orders the batches and draws the augmentation, interleaved as fit consumes them."""
    gen = torch.Generator().manual_seed(seed)
    positives = (data.truth & data.mask).sum(0).float()
    pos_weight = ((data.mask.sum(0) - positives) / positives.clamp_min(1)).clamp(1.0, 20.0)  # balance each caption

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        images = augment(data.view(v, idx), gen)
        return sigmoid_clip_loss(model.logits(images, CAPTIONS), data.truth[idx], data.mask[idx], pos_weight)

    steps = epochs * batches_per_epoch(len(data), batch_size)
    return fit(model, batch_loss, epoch_batches(len(data), batch_size, epochs, gen), lr=lr, weight_decay=1e-4,
               schedule=one_cycle(steps, pct_start=0.15), desc=f"view {VIEWS[v]}" if log else None,
               log=log).losses


@dataclass
class CameraModels:
    """One relation CLIP per camera, with the mean loss of each training epoch and the training seconds (empty
    when loaded: the committed checkpoints' loss logs, where stored, are in `losses`)."""

    models: dict[str, RelationClip]
    losses: dict[str, list[float]]
    seconds: dict[str, float]
    trained: bool

    def summary(self) -> list[str]:
        if self.trained:
            return [f"{v}: loss {h[0]:.3f} -> {h[-1]:.3f} in {self.seconds[v]:.0f} s" for v, h in self.losses.items()]
        return [f"{v}: loaded data/{checkpoints.name(v)}" + (f" (trained to loss {self.losses[v][-1]:.3f})"
                                                              if self.losses.get(v) else "") for v in self.models]


def train_per_camera(text: FrozenTextEncoder, data: RelationData, epochs: int, width: int, feature_dim: int,
                     seed: int) -> CameraModels:
    """One relation CLIP per camera, initialised from torch's generator at seed + camera index, its text projection
    whitened on the captions, trained with seed + camera index."""
    out = CameraModels({}, {}, {}, trained=True)
    for v, view in enumerate(VIEWS):
        torch.manual_seed(seed + v)
        model = RelationClip(text, width=width, feature_dim=feature_dim)
        model.text.whiten(CAPTIONS)
        start = time.perf_counter()
        out.losses[view] = train_relation_clip(model, data, v, epochs=epochs, seed=seed + v)
        out.seconds[view] = time.perf_counter() - start
        out.models[view] = model
    return out


def train_or_load(text: FrozenTextEncoder, data: RelationData, settings, seed: int, retrain: bool) -> CameraModels:
    """retrain: train_per_camera at the settings' sizes (TrainingSettings); otherwise the committed checkpoints."""
    if retrain:
        return train_per_camera(text, data, settings.epochs, settings.width, settings.feature_dim, seed)
    return CameraModels({v: checkpoints.load(v, text) for v in VIEWS}, {v: checkpoints.losses(v) for v in VIEWS},
                        {}, trained=False)


def accuracy_rows(cameras: CameraModels, test: RelationData) -> list[dict]:
    """Per camera: held-out balanced accuracy per relation and overall, and the number of trained weights."""
    rows = []
    for v, view in enumerate(VIEWS):
        acc = relation_accuracy(caption_logits(cameras.models[view], test, v), test)
        params = sum(t.numel() for t in cameras.models[view].trainable_state().values())
        rows.append({"camera": view, **acc, "params": params})
    return rows


def write_checkpoints(cameras: CameraModels, rows: list[dict], settings) -> list[str]:
    """Writes and pins each camera's checkpoint when these models were trained here at a profile that saves
    (local, paper); returns the names written (none for loaded models or a smoke run)."""
    if not (cameras.trained and settings.save):
        return []
    return [checkpoints.save(cameras.models[r["camera"]], r["camera"], settings.width, settings.feature_dim, r["all"],
                             cameras.losses[r["camera"]]) for r in rows]


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
