"""The evaluation network: a classifier of clean images whose penultimate features stand in for Inception's in
FID / KID and whose class probabilities give IS and class accuracy. Trained on its own, never used for guidance,
so the scorers cannot game it."""
from __future__ import annotations

import json

import torch
from torch import nn


class FeatureNet(nn.Module):
    """images [B, 1, 28, 28] in [-1, 1] -> logits [B, num_classes]; `features` gives the [B, feature_dim]
    activations before the last layer."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (32, 64, 128), feature_dim: int = 128):
        super().__init__()
        self.config = {"num_classes": num_classes, "widths": list(widths), "feature_dim": feature_dim}
        layers, prev = [], 1
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(prev, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            prev = w
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                                  nn.Linear(prev, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [N, D], class probabilities [N, K]) of images, in eval mode, batched."""
        self.eval()
        feats = [self.features(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        f = torch.cat(feats) if feats else torch.zeros(0, self.config["feature_dim"])
        return f, torch.softmax(self.head(f), dim=-1)

    def metadata(self) -> dict[str, str]:
        return {"config": json.dumps(self.config)}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> FeatureNet:
        model = cls(**json.loads(metadata["config"]))
        model.load_state_dict(tensors)
        return model.eval().requires_grad_(False)
