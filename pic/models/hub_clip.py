"""A CLIP model from the hub (transformers CLIPModel, by id) as a per-camera scorer: the `paper` profile's
stand-in for the pre-trained image model the paper scored its camera views with.

Text goals: E = -logit_scale * cos(image, caption). Image goals: E = 1 - cos(image, goal image). Images are
resized and normalised here with the model's own settings (no image processor: the fast ones need torchvision).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pic.energy import Scorer
from pic.models.hub import from_hub

PAPER_CLIP = "openai/clip-vit-base-patch32"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_hub_clip(model_id: str = PAPER_CLIP):
    """(CLIPModel, tokenizer) by hub id; offline and not cached, a HubUnavailableError naming the id."""
    from transformers import AutoTokenizer, CLIPModel

    model = from_hub(CLIPModel.from_pretrained, model_id)
    return model.eval().requires_grad_(False), from_hub(AutoTokenizer.from_pretrained, model_id)


class HubClipScorer(Scorer):
    """One camera's scorer from a CLIPModel; context `prompt` (a caption) or `goal_image` ([3, H, W] in [0, 1])."""

    differentiable = False

    def __init__(self, model, tokenizer, name: str):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.size = model.config.vision_config.image_size
        self._mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"scorer '{self.name}' expects images [B, 3, H, W], got {tuple(images.shape)}")
        x = F.interpolate(images, size=(self.size, self.size), mode="bicubic", align_corners=False).clamp(0, 1)
        return F.normalize(clip_features(self.model.get_image_features(pixel_values=(x - self._mean) / self._std)), dim=-1)

    @torch.no_grad()
    def embed_text(self, text: str) -> torch.Tensor:
        tokens = self.tokenizer([text], padding=True, return_tensors="pt")
        return F.normalize(clip_features(self.model.get_text_features(input_ids=tokens["input_ids"],
                                                                attention_mask=tokens["attention_mask"])), dim=-1)

    @torch.no_grad()
    def energy(self, images, prompt: str | None = None, goal_image: torch.Tensor | None = None, **context):
        if (prompt is None) == (goal_image is None):
            raise ValueError(f"scorer '{self.name}' needs exactly one of `prompt` (text goal) or `goal_image`")
        emb = self.embed_images(images)
        if prompt is not None:
            return -self.model.logit_scale.exp() * (emb @ self.embed_text(prompt).T)[:, 0]
        return 1 - (emb @ self.embed_images(goal_image[None]).T)[:, 0]


def clip_features(out) -> torch.Tensor:
    """CLIPModel.get_*_features' projected embedding: transformers 5 returns an output object (pooler_output),
    older ones a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output
