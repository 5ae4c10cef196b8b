"""A small CLIP-style relation model for one camera: a conv image tower against the frozen MiniLM text tower with
a trained linear text projection (as in CLIP; LiT-style, the text backbone stays locked).

Why the text projection: MiniLM embeds "the red cube is to the left of the blue cube" and "... to the right of
..." at cosine 0.98, so the caption matrix is badly conditioned; a linear map on top of the frozen sentence
embeddings spreads the relations apart, which an image-side projection alone cannot do within the cosine bound.

Captions of one image are not exclusive (a cube can be left of one cube and behind another), so training uses
the sigmoid (multi-label) form of CLIP's loss: logit = scale * cos + bias against every caption's truth.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from pic.models.clip_style import ClipStyleModel


class ConvTower(torch.nn.Module):
    """images [B, 3, 64, 64] in [0, 1] -> [B, feature_dim]; x/y coordinate channels make positions explicit
    (CoordConv), and the last feature map is flattened, not pooled, so that where things are survives."""

    def __init__(self, width: int = 24, feature_dim: int = 192, size: int = 64):
        super().__init__()
        # (in, out, stride): the first convolution already halves the image (a 64x64 full-resolution layer would
        # cost most of the compute for little: a cube is 4-6 pixels wide)
        spec = [(5, width, 2), (width, 2 * width, 2), (2 * width, 2 * width, 1), (2 * width, 4 * width, 2),
                (4 * width, 4 * width, 2)]
        layers = []
        for a, b, stride in spec:
            layers += [torch.nn.Conv2d(a, b, 3, stride=stride, padding=1), torch.nn.GroupNorm(4, b), torch.nn.SiLU()]
        self.convs = torch.nn.Sequential(*layers)
        side = size // 16
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * width * side * side, feature_dim),
                                        torch.nn.SiLU())
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)
        self.size, self.feature_dim = size, feature_dim

    def forward(self, images: torch.Tensor, **context) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1:] != (3, self.size, self.size):
            raise ValueError(f"ConvTower expects images [B, 3, {self.size}, {self.size}], got {tuple(images.shape)}")
        x = torch.cat([images * 2 - 1, self.coords.expand(images.shape[0], -1, -1, -1)], dim=1)
        return self.head(self.convs(x))


class ProjectedTextEncoder(torch.nn.Module):
    """encode(texts) -> [N, dim] unit vectors: normalize(W · frozen_minilm(texts)); only W is trained."""

    def __init__(self, frozen, dim: int = 384):
        super().__init__()
        self.frozen = frozen
        self.projection = torch.nn.Linear(frozen.dim if hasattr(frozen, "dim") else dim, dim)
        torch.nn.init.eye_(self.projection.weight)  # start at the frozen embedding itself
        torch.nn.init.zeros_(self.projection.bias)

    def encode(self, texts: Sequence[str] | str) -> torch.Tensor:
        return F.normalize(self.projection(self.frozen.encode(texts)), dim=-1)

    @torch.no_grad()
    def whiten(self, captions: Sequence[str], eps: float = 1e-3) -> None:
        """Start the projection at the (regularised) ZCA whitening of the training captions' embeddings, so
        that captions MiniLM puts at cosine 0.9 start far apart; training moves it from there."""
        t = self.frozen.encode(list(captions))
        mean = t.mean(0)
        _, s, vh = torch.linalg.svd(t - mean, full_matrices=False)
        var = s ** 2 / len(t)
        w = vh.T @ torch.diag((var + eps * var.max()).rsqrt()) @ vh
        self.projection.weight.copy_(w)
        self.projection.bias.copy_(-w @ mean)


class RelationClip(torch.nn.Module):
    """One camera's relation model: ClipStyleModel(ConvTower) + ProjectedTextEncoder + the sigmoid loss's bias."""

    def __init__(self, frozen_text, width: int = 24, feature_dim: int = 192, size: int = 64):
        super().__init__()
        self.image = ClipStyleModel(ConvTower(width, feature_dim, size), feature_dim, init_scale=10.0)
        self.text = ProjectedTextEncoder(frozen_text)
        self.bias = torch.nn.Parameter(torch.tensor(-5.0))  # most captions of an image are false

    def logits(self, images: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        """[B, T] log-odds that each caption holds in each image."""
        return self.image.logits(images, self.text.encode(list(captions))) + self.bias

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen MiniLM, for a small checkpoint."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("text.frozen.")}


def sigmoid_clip_loss(logits: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor | None = None,
                      pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of [B, T] caption logits against their truth (SigLIP's form of the CLIP loss),
    averaged over the (image, caption) pairs where `mask` is set; `pos_weight` [T] up-weights the true captions
    of rare relations. It shifts each caption's logits by a constant, which no ranking of images changes."""
    loss = F.binary_cross_entropy_with_logits(logits, truth.float(), reduction="none", pos_weight=pos_weight)
    if mask is None:
        return loss.mean()
    return (loss * mask).sum() / mask.sum().clamp_min(1)
