"""CLIP-style image-text scorers built from pretrained parts: any image tower + a trained projection, against
the frozen pretrained text tower (pic.models.text_encoder). Trained contrastively (CLIP's symmetric InfoNCE);
as a scorer its energy is minus the scaled cosine similarity between an image and its prompt.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from pic.energy import Scorer


class ClipStyleModel(torch.nn.Module):
    """image_tower(x, **context) -> [B, F] features; projection F -> text dim; learnable logit scale.

    A noise-aware tower takes the timestep from the context (`t`), so the same scorer guides noisy samples.
    """

    def __init__(self, image_tower: torch.nn.Module, feature_dim: int, text_dim: int = 384, init_scale: float = 10.0):
        super().__init__()
        self.image_tower = image_tower
        self.projection = torch.nn.Linear(feature_dim, text_dim)
        self.log_scale = torch.nn.Parameter(torch.tensor(float(init_scale)).log())

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=100.0)

    def embed_images(self, x: torch.Tensor, **context) -> torch.Tensor:
        return F.normalize(self.projection(self.image_tower(x, **context)), dim=-1)

    def logits(self, x: torch.Tensor, text_embeddings: torch.Tensor, **context) -> torch.Tensor:
        """[B, T] scaled cosine similarities between images and (unit) text embeddings."""
        return self.scale * self.embed_images(x, **context) @ text_embeddings.T


def contrastive_loss(logits: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over a [B, B] image-text logit matrix (matching pairs on the diagonal).

    With captions shared by many images (class captions), pass [B, T] logits against the T distinct captions and
    the caption index of each image as `targets`: the image-to-text direction only, without false negatives.
    """
    if targets is not None:
        return F.cross_entropy(logits, targets)
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class ClipStyleScorer(Scorer):
    """E(x) = -scale * cos(image(x), text(prompt)): lower when the image matches its prompt.

    Context: `prompt`, one string for the batch or one per proposal; any other key (e.g. `t`) goes to the tower.
    """

    def __init__(self, model: ClipStyleModel, text_encoder, name: str = "clip"):
        self.model, self.text_encoder, self.name = model, text_encoder, name

    def energy(self, x, prompt: str | Sequence[str] = None, **context):
        if prompt is None:
            raise ValueError(f"scorer '{self.name}' needs a `prompt` in the context")
        prompts = [prompt] * x.shape[0] if isinstance(prompt, str) else list(prompt)
        if len(prompts) != x.shape[0]:
            raise ValueError(f"scorer '{self.name}' got {len(prompts)} prompts for {x.shape[0]} images")
        text = self.text_encoder.encode(prompts).to(x.device, x.dtype)
        image = self.model.embed_images(x, **context)
        return -self.model.scale * (image * text).sum(-1)
