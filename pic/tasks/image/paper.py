"""The `paper` profile of Table 1: a class-conditional diffusers pipeline, transformers CLIP and an ImageNet
classifier by hub id, adapted to the same scorer classes as the models trained here.

- the generator: any diffusers pipeline whose denoiser takes class labels with a "null" class for
  classifier-free guidance (DiT by default: a latent transformer with learned variance, null class 1000);
- CLIP: transformers CLIPModel as a pic.models.clip_style.ClipStyleModel (its own projection and logit scale);
- CLS: an image classifier (AutoModelForImageClassification) under pic.tasks.image.noise_aware.ClassifierScorer.

The pretrained CLIP and classifier were trained on clean images, so by default they score the generator's clean
estimate x0_hat = (x_t - sigma_t eps_u) / sqrt(abar_t), decoded to pixels; `noised=True` gives them the (decoded)
noisy x_t and t instead, as GLIDE does with its noise-aware CLIP.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pic.energy import Scorer
from pic.models.clip_style import ClipStyleModel
from pic.models.hub import HubUnavailableError, from_hub
from pic.models.hub_clip import HubClip

PAPER_IDS = {"generator": "facebook/DiT-XL-2-256", "clip": "openai/clip-vit-base-patch32",
             "classifier": "google/vit-base-patch16-224"}


class PipelineEps(torch.nn.Module):
    """eps(x_t, t, labels) of a pipeline's class-conditional denoiser (`transformer` or `unet`); learned-variance
    channels are split off; `null_class` is the label that classifier-free dropout trained."""

    def __init__(self, denoiser: torch.nn.Module, null_class: int):
        super().__init__()
        self.denoiser, self.null_class = denoiser, null_class
        self.channels = denoiser.config.in_channels

    def forward(self, x, t, labels):
        t = torch.as_tensor(t, device=x.device)
        t = t.expand(x.shape[0]) if t.dim() == 0 else t
        if hasattr(self.denoiser.config, "num_class_embeds"):  # a UNet2DModel
            out = self.denoiser(x, t, class_labels=labels).sample
        else:
            out = self.denoiser(x, timestep=t, class_labels=labels).sample
        return out[:, :self.channels]


class Decoder(torch.nn.Module):
    """Generator space -> images [B, 3, H, W] in [0, 1]: the VAE for latent pipelines, a rescale for pixel ones."""

    def __init__(self, vae=None):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        x = self.vae.decode(z / self.vae.config.scaling_factor).sample if self.vae is not None else z
        x = (x + 1) / 2
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class Preprocessed(torch.nn.Module):
    """images [B, 3, H, W] in [0, 1] -> a network's normalised input at its resolution (differentiable)."""

    def __init__(self, size: int, mean, std):
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images):
        x = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std


class ClipImageTower(torch.nn.Module):
    """A hub CLIP's image features of images in [0, 1] (the extra context, e.g. `t`, is ignored: a clean CLIP)."""

    def __init__(self, clip: HubClip):
        super().__init__()
        self.clip = clip

    def forward(self, images, **context):
        return self.clip.image_features(images)


def clip_style_model(clip: HubClip) -> ClipStyleModel:
    """A hub CLIP as a ClipStyleModel: the projection is the identity (CLIP's own projection is in the tower)
    and the logit scale is CLIP's."""
    model = ClipStyleModel(ClipImageTower(clip), feature_dim=clip.dim, text_dim=clip.dim)
    with torch.no_grad():
        model.projection.weight.copy_(torch.eye(clip.dim))
        model.projection.bias.zero_()
        model.log_scale.copy_(clip.model.logit_scale.detach())
    return model.eval().requires_grad_(False)


class HubClassifier(torch.nn.Module):
    """logits of an AutoModelForImageClassification on images in [0, 1] (context ignored: a clean classifier)."""

    def __init__(self, model, size: int, mean, std):
        super().__init__()
        self.model, self.preprocess = model, Preprocessed(size, mean, std)
        self.num_classes = model.config.num_labels

    def forward(self, images, **context):
        return self.model(pixel_values=self.preprocess(images)).logits


class OnImages(Scorer):
    """A pixel-space scorer applied to a generator's x_t: to the decoded clean estimate x0_hat (default; the
    generator's unconditional eps is a constant of the gradient), or to the decoded noisy x_t with its t
    (`noised=True`, GLIDE's noise-aware CLIP)."""

    def __init__(self, scorer: Scorer, decoder: Decoder, denoiser, alphas_cumprod, noised: bool = False):
        self.scorer, self.decoder, self.denoiser, self.noised = scorer, decoder, denoiser, noised
        self.alphas_cumprod, self.name = alphas_cumprod, scorer.name

    def energy(self, x, t=None, **context):
        if t is None:
            raise ValueError(f"scorer '{self.name}' needs the timestep `t` in the context")
        if self.noised:
            return self.scorer.energy(self.decoder(x), t=t, **context)
        abar = self.alphas_cumprod[int(t)].to(x.dtype)
        eps = self.denoiser.eps_uncond(x.detach(), t)
        x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
        return self.scorer.energy(self.decoder(x0), **context)


def load_paper_models(ids: dict[str, str] | None = None, device: str | torch.device = "cpu") -> dict:
    """{'pipeline', 'eps_model', 'decoder', 'clip', 'clip_text', 'classifier', 'class_names'} from the hub (or its
    cache); offline, stops at once with an error naming every id it needs."""
    from diffusers import DiffusionPipeline
    from transformers import AutoImageProcessor, AutoModelForImageClassification, AutoTokenizer, CLIPModel

    ids = {**PAPER_IDS, **(ids or {})}
    try:
        pipe = from_hub(DiffusionPipeline.from_pretrained, ids["generator"])
        clip = from_hub(CLIPModel.from_pretrained, ids["clip"])
        tokenizer = from_hub(AutoTokenizer.from_pretrained, ids["clip"])
        classifier = from_hub(AutoModelForImageClassification.from_pretrained, ids["classifier"])
        processor = from_hub(AutoImageProcessor.from_pretrained, ids["classifier"])
    except HubUnavailableError as err:
        raise HubUnavailableError(f"the `paper` profile of Table 1 needs the hub models {sorted(ids.values())} "
                                  f"(generator, CLIP, classifier); {err}") from err
    denoiser = getattr(pipe, "transformer", None) or pipe.unet
    null_class = getattr(denoiser.config, "num_embeds_ada_norm", None) or denoiser.config.num_class_embeds - 1
    size = processor.size.get("height") or processor.size.get("shortest_edge")
    classify = HubClassifier(classifier, size, processor.image_mean, processor.image_std)
    hub_clip = HubClip(clip, tokenizer)
    modules = [PipelineEps(denoiser, null_class), Decoder(getattr(pipe, "vae", None)), clip_style_model(hub_clip), classify]
    for m in modules:
        m.to(device).eval().requires_grad_(False)
    class_names: dict[int, str] = {}
    for name, i in (getattr(pipe, "labels", None) or {}).items():  # DiT: name -> id, several names per id
        class_names.setdefault(int(i), name)
    class_names = class_names or {int(i): n.split(",")[0] for i, n in classifier.config.id2label.items()}
    return {"pipeline": pipe, "eps_model": modules[0], "decoder": modules[1], "clip": modules[2],
            "clip_text": hub_clip.texts, "classifier": modules[3],
            "class_names": class_names, "ids": ids}
