"""A CLIP-style scorer of text statements against videos (stacks of frames), for question answering.

E(statement | video) = -scale * cos(pool_f image(frame_f), text(statement)): every frame goes through the image
tower in one batch, the unit frame embeddings are mean-pooled and re-normalised (CLIP4Clip's mean pooling), so
an image is a video of one frame. Video embeddings are computed once per question batch and passed in the
context; text embeddings are cached by string, so candidates that repeat cost nothing.

Backends: a ClipStyleModel of ours with the frozen MiniLM text tower (`local`), or a transformers CLIPModel by
hub id (`paper`: ViT-B/32, ViT-L/14).
"""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from pic.energy import Scorer
from pic.models.hub_clip import HubClip, load_hub_clip

PAPER_CLIPS = ("openai/clip-vit-base-patch32", "openai/clip-vit-large-patch14")


class FrameTextScorer(Scorer):
    """Energies of statements (text proposals, so differentiable=False) against video embeddings.

    embed_images: float images [N, 3, S, S] in [0, 1] -> [N, D]; embed_texts: list of strings -> [T, D];
    image_size: S, the side the tower expects (other sizes are resized, with a warning once).
    Context of `energy`: `video_embeddings` (a dict name -> [B, D] from `embed_videos`, one entry per scorer,
    or one tensor) and `question_index` [N] (the video of each statement; default: statement i <-> video i).
    """

    differentiable = False

    def __init__(self, embed_images: Callable, embed_texts: Callable, scale: float, name: str, image_size: int):
        self.embed_images, self.embed_texts = embed_images, embed_texts
        self.scale, self.name, self.image_size = float(scale), name, int(image_size)
        self._warned_resize = False

    @torch.no_grad()
    def embed_videos(self, frames: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """frames [B, F, C, H, W] (or images [B, C, H, W]: one frame each), floats in [0, 1] -> unit [B, D]."""
        frames = self.check_frames(frames)
        b, f = frames.shape[:2]
        flat = frames.flatten(0, 1)
        emb = torch.cat([F.normalize(self.embed_images(flat[i:i + batch_size]).float(), dim=-1)
                         for i in range(0, len(flat), batch_size)])
        return F.normalize(emb.view(b, f, -1).mean(1), dim=-1)

    def check_frames(self, frames) -> torch.Tensor:
        """Frames as [B, F, 3, S, S] floats; refuses what cannot be an image with a message naming its shape."""
        if not isinstance(frames, torch.Tensor):
            raise TypeError(f"scorer '{self.name}' needs frames as a tensor [B, F, C, H, W], got {type(frames).__name__}")
        if frames.dim() == 4:
            frames = frames.unsqueeze(1)
        if frames.dim() != 5 or frames.shape[2] not in (1, 3) or min(frames.shape) == 0:
            raise ValueError(f"scorer '{self.name}' needs frames [B, F, C, H, W] with C = 3 (RGB) or 1 (grey), "
                             f"got shape {tuple(frames.shape)}")
        if not frames.is_floating_point():
            raise ValueError(f"scorer '{self.name}' needs float frames in [0, 1], got {frames.dtype} "
                             "(divide uint8 images by 255)")
        if frames.shape[2] == 1:
            frames = frames.expand(-1, -1, 3, -1, -1)
        if frames.shape[-2:] != (self.image_size, self.image_size):
            if not self._warned_resize:
                warnings.warn(f"scorer '{self.name}': frames of {tuple(frames.shape[-2:])} are resized to "
                              f"{self.image_size}x{self.image_size}", stacklevel=3)
                self._warned_resize = True
            b, f = frames.shape[:2]
            frames = F.interpolate(frames.flatten(0, 1).float(), size=(self.image_size, self.image_size),
                                   mode="bilinear", align_corners=False, antialias=True).view(b, f, 3, *([self.image_size] * 2))
        return frames

    def energy(self, x: Sequence[str], video_embeddings=None, question_index: torch.Tensor | None = None,
               **context) -> torch.Tensor:
        if video_embeddings is None:
            raise ValueError(f"scorer '{self.name}' needs `video_embeddings` in the context (from embed_videos)")
        videos = video_embeddings[self.name] if isinstance(video_embeddings, dict) else video_embeddings
        if question_index is None:
            if len(videos) != len(x):
                raise ValueError(f"scorer '{self.name}' got {len(x)} statements for {len(videos)} videos and no "
                                 "`question_index` to pair them")
            question_index = torch.arange(len(x))
        unique = dict.fromkeys(x)  # candidates repeat: embed each distinct statement once
        position = {s: i for i, s in enumerate(unique)}
        text = self.embed_texts(list(unique)).to(videos.device, videos.dtype)
        rows = torch.tensor([position[s] for s in x], device=videos.device)
        return -self.scale * (videos[question_index] * text[rows]).sum(-1)


def from_clip_style(model, text_encoder, name: str, image_size: int) -> FrameTextScorer:
    """A pic.models.clip_style.ClipStyleModel with the frozen MiniLM text tower, as a frame-text scorer."""
    model.eval().requires_grad_(False)
    return FrameTextScorer(model.embed_images, text_encoder.encode, float(model.scale.detach()), name, image_size)


def from_hub_clip(clip: HubClip, name: str) -> FrameTextScorer:
    """A hub CLIP (the paper's scorers) as a frame-text scorer."""
    return FrameTextScorer(clip.embed_images, clip.embed_texts, clip.scale, name, clip.image_size)


def load_paper_clip(model_id: str, name: str | None = None) -> FrameTextScorer:
    """A CLIP by hub id (offline and uncached: stops at once naming the id)."""
    return from_hub_clip(load_hub_clip(model_id), name or model_id.split("/")[-1])
