"""`load(profile, notebook, **overrides)`: everything a Table 1 notebook needs at a profile, so that notebooks never
branch on it.

  smoke  10: tiny networks trained a few steps (retrain=True) or the committed ones (retrain=False), a small sweep;
         11: tiny random networks, fixed guidance weights, a few samples; seconds
  local  the committed checkpoints of 10 (sha256-verified), the guidance chosen on validation; minutes on 2 CPU cores
  paper  11 only: the paper-scale hub models (DiT-XL/2, CLIP ViT-B/32, a ViT-B/16 classifier), GLIDE's weights; a GPU
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from pic.models.text_encoder import FrozenTextEncoder
from pic.report import profile_settings
from pic.tasks.image import checkpoints
from pic.tasks.image import generation as ig
from pic.tasks.image.data import CLASSES, PROMPT_TEMPLATE, load_split

PROFILES = {
    "10_train_image_models": {
        "smoke": dict(generator_steps=20, scorer_steps=20, eval_steps=20, select_per_class=2, select_steps=4,
                      architecture="smoke", test_images=1000, save=False),
        "local": dict(generator_steps=4000, scorer_steps=1500, eval_steps=1200, select_per_class=10, select_steps=20,
                      architecture="local", test_images=None, save=True),
        "paper": dict(generator_steps=4000, scorer_steps=1500, eval_steps=1200, select_per_class=10, select_steps=20,
                      architecture="local", test_images=None, save=False),
    },
    # guidance: `local` reads the weights chosen on the validation split (stored with the generator by 10); the tiny
    # random `smoke` models and the hub models of `paper` use fixed ones (`paper`: GLIDE's CLIP and CLS-FREE scale 3,
    # guided-diffusion's classifier scale 1). all_scorer_scales: factors on CLIP's and CLS's weights in the rows of
    # all three scorers, `local`: the cell 60_ablations' grid picks on the validation split (by accuracy and KID)
    "11_image_generation": {
        "smoke": dict(n_per_class=2, n_seeds=2, num_steps=4, reference_images=1000,
                      guidance={"clip": 1.0, "cls": 1.0, "cls_free": 2.0, "combination_scale": 0.5,
                                "mcmc_step_scale": 0.05}, all_scorer_scales={}),
        "local": dict(n_per_class=17, n_seeds=3, num_steps=20, reference_images=10000, guidance=None,
                      all_scorer_scales={"clip": 1.0, "cls": 0.5}),
        "paper": dict(n_per_class=8, n_seeds=3, num_steps=50, reference_images=0,
                      guidance={"clip": 3.0, "cls": 1.0, "cls_free": 3.0, "combination_scale": 1.0,
                                "mcmc_step_scale": 0.05}, all_scorer_scales={}),
    },
}


@dataclass
class Training:
    """Notebook 10: the settings, the data splits, the networks (fresh to train, or the committed ones), the
    training noise schedule."""

    settings: dict
    retrain: bool
    models: ig.ImageModels
    text_encoder: Any
    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    scheduler: Any
    steps: dict[str, int]  # training steps of each network: to take, or (load mode) as its checkpoint records


@dataclass
class Experiment:
    """Notebook 11: the settings, the sampler of every row, the prompted classes, the evaluation net (None at
    `paper`: there are no Fashion-MNIST references), the guidance in use, and how samples become pixels."""

    settings: dict
    sampler: ig.ConsensusSampler
    labels: torch.Tensor  # one seed's prompted class ids, class-major
    class_names: list[str]  # the name of each id in labels.unique()
    sample_shape: tuple[int, ...]
    eval_net: Any
    models: ig.ImageModels | None
    text_encoder: Any
    weights: dict[str, float]
    combination_scale: float
    mcmc_step_scale: float
    to_pixels: Callable[[torch.Tensor], torch.Tensor]  # samples -> images in [0, 1]
    committed: bool  # the models are the committed checkpoints of notebook 10

    def model_rows(self) -> list[dict]:
        """The models as their checkpoints record them; at smoke, the tiny random networks' sizes only."""
        if self.committed:
            from pic.tasks.image.table import committed_models

            return committed_models(self.models)
        if self.models is None:
            return []
        return [{"model": name, "parameters": n, "checkpoint_kB": "-", "training_steps": 0,
                 "held_out_test_accuracy": "- (random)"} for name, n in self.models.sizes().items()]

    def seed_batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels, starting noise) of every seed batched as [seed 0 | seed 1 | ...]: seed i starts from the noise
        of seed + 1000 i, the same in every row (paired comparisons)."""
        n_seeds = self.settings["n_seeds"]
        noise = torch.cat([ig.initial_noise(len(self.labels), seed + 1000 * i, self.sample_shape)
                           for i in range(n_seeds)])
        return self.labels.repeat(n_seeds), noise

    def sample_row(self, row: str, seed: int, mcmc_steps: int = 1):
        """The DenoiseResult of Table 1's row `row` (a key of ig.ROWS), every seed in one batch: the unit of work of
        the notebook's loop and of `python -m pic.evaluate image` (its seeds derive from `seed`, never a rank)."""
        scorer_names, with_mcmc = ig.ROWS[row]
        labels, noise = self.seed_batch(seed)
        mcmc = self.sampler.langevin(mcmc_steps, self.mcmc_step_scale) if with_mcmc else None
        return self.sampler.sample(self.row_weights(scorer_names), labels, noise,
                                   num_steps=self.settings["num_steps"], mcmc=mcmc, seed=seed)

    def row_weights(self, scorer_names, combination_scale: float | None = None) -> dict[str, float]:
        """The guidance weights of the row of `scorer_names` (ig.row_weights with this experiment's guidance and
        all-scorer scales; `combination_scale` None: the experiment's)."""
        return ig.row_weights(scorer_names, self.weights, combination_scale or self.combination_scale,
                              self.settings["all_scorer_scales"])

    def reference(self) -> ig.Reference:
        """The real images generated ones are measured against: the first `reference_images` test images."""
        test_x, test_y = load_split("test")
        keep = torch.arange(len(test_x)) < self.settings["reference_images"]
        return ig.Reference.of(self.eval_net, test_x[keep], test_y[keep])

    def row_quality(self, samples: torch.Tensor, reference: ig.Reference, seed: int) -> list[dict[str, float]]:
        """quality() of each seed's block of a row's samples (ig.per_seed_quality)."""
        return ig.per_seed_quality(self.eval_net, samples, self.labels, self.settings["n_seeds"], reference, seed)

    def reference_rows(self, reference: ig.Reference, seed: int) -> dict[str, list[dict[str, float]]]:
        """The floor and ceiling rows: train images and a per-pixel Gaussian through the same metric, per seed."""
        train_x, train_y = load_split("train")
        return ig.reference_quality(self.eval_net, train_x, train_y, self.labels, reference, self.settings["n_seeds"],
                                    seed)


