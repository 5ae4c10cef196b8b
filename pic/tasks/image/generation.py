"""Table 1 in miniature: a class-conditional diffusion generator on Fashion-MNIST, refined by the consensus of a
CLIP-style scorer (free-text prompts), a noise-aware classifier (CLS) and classifier-free guidance (CLS-FREE).

The generator proposes with its unconditional prediction; each scorer adds sigma_t * w * grad E to it at every
denoising step (pic.optim.guided_denoise), so a row of the table is a choice of scorers and weights. Every row
samples all classes and seeds in one batch. Metrics use our own evaluation net (pic.tasks.image.feature_net).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from pic.energy import ComposedEnergy
from pic.metrics.image_quality import Gaussian, class_accuracy, fid, inception_score, kid
from pic.tasks.image.unet import ClassConditionalUNet, ClassifierFreeScorer, Denoiser, make_unet
from pic.models.clip_style import ClipStyleModel, ClipStyleScorer
from pic.tasks.image.feature_net import FeatureNet
from pic.tasks.image.noise_aware import ClassifierScorer, NoiseAwareClassifier, NoiseAwareEncoder
from pic.optim import DiffusionPrior, Langevin, guided_denoise
from pic.tasks.image.data import CLASSES, PROMPT_TEMPLATE, class_index, prompt_for

SCORERS = ("clip", "cls", "cls_free")
LABELS = {"clip": "CLIP", "cls": "CLS", "cls_free": "CLS-FREE"}
# the rows of Table 1 (+ the MCMC correction): name -> (scorers, MCMC correction?)
ROWS = {"generator alone": ((), False),
        "+ CLIP": (("clip",), False),
        "+ CLS": (("cls",), False),
        "+ CLS-FREE": (("cls_free",), False),
        "+ CLIP + CLS": (("clip", "cls"), False),
        "+ CLIP + CLS-FREE": (("clip", "cls_free"), False),
        "+ CLS + CLS-FREE": (("cls", "cls_free"), False),
        "+ CLIP + CLS + CLS-FREE": (SCORERS, False),
        "+ CLIP + CLS + CLS-FREE + MCMC": (SCORERS, True)}
# architectures: `local` trains these; `smoke` uses the tiny ones, randomly initialised
ARCHITECTURES = {
    "local": dict(unet=dict(block_out_channels=(32, 64), attention=True), encoder=dict(widths=(24, 48)),
                  eval_net=dict(widths=(32, 64, 128), feature_dim=128)),
    "smoke": dict(unet=dict(block_out_channels=(8, 16), attention=False), encoder=dict(widths=(8, 8)),
                  eval_net=dict(widths=(8, 8, 16), feature_dim=16)),
}


def training_scheduler() -> DDPMScheduler:
    """The forward process every model is trained on: 1000 steps, cosine schedule (good at 28x28)."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False)


def sampling_scheduler() -> DDIMScheduler:
    """Deterministic DDIM on the same schedule. Two choices matter for guidance:
    - no x0 clipping: diffusers' DDIM clips x0 but keeps the unclipped eps, so at high noise, where x0 saturates,
      a guidance term would push x_t the wrong way;
    - "leading" steps (950, 900, ..., 0): the cosine schedule ends at abar = 2e-9, where one step would multiply
      any error in eps by ~1500."""
    return DDIMScheduler.from_config(training_scheduler().config, timestep_spacing="leading")


@dataclass
class ImageModels:
    """The generator, the two trained scorers' networks, the frozen text tower and the evaluation net."""

    generator: ClassConditionalUNet
    cls: NoiseAwareClassifier
    clip: ClipStyleModel
    text_encoder: object
    eval_net: FeatureNet

    def sizes(self) -> dict[str, int]:
        """Parameter count of each trained network."""
        return {name: sum(p.numel() for p in getattr(self, name).parameters())
                for name in ("generator", "cls", "clip", "eval_net")}


def new_models(text_encoder, architecture: str = "local", seed: int = 0) -> ImageModels:
    """Freshly initialised networks of an architecture (`local`: the trained sizes; `smoke`: tiny ones)."""
    arch = ARCHITECTURES[architecture]
    torch.manual_seed(seed)
    generator = ClassConditionalUNet(make_unet(num_classes=len(CLASSES), **arch["unet"]))
    cls = NoiseAwareClassifier(len(CLASSES), **arch["encoder"])
    tower = NoiseAwareEncoder(**arch["encoder"])
    clip = ClipStyleModel(tower, tower.feature_dim, text_dim=text_encoder.dim)
    return ImageModels(generator, cls, clip, text_encoder, FeatureNet(len(CLASSES), **arch["eval_net"]))


