"""A class-conditional diffusion generator whose one network also gives the unconditional prediction, and the
classifier-free-guidance scorer built from the two.

The generator is a diffusers UNet2DModel with a class embedding of num_classes + 1 entries: the last one is the
"null" class that label dropout trains (GLIDE's recipe), so eps(x_t, t, null) is the unconditional prediction.
"""
from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

from pic.energy import Scorer


def make_unet(num_classes: int = 10, image_size: int = 28, channels: int = 1, patch: int = 2,
              block_out_channels: tuple[int, ...] = (32, 64), layers_per_block: int = 1,
              attention: bool = True) -> UNet2DModel:
    """A small UNet2DModel that sees images as (image_size / patch)^2 patches of patch^2 * channels values."""
    levels = len(block_out_channels)
    return UNet2DModel(sample_size=image_size // patch, in_channels=channels * patch**2,
                       out_channels=channels * patch**2, block_out_channels=tuple(block_out_channels),
                       layers_per_block=layers_per_block, down_block_types=("DownBlock2D",) * levels,
                       up_block_types=("UpBlock2D",) * levels, add_attention=attention, norm_num_groups=8,
                       attention_head_dim=16, num_class_embeds=num_classes + 1)


class ClassConditionalUNet(torch.nn.Module):
    """eps(x_t [B, C, H, W], t, labels [B]) of a UNet2DModel; labels equal to `null_class` ask for the
    unconditional prediction. Pixels are folded into channels in patch x patch blocks (space-to-depth) around
    the UNet: 28x28x1 becomes 14x14x4, which costs a quarter of the convolutions at full resolution."""

    def __init__(self, unet: UNet2DModel, patch: int = 2):
        super().__init__()
        self.unet, self.patch = unet, patch
        self.null_class = unet.config.num_class_embeds - 1

    @property
    def num_classes(self) -> int:
        return self.null_class

    def forward(self, x: torch.Tensor, t, labels: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device)
        h = F.pixel_unshuffle(x, self.patch) if self.patch > 1 else x
        eps = self.unet(h, t.expand(x.shape[0]) if t.dim() == 0 else t, class_labels=labels).sample
        return F.pixel_shuffle(eps, self.patch) if self.patch > 1 else eps

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """(tensors, metadata) for a safetensors checkpoint: weights, the UNet config and the patch size."""
        config = {k: v for k, v in self.unet.config.items() if not k.startswith("_")}
        return dict(self.unet.state_dict()), {"unet_config": json.dumps(config), "patch": str(self.patch)}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> ClassConditionalUNet:
        unet = UNet2DModel.from_config(json.loads(metadata["unet_config"]))
        unet.load_state_dict(tensors)
        return cls(unet, int(metadata["patch"])).eval().requires_grad_(False)


class Denoiser:
    """The generator's two predictions at (x_t, t), each computed once.

    `eps_uncond` is the generator (eps_fn of pic.optim.DiffusionPrior); `eps_cond` is what classifier-free
    guidance adds. The last unconditional pass is kept for the tensor it was asked of, so the CLS-FREE scorer and
    the MCMC correction reuse the generator's pass on the same x_t instead of running the UNet again.
    """

    def __init__(self, model: torch.nn.Module, null_class: int):
        self.model, self.null_class = model, null_class
        self._last: tuple | None = None  # (x, key, eps): holding x keeps its memory from being reused
        self.unet_calls = 0

    @torch.no_grad()
    def _eps(self, x, t, labels):
        self.unet_calls += 1
        return self.model(x, t, labels)

    def eps_uncond(self, x: torch.Tensor, t, **context) -> torch.Tensor:
        # keyed on x's memory, not the tensor object: scorers receive detached views of the generator's x_t
        key = (x.device, x.dtype, x.data_ptr(), tuple(x.shape), x.stride(), x._version, int(t))
        if self._last is not None and self._last[1] == key:
            return self._last[2]
        eps = self._eps(x, t, torch.full((x.shape[0],), self.null_class, device=x.device))
        self._last = (x, key, eps)
        return eps

    def eps_cond(self, x: torch.Tensor, t, labels: torch.Tensor) -> torch.Tensor:
        return self._eps(x, t, labels.to(x.device))


def check_labels(labels, batch: int, num_classes: int, name: str) -> torch.Tensor:
    """labels as int64 [batch] in [0, num_classes), else an error naming the scorer."""
    if labels is None:
        raise ValueError(f"scorer '{name}' needs `labels` (class ids, one per sample) in the context")
    labels = torch.as_tensor(labels)
    if labels.shape != (batch,) or labels.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"scorer '{name}' needs integer labels of shape ({batch},), got {labels.dtype} "
                         f"{tuple(labels.shape)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"scorer '{name}' got class ids outside [0, {num_classes}): "
                         f"{sorted(set(labels.tolist()) - set(range(num_classes)))}")
    return labels.long()


class ClassifierFreeScorer(Scorer):
    """CLS-FREE as a score-only expert: grad E = (eps(x_t, t, c) - eps(x_t, t, null)) / sigma_t, the gradient of
    -log p(c | x_t) implied by the generator. With the unconditional prediction as the generator and weight s,
    guided denoising computes exactly eps_u + s (eps_c - eps_u). Context: `labels` [B], `t`."""

    has_energy = False

    def __init__(self, denoiser: Denoiser, alphas_cumprod: torch.Tensor, name: str = "cls_free"):
        self.denoiser, self.alphas_cumprod, self.name = denoiser, alphas_cumprod, name

    def energy_and_grad(self, x, t=None, labels=None, **context):
        if t is None:
            raise ValueError(f"scorer '{self.name}' needs the timestep `t` in the context")
        labels = check_labels(labels, x.shape[0], self.denoiser.null_class, self.name)
        sigma = float((1 - self.alphas_cumprod[int(t)]).sqrt())
        return None, (self.denoiser.eps_cond(x, t, labels) - self.denoiser.eps_uncond(x, t)) / sigma
