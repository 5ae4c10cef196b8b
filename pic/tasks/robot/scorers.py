"""The per-camera scorers of the robot task, per profile.

- text goals: `local` = our relation CLIP of each camera (trained in 40_train_relation_scorer.ipynb, loaded from
  data/robot/ after a sha256 check); `smoke` = the same class, randomly initialised and tiny; `paper` = a hub
  CLIPModel (openai/clip-vit-base-patch32 unless told otherwise) scoring every camera's image against the caption.
- image goals: `local` = spatial EfficientNet-Lite0 feature distance to the camera's goal image; `smoke` = the same
  network without its ImageNet weights; `paper` = 1 - cosine of the hub CLIP's image embeddings.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import torch

from pic.energy import Scorer
from pic.models.clip_style import ClipStyleScorer
from pic.models.efficientnet import EfficientNetLite0Features
from pic.tasks.robot.feature_distance import EfficientNetLite0Maps, FeatureMapDistance
from pic.models.hub_clip import PAPER_CLIP, HubClip, load_hub_clip
from pic.tasks.robot import checkpoints
from pic.tasks.robot.relation_clip import RelationClip
from pic.models.text_encoder import FrozenTextEncoder
from pic.tasks.robot.sim import VIEWS

FEATURE_BLOCKS = 6  # EfficientNet-Lite0 blocks kept for the image-goal distance (stride 16: a 4x4 map at 64 px)


def text_scorers(profile: str, seed: int = 0, hub_id: str = PAPER_CLIP) -> dict[str, Scorer]:
    """view -> a scorer of that camera's images against the context's `prompt` (the goal caption)."""
    if profile == "paper":
        clip = _hub_clip(hub_id)
        return {v: HubClipScorer(clip, v) for v in VIEWS}
    text = FrozenTextEncoder()
    if profile == "smoke":
        torch.manual_seed(seed)
        models = {v: RelationClip(text, width=8, feature_dim=32).eval().requires_grad_(False) for v in VIEWS}
    else:
        models = {v: checkpoints.load(v, text) for v in VIEWS}
    return {v: ClipStyleScorer(m.image, m.text, name=v) for v, m in models.items()}


def image_scorers(profile: str, hub_id: str = PAPER_CLIP) -> Callable[[str, torch.Tensor], Scorer]:
    """(view, goal image [3, H, W]) -> a scorer of that camera's images against its goal image."""
    if profile == "paper":
        clip = _hub_clip(hub_id)
        return lambda view, goal: _GoalBound(HubClipScorer(clip, view), goal)
    features = EfficientNetLite0Maps(FEATURE_BLOCKS, backbone=EfficientNetLite0Features(
        size=64, pretrained=profile != "smoke"))
    return lambda view, goal: FeatureMapDistance(features, goal, view)


class HubClipScorer(Scorer):
    """One camera's scorer from a hub CLIP; context `prompt` (a caption: E = -scale * cos(image, caption)) or
    `goal_image` ([3, H, W] in [0, 1]: E = 1 - cos(image, goal image))."""

    differentiable = False

    def __init__(self, clip: HubClip, name: str):
        self.clip, self.name = clip, name

    @torch.no_grad()
    def energy(self, images, prompt: str | None = None, goal_image: torch.Tensor | None = None, **context):
        if (prompt is None) == (goal_image is None):
            raise ValueError(f"scorer '{self.name}' needs exactly one of `prompt` (text goal) or `goal_image`")
        emb = self.clip.embed_images(images)
        if prompt is not None:
            return -self.clip.scale * (emb @ self.clip.embed_texts([prompt]).T)[:, 0]
        return 1 - (emb @ self.clip.embed_images(goal_image[None]).T)[:, 0]


@lru_cache(maxsize=2)
def _hub_clip(hub_id: str) -> HubClip:
    """One hub CLIP for the text and the image scorers of a run."""
    return load_hub_clip(hub_id)


class _GoalBound(Scorer):
    """A hub CLIP scorer with its camera's goal image bound (the image-goal form of HubClipScorer)."""

    differentiable = False

    def __init__(self, scorer: HubClipScorer, goal: torch.Tensor):
        self.scorer, self.goal, self.name = scorer, goal, scorer.name

    def energy(self, images, **context):
        return self.scorer.energy(images, goal_image=self.goal)