def labels_for(class_names: Sequence[str] | None, per_class: int) -> torch.Tensor:
    """Class ids [len(classes) * per_class], class-major; every class when `class_names` is None. An unknown
    name is an error listing the classes."""
    ids = list(range(len(CLASSES))) if class_names is None else [class_index(n) for n in class_names]
    if not ids or per_class < 1:
        raise ValueError(f"need at least one class and one sample per class, got {class_names!r} x {per_class}")
    return torch.tensor(ids).repeat_interleave(per_class)


class ConsensusSampler:
    """Guided denoising of a generator with any subset of its scorers {CLIP, CLS, CLS-FREE}, batched over samples.

    `sample(weights, labels, noise)`: labels [B] are the class ids that CLS and CLS-FREE read; CLIP reads the
    free-text prompt of each label (`prompt_of`). The generator is the unconditional prediction.
    """

    def __init__(self, denoiser: Denoiser, scheduler, scorers: dict, prompt_of):
        self.denoiser, self.scheduler, self.scorers, self.prompt_of = denoiser, scheduler, scorers, prompt_of
        self.prior = DiffusionPrior(denoiser.eps_uncond, scheduler)

    def energy(self, weights: dict[str, float]) -> ComposedEnergy | None:
        unknown = sorted(set(weights) - set(self.scorers))
        if unknown:
            raise ValueError(f"unknown scorer(s) {unknown}; choose from {list(self.scorers)}")
        return ComposedEnergy([(self.scorers[n], w) for n, w in weights.items()]) if weights else None

    def sample(self, weights: dict[str, float], labels: torch.Tensor, noise: torch.Tensor, *, num_steps: int,
               mcmc: Langevin | None = None, seed: int = 0, progress: bool = False):
        """DenoiseResult of one row: samples shaped like `noise` and the per-step history."""
        if mcmc is not None and not weights:
            raise ValueError("the MCMC correction needs at least one scorer")
        return guided_denoise(self.prior, self.scheduler, noise, self.energy(weights), num_steps=num_steps,
                              mcmc=mcmc, generator=torch.Generator().manual_seed(seed), progress=progress,
                              labels=labels, prompt=[self.prompt_of(int(c)) for c in labels])

    def langevin(self, steps: int, step_scale: float) -> Langevin:
        """ULA steps at each noise level with step size step_scale * sigma_t^2 (the noise level's own scale);
        ULA, not MALA, because CLS-FREE gives a score and no energy."""
        abar = self.scheduler.alphas_cumprod
        return Langevin(steps=steps, step_size=lambda t: step_scale * float(1 - abar[int(t)]))


def local_sampler(models: ImageModels, template: str = PROMPT_TEMPLATE) -> ConsensusSampler:
    """The trained Fashion-MNIST generator with its three scorers; CLIP is asked `template` filled with a class."""
    scheduler = sampling_scheduler()
    denoiser = Denoiser(models.generator, models.generator.null_class)
    scorers = {"clip": ClipStyleScorer(models.clip, models.text_encoder, name="clip"),
               "cls": ClassifierScorer(models.cls, models.cls.num_classes, name="cls"),
               "cls_free": ClassifierFreeScorer(denoiser, scheduler.alphas_cumprod)}
    return ConsensusSampler(denoiser, scheduler, scorers, lambda c: prompt_for(c, template))


def paper_sampler(paper: dict, template: str = PROMPT_TEMPLATE, noised_clip: bool = False) -> ConsensusSampler:
    """The `paper` profile: a hub pipeline's generator with hub CLIP and an ImageNet classifier, which score the
    decoded clean estimate (or, `noised_clip`, the decoded x_t as GLIDE's noise-aware CLIP does)."""
    from pic.tasks.image.paper import OnImages

    scheduler = DDIMScheduler.from_config(paper["pipeline"].scheduler.config, timestep_spacing="trailing")
    eps_model = paper["eps_model"]
    denoiser = Denoiser(eps_model, eps_model.null_class)
    abar = scheduler.alphas_cumprod
    clip = ClipStyleScorer(paper["clip"], paper["clip_text"], name="clip")
    cls = ClassifierScorer(paper["classifier"], paper["classifier"].num_classes, name="cls")
    scorers = {"clip": OnImages(clip, paper["decoder"], denoiser, abar, noised=noised_clip),
               "cls": OnImages(cls, paper["decoder"], denoiser, abar),
               "cls_free": ClassifierFreeScorer(denoiser, abar)}
    names = paper["class_names"]
    return ConsensusSampler(denoiser, scheduler, scorers, lambda c: template.format(names[c]))


