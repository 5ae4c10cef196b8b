"""Image-goal scorer: distance between an image and a goal image in a frozen pretrained feature space, kept
spatial (a pooled vector would hardly notice a 5 cm cube moving across the table).

E(x) = mean over feature-map locations of (1 - cos(f(x)[:, i, j], f(goal)[:, i, j])): 0 for the goal itself,
lower = closer. f is EfficientNet-Lite0 (ImageNet-pretrained) cut after `blocks` MBConv blocks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pic.energy import Scorer
from pic.models.efficientnet import EfficientNetLite0Features


class EfficientNetLite0Maps(torch.nn.Module):
    """images [B, 3, H, W] in [0, 1] -> feature maps [B, C, h, w] of the first `blocks` blocks (frozen)."""

    def __init__(self, blocks: int = 6, size: int = 64, backbone: EfficientNetLite0Features | None = None):
        super().__init__()
        self.backbone = backbone or EfficientNetLite0Features(size=size)
        self.blocks, self.size = blocks, size
        if not 1 <= blocks <= len(self.backbone.net._blocks):
            raise ValueError(f"blocks must be in 1..{len(self.backbone.net._blocks)}, got {blocks}")

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
        if images.shape[-2:] != (self.size, self.size):
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False)
        net = self.backbone.net
        x = (images * 255.0 - 127.0) / 128.0  # the normalisation EfficientNetLite0Features uses
        x = net._swish(net._bn0(net._conv_stem(x)))
        for block in net._blocks[:self.blocks]:
            x = block(x)
        return x


class FeatureMapDistance(Scorer):
    """E(x) = mean_ij (1 - cos(f(x)_ij, f(goal)_ij)); `goal` is one image [3, H, W]."""

    differentiable = False

    def __init__(self, features: EfficientNetLite0Maps, goal: torch.Tensor, name: str):
        if goal.dim() != 3:
            raise ValueError(f"scorer '{name}': the goal is one image [3, H, W], got {tuple(goal.shape)}")
        self.features, self.name = features, name
        self.goal_map = F.normalize(features(goal[None]), dim=1)

    def energy(self, x, **context) -> torch.Tensor:
        maps = F.normalize(self.features(x), dim=1)
        return (1 - (maps * self.goal_map).sum(1)).mean(dim=(1, 2))