def load(profile: str, notebook: str, **overrides) -> Training | Experiment:
    if notebook == "10_train_image_models":
        return _training(profile, **overrides)
    if notebook == "11_image_generation":
        return _experiment(profile, **overrides)
    raise ValueError(f"no Table 1 notebook {notebook!r}; known: {sorted(PROFILES)}")


def _training(profile: str, retrain: bool, seed: int = 0, **given) -> Training:
    settings = profile_settings(profile, PROFILES["10_train_image_models"], **given)
    if profile == "paper":
        raise ValueError("the `paper` profile of Table 1 uses pre-trained hub models (pic.tasks.image.paper): there "
                         "is nothing to train; run 11_image_generation with profile=paper")
    text_encoder = FrozenTextEncoder()
    models = (ig.new_models(text_encoder, settings["architecture"], seed=seed) if retrain
              else checkpoints.load(text_encoder))
    test_x, test_y = load_split("test")
    keep = slice(None, settings["test_images"])
    steps = ({"generator": settings["generator_steps"], "cls": settings["scorer_steps"],
              "clip": settings["scorer_steps"], "eval_net": settings["eval_steps"]} if retrain
             else {name: int(checkpoints.metadata(name)["steps"]) for name in checkpoints.NAMES})
    return Training(settings, retrain, models, text_encoder, load_split("train"), load_split("validation"),
                    (test_x[keep], test_y[keep]), ig.training_scheduler(), steps)


def _experiment(profile: str, *, prompt_template: str = PROMPT_TEMPLATE, classes=None, noised_clip: bool = False,
                weights: dict | None = None, combination_scale: float | None = None,
                mcmc_step_scale: float | None = None, **given) -> Experiment:
    settings = profile_settings(profile, PROFILES["11_image_generation"], **given)
    n = settings["n_per_class"]
    if profile == "paper":
        from pic.tasks.image.paper import load_paper_models

        paper = load_paper_models()
        sampler = ig.paper_sampler(paper, prompt_template, noised_clip=noised_clip)
        denoiser = paper["eps_model"].denoiser
        sample_shape = (denoiser.config.in_channels,) + (denoiser.config.sample_size,) * 2
        class_ids = sorted(paper["class_names"])[:10] if classes is None else classes
        labels = torch.tensor(class_ids).repeat_interleave(n)
        names = [paper["class_names"][int(c)] for c in labels.unique()]
        models, text_encoder, eval_net = None, None, None

        def to_pixels(samples):  # the paper profile's samples are latents: decode them to pixels
            with torch.no_grad():
                return paper["decoder"](samples).clamp(0, 1)
    else:
        text_encoder = FrozenTextEncoder()
        models = ig.new_models(text_encoder, "smoke") if profile == "smoke" else checkpoints.load(text_encoder)
        sampler = ig.local_sampler(models, prompt_template)
        sample_shape, eval_net = (1, 28, 28), models.eval_net
        labels = ig.labels_for(classes, n)
        names = [CLASSES[int(c)] for c in labels.unique()]

        def to_pixels(samples):
            return ((samples + 1) / 2).clamp(0, 1)
    guidance = settings["guidance"] or checkpoints.stored_guidance()
    return Experiment(settings, sampler, labels, names, sample_shape, eval_net, models, text_encoder,
                      weights or {k: guidance[k] for k in ig.SCORERS},
                      combination_scale or guidance["combination_scale"],
                      mcmc_step_scale or guidance["mcmc_step_scale"], to_pixels, committed=profile == "local")
