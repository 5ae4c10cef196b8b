"""The one adapter of a hub CLIP (transformers CLIPModel, by id) for the `paper` profile of Tables 1, 2 and 4.

Images in [0, 1] [B, 3, H, W] are resized to the model's input size (bilinear, antialiased) and normalised with
CLIP's mean and std, here and nowhere else (no image processor: the fast ones need torchvision); text embeddings
are cached by string. Differentiable in the images, so guidance (Table 1) can use it too.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from pic.models.hub import from_hub
from pic.models.text_encoder import TextEmbeddingCache

PAPER_CLIP = "openai/clip-vit-base-patch32"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_features(out) -> torch.Tensor:
    """CLIPModel.get_*_features' projected embedding: transformers 5 returns an output object (pooler_output),
    older ones a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class HubClip(torch.nn.Module):
    """image_features / embed_images (unit) of images in [0, 1], embed_texts (unit, cached), `scale` = CLIP's
    exp(logit_scale), `image_size`, `dim` (the joint embedding's width)."""

    def __init__(self, model, tokenizer):
        super().__init__()
        self.model, self.tokenizer = model.eval().requires_grad_(False), tokenizer
        self.image_size = model.config.vision_config.image_size
        self.dim = model.config.projection_dim
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.texts = TextEmbeddingCache(self._embed_texts)

    @property
    def scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"CLIP expects images [B, 3, H, W] in [0, 1], got {tuple(images.shape)}")
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        return (images - self.mean.to(images)) / self.std.to(images)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP's projected image embeddings [B, dim] (not normalised)."""
        return clip_features(self.model.get_image_features(pixel_values=self.preprocess(images)))

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_features(images), dim=-1)

    @torch.no_grad()
    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(self.mean.device)
        return F.normalize(clip_features(self.model.get_text_features(**batch)), dim=-1)

    def embed_texts(self, texts: Sequence[str] | str) -> torch.Tensor:
        return self.texts.encode(texts)


def load_hub_clip(model_id: str = PAPER_CLIP) -> HubClip:
    """A HubClip by hub id; offline and not cached, a HubUnavailableError naming the id."""
    from transformers import AutoTokenizer, CLIPModel

    return HubClip(from_hub(CLIPModel.from_pretrained, model_id), from_hub(AutoTokenizer.from_pretrained, model_id))