def row_weights(scorers: Sequence[str], weights: dict[str, float], combination_scale: float = 1.0,
                all_scorer_scales: dict[str, float] | None = None) -> dict:
    """The weights of a row: each scorer's own weight, times `combination_scale` when several are combined, and in
    the row of all SCORERS also times its factor in `all_scorer_scales` (absent: 1)."""
    scale = combination_scale if len(scorers) > 1 else 1.0
    extra = (all_scorer_scales or {}) if set(scorers) == set(SCORERS) else {}
    return {n: weights[n] * scale * extra.get(n, 1.0) for n in scorers}


def initial_noise(n: int, seed: int, shape: tuple[int, ...] = (1, 28, 28)) -> torch.Tensor:
    """The starting noise of a seed; every row of a seed starts from the same noise (paired comparisons)."""
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


@dataclass
class Reference:
    """Features of real images that generated ones are compared with (FID's Gaussian, KID's sample)."""

    features: torch.Tensor
    labels: torch.Tensor
    gaussian: Gaussian

    @classmethod
    def of(cls, eval_net: FeatureNet, images: torch.Tensor, labels: torch.Tensor) -> Reference:
        f, _ = eval_net.embed(images)
        return cls(f, labels, Gaussian.fit(f))


def quality(eval_net: FeatureNet, images: torch.Tensor, labels: torch.Tensor, reference: Reference,
            kid_subsets: int = 100, seed: int = 0) -> dict[str, float]:
    """FID, KID (mean, std over subsets), class-conditional KID, IS and class accuracy of images asked to show
    `labels`, on the evaluation net's features."""
    f, p = eval_net.embed(images)
    k, k_std = kid(f, reference.features, n_subsets=kid_subsets, seed=seed)
    per_class = [kid(f[labels == c], reference.features[reference.labels == c], n_subsets=max(10, kid_subsets // 10),
                     seed=seed)[0] for c in labels.unique().tolist() if int((labels == c).sum()) >= 2]
    return {"fid": fid(f, reference.gaussian), "kid": k, "kid_std": k_std,
            "class_kid": float(sum(per_class) / len(per_class)), "is": inception_score(p),
            "accuracy": class_accuracy(p, labels)}


def per_pixel_gaussian(images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n samples of independent per-pixel Gaussians fitted to `images`, clipped to [-1, 1]: the FID ceiling."""
    g = torch.Generator().manual_seed(seed)
    mean, std = images.mean(0), images.std(0)
    return (mean + std * torch.randn((n, *images.shape[1:]), generator=g)).clamp(-1, 1)


def per_seed_quality(eval_net: FeatureNet, samples: torch.Tensor, labels: torch.Tensor, n_seeds: int,
                     reference: Reference, seed: int = 0) -> list[dict[str, float]]:
    """quality() of each seed's block of a row batched as [seed 0 | seed 1 | ...], each block asked `labels`."""
    n = len(labels)
    if len(samples) != n * n_seeds:
        raise ValueError(f"{len(samples)} samples is not {n_seeds} seeds x {n} labels")
    return [quality(eval_net, samples[i * n:(i + 1) * n], labels, reference, seed=seed + i) for i in range(n_seeds)]


def reference_quality(eval_net: FeatureNet, train_x: torch.Tensor, train_y: torch.Tensor, labels: torch.Tensor,
                      reference: Reference, n_seeds: int, seed: int = 0) -> dict[str, list[dict[str, float]]]:
    """quality() per seed of real images through the same metric: train images of the classes in `labels` (as many
    of each; the floor) and a per-pixel Gaussian fitted to the training set (a ceiling)."""
    real, gaussian = [], []
    for i in range(n_seeds):
        g = torch.Generator().manual_seed(seed + 2000 + i)
        pick = torch.cat([torch.nonzero(train_y == c).squeeze(1)[torch.randperm(int((train_y == c).sum()), generator=g)[
            :int((labels == c).sum())]] for c in labels.unique()])
        real.append(quality(eval_net, train_x[pick], train_y[pick], reference, seed=seed + i))
        gaussian.append(quality(eval_net, per_pixel_gaussian(train_x, len(labels), seed + 3000 + i), labels,
                                reference, seed=seed + i))
    return {"reference: train images (floor)": real, "reference: per-pixel Gaussian (ceiling)": gaussian}


def side_by_side(eval_net: FeatureNet, batches: dict[str, torch.Tensor], labels: torch.Tensor, reference: Reference,
                 seed: int = 0) -> list[dict]:
    """One row per named batch of samples (each asked `labels`): FID, KID x 1000 and class accuracy, for the quick
    comparisons of the exercises (one seed each: no spread, so read small gaps as noise)."""
    rows = []
    for name, images in batches.items():
        q = quality(eval_net, images, labels, reference, seed=seed)
        rows.append({"samples": name, "fid": q["fid"], "kid_x1000": 1000 * q["kid"], "accuracy": q["accuracy"]})
    return rows
