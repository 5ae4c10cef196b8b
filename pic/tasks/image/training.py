"""Training of Table 1's four models, each on pic.train.fit with a fixed number of steps (seeded, so a re-run
gives the same weights on the same machine):

- the generator: epsilon-prediction loss at uniform timesteps, labels replaced by the null class with
  probability `label_dropout` (so one network is both conditional and unconditional), EMA weights;
- CLS: cross-entropy of the noise-aware classifier on x_t at uniform timesteps (guided-diffusion's recipe);
- CLIP-style: the noise-aware image tower against the frozen MiniLM text tower, on captions of the images,
  one random caption template per step (so the ten captions of a step are never false negatives);
- the evaluation net: cross-entropy on clean images; it never sees noise and never guides.
"""
from __future__ import annotations

import random
import time

import torch
import torch.nn.functional as F

from pic.models.clip_style import ClipStyleModel, contrastive_loss
from pic.tasks.image.data import CLASS_NAMES, TRAIN_TEMPLATES, prompt_for
from pic.train import FitLog, fit, step_batches, warmup_cosine


def _flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips: clothes are left-right symmetric in meaning."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _fit(model, loss_fn, n: int, *, steps: int, batch_size: int, lr: float, seed: int, desc: str,
         ema=None, progress: bool = True, weight_decay: float = 0.0) -> FitLog:
    """pic.train.fit with Table 1's recipe: `steps` batches of successive permutations, warm-up then cosine to 10 %,
    gradients clipped at 1, the mean loss of every 100 steps logged. One generator orders the batches and draws
    every loss's noise, so they interleave as loss_fn(index, generator) is written."""
    g = torch.Generator().manual_seed(seed)
    return fit(model, lambda idx: loss_fn(idx, g), step_batches(n, batch_size, steps, g), lr=lr,
               schedule=warmup_cosine(steps, warmup=min(200, steps // 10 + 1)), weight_decay=weight_decay,
               clip_grad=1.0, after_step=None if ema is None else lambda: ema.step(model.parameters()), seed=seed,
               log_every=100, total=steps, desc=desc if progress else None)


def train_generator(model, scheduler, images, labels, *, steps: int, batch_size: int = 128, lr: float = 2e-3,
                    label_dropout: float = 0.15, ema_decay: float = 0.999, seed: int = 0,
                    progress: bool = True) -> FitLog:
    """Epsilon-prediction training of a ClassConditionalUNet; its weights end as the EMA weights."""
    from diffusers.training_utils import EMAModel

    ema = EMAModel(model.parameters(), decay=ema_decay)
    T = scheduler.config.num_train_timesteps

    def loss_fn(idx, g):
        x0 = _flip(images[idx], g)
        y = labels[idx].clone()
        y[torch.rand(len(idx), generator=g) < label_dropout] = model.null_class
        t = torch.randint(0, T, (len(idx),), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        return F.mse_loss(model(scheduler.add_noise(x0, noise, t), t, y), noise)

    log = _fit(model, loss_fn, len(images), steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                desc="generator", ema=ema, progress=progress)
    ema.copy_to(model.parameters())
    return log


def train_noisy_classifier(model, scheduler, images, labels, *, steps: int, batch_size: int = 128,
                           lr: float = 2e-3, seed: int = 1, progress: bool = True) -> FitLog:
    """Cross-entropy of a noise-aware classifier on x_t, t uniform over the whole schedule."""
    T = scheduler.config.num_train_timesteps

    def loss_fn(idx, g):
        x0 = _flip(images[idx], g)
        t = torch.randint(0, T, (len(idx),), generator=g)
        x_t = scheduler.add_noise(x0, torch.randn(x0.shape, generator=g), t)
        return F.cross_entropy(model(x_t, t), labels[idx])

    return _fit(model, loss_fn, len(images), steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                 desc="CLS (noise-aware)", progress=progress, weight_decay=1e-4)


def train_clip_style(model: ClipStyleModel, text_encoder, scheduler, images, labels, *, steps: int,
                     batch_size: int = 128, lr: float = 2e-3, seed: int = 2, progress: bool = True) -> FitLog:
    """Image tower (+ projection, logit scale) against the frozen text tower; text embeddings are precomputed."""
    T = scheduler.config.num_train_timesteps
    num_classes = len(CLASS_NAMES)
    text = {tpl: [text_encoder.encode([tpl.format(n) for n in CLASS_NAMES[c]]) for c in range(num_classes)]
            for tpl in TRAIN_TEMPLATES}
    rng = random.Random(seed)

    def loss_fn(idx, g):
        tpl = TRAIN_TEMPLATES[rng.randrange(len(TRAIN_TEMPLATES))]
        captions = torch.stack([text[tpl][c][rng.randrange(len(CLASS_NAMES[c]))] for c in range(num_classes)])
        x0 = _flip(images[idx], g)
        t = torch.randint(0, T, (len(idx),), generator=g)
        x_t = scheduler.add_noise(x0, torch.randn(x0.shape, generator=g), t)
        return contrastive_loss(model.logits(x_t, captions, t=t), labels[idx])

    return _fit(model, loss_fn, len(images), steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                 desc="CLIP-style tower", progress=progress, weight_decay=1e-4)


def train_feature_net(model, images, labels, *, steps: int, batch_size: int = 128, lr: float = 2e-3,
                      seed: int = 3, progress: bool = True) -> FitLog:
    """Cross-entropy on clean images with flips: the evaluation network."""
    def loss_fn(idx, g):
        return F.cross_entropy(model(_flip(images[idx], g)), labels[idx], label_smoothing=0.05)

    return _fit(model, loss_fn, len(images), steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                 desc="evaluation net", progress=progress, weight_decay=5e-4)


@torch.no_grad()
def accuracy(predict, images, labels, batch_size: int = 1000) -> float:
    """Share of `images` whose argmax of predict(batch) matches `labels`."""
    hits = sum(int((predict(images[i:i + batch_size]).argmax(-1) == labels[i:i + batch_size]).sum())
               for i in range(0, len(images), batch_size))
    return hits / len(images)


NOISE_LEVELS = [0, 250, 500, 750, 900]  # timesteps at which the scorers' held-out accuracy is reported


def fit_models(setup, seed: int = 0) -> tuple[dict[str, FitLog], dict[str, float]]:
    """Notebook 10's training, in its order (evaluation net, CLS, CLIP-style tower, generator; model k seeded with
    seed + k): ({model: loss log}, {model: seconds}). In load mode (setup.retrain False) nothing is trained and
    both are empty: the committed checkpoints are the models."""
    if not setup.retrain:
        return {}, {}
    m, steps, (x, y) = setup.models, setup.steps, setup.train
    jobs = {"eval_net": lambda: train_feature_net(m.eval_net, x, y, steps=steps["eval_net"], seed=seed + 3,
                                                  progress=False),
            "cls": lambda: train_noisy_classifier(m.cls, setup.scheduler, x, y, steps=steps["cls"], seed=seed + 1,
                                                  progress=False),
            "clip": lambda: train_clip_style(m.clip, setup.text_encoder, setup.scheduler, x, y, steps=steps["clip"],
                                             seed=seed + 2, progress=False),
            "generator": lambda: train_generator(m.generator, setup.scheduler, x, y, steps=steps["generator"],
                                                 seed=seed, progress=False)}
    logs, seconds = {}, {}
    for name, job in jobs.items():
        start = time.perf_counter()
        logs[name] = job()
        seconds[name] = time.perf_counter() - start
    return logs, seconds


def noised(scheduler, x: torch.Tensor, t: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x noised to timestep t with the noise of `seed` (the same for every scorer), and the timesteps."""
    g = torch.Generator().manual_seed(seed)
    tt = torch.full((len(x),), t)
    return scheduler.add_noise(x, torch.randn(x.shape, generator=g), tt), tt


def held_out(setup, seed: int = 0) -> dict[str, object]:
    """Test accuracies: the evaluation net on clean images; CLS, and the CLIP-style scorer zero-shot with the
    held-out prompt template (never a training caption), on images noised to each of NOISE_LEVELS (t = 0: clean)."""
    m, (x, y) = setup.models, setup.test
    prompts = setup.text_encoder.encode([prompt_for(c) for c in range(len(CLASS_NAMES))])
    out = {"eval_net": accuracy(m.eval_net, x, y), "cls": {}, "clip": {}}
    for t in NOISE_LEVELS:
        x_t, tt = noised(setup.scheduler, x, t, seed + 10 + t)
        out["cls"][t] = accuracy(lambda b, tt=tt: m.cls(b, tt[:len(b)]), x_t, y)
    for t in NOISE_LEVELS:
        x_t, tt = noised(setup.scheduler, x, t, seed + 10 + t)
        out["clip"][t] = accuracy(lambda b, tt=tt: m.clip.logits(b, prompts, t=tt[:len(b)]), x_t, y)
    return out


def generator_loss(logs: dict[str, FitLog]) -> float:
    """The generator's final training loss: of this run, or (load mode) as its checkpoint records it."""
    if "generator" in logs:
        return logs["generator"].final()
    from pic.tasks.image import checkpoints

    return float(checkpoints.metadata("generator")["final_loss"])
