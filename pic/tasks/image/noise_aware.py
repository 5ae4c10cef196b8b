"""Noise-aware image encoders, as guided-diffusion's classifiers: they read a noisy x_t and its timestep t.

`NoiseAwareEncoder(x_t, t) -> [B, F]` is a few diffusers ResnetBlock2D stages that take the timestep embedding;
`NoiseAwareClassifier` puts a linear head on it (CLS), and the same encoder is the image tower of the CLIP-style
scorer (pic.models.clip_style). `ClassifierScorer` turns any classifier into an expert E = -log p(y | x).
"""
from __future__ import annotations

import json

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import ResnetBlock2D

from pic.energy import Scorer
from pic.tasks.image.unet import check_labels


class NoiseAwareEncoder(torch.nn.Module):
    """x_t [B, C, H, W] and t (scalar or [B]; None means clean images, t = 0) -> pooled features [B, widths[-1]].

    Each stage halves the resolution with a strided convolution, then runs one ResnetBlock2D that adds the
    timestep embedding; features are the global average of the last stage.
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (24, 48), temb_dim: int = 64):
        super().__init__()
        self.config = {"in_channels": in_channels, "widths": list(widths), "temb_dim": temb_dim}
        self.time_proj = Timesteps(temb_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(temb_dim, temb_dim)
        self.downs, self.blocks = torch.nn.ModuleList(), torch.nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.downs.append(torch.nn.Conv2d(prev, w, 3, stride=2, padding=1))
            self.blocks.append(ResnetBlock2D(in_channels=w, out_channels=w, temb_channels=temb_dim, groups=8))
            prev = w
        self.feature_dim = prev

    def forward(self, x: torch.Tensor, t=None, **context) -> torch.Tensor:
        t = torch.zeros((), device=x.device) if t is None else torch.as_tensor(t, device=x.device)
        t = t.expand(x.shape[0]) if t.dim() == 0 else t
        temb = self.time_embedding(self.time_proj(t).to(x.dtype))
        h = x
        for down, block in zip(self.downs, self.blocks):
            h = block(down(h), temb)
        return h.mean(dim=(2, 3))


class NoiseAwareClassifier(torch.nn.Module):
    """logits [B, num_classes] of a noisy image x_t at timestep t (CLS, the guided-diffusion classifier)."""

    def __init__(self, num_classes: int = 10, **encoder_config):
        super().__init__()
        self.encoder = NoiseAwareEncoder(**encoder_config)
        self.head = torch.nn.Linear(self.encoder.feature_dim, num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor, t=None, **context) -> torch.Tensor:
        return self.head(self.encoder(x, t))

    def metadata(self) -> dict[str, str]:
        return {"encoder_config": json.dumps(self.encoder.config), "num_classes": str(self.num_classes)}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> NoiseAwareClassifier:
        model = cls(int(metadata["num_classes"]), **json.loads(metadata["encoder_config"]))
        model.load_state_dict(tensors)
        return model.eval().requires_grad_(False)


class ClassifierScorer(Scorer):
    """E(x) = -log p(labels | x, context) of a classifier `classifier(x, **context) -> logits [B, K]`: lower when
    the classifier is sure of the asked class. Context: `labels` [B] (class ids); `t` reaches noise-aware ones."""

    def __init__(self, classifier, num_classes: int, name: str = "cls"):
        self.classifier, self.num_classes, self.name = classifier, num_classes, name

    def energy(self, x, labels=None, **context):
        labels = check_labels(labels, x.shape[0], self.num_classes, self.name).to(x.device)
        logits = self.classifier(x, **context)
        return -torch.log_softmax(logits, dim=-1).gather(1, labels[:, None]).squeeze(1)
