"""Guided denoising: a diffusion generator proposes, the composed scorers add their weighted gradients.

At each step of any diffusers scheduler, the generator's epsilon-prediction is shifted by the composed energy:
    eps_hat = eps(x_t, t) + sigma_t * sum_n w_n grad E_n(x_t, t),   sigma_t = sqrt(1 - abar_t),
which adds -sum_n w_n grad E_n to the score: classifier guidance, CLIP guidance and classifier-free guidance are
all this sum (Dhariwal & Nichol 2021; GLIDE; Liu et al. 2022). Optional MCMC steps at each noise level
(pic.optim.mcmc) turn the guided sampler into a sampler of the product of generator and scorers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from pic.energy import ComposedEnergy, EnergyError, Scorer, Term
from pic.optim.mcmc import Langevin
from pic.progress import progress as progress_bar  # `progress` is guided_denoise's on/off flag


class GuidanceDivergedError(FloatingPointError):
    """The samples became NaN/inf: a guidance weight or MCMC step is too large."""


class DiffusionPrior(Scorer):
    """The diffusion generator as an expert at noise level t: E = -log p_t(x), dE/dx = eps(x, t) / sigma_t.

    eps_fn(x_t, t, **context) is the model's epsilon-prediction; log_prob_fn(x_t, t, **context), when the
    model has a density, gives the energy too (needed by MALA, not by guidance or ULA).
    """

    name = "generator"

    def __init__(self, eps_fn: Callable, scheduler, log_prob_fn: Callable | None = None):
        if getattr(scheduler.config, "prediction_type", "epsilon") != "epsilon":
            raise ValueError(f"guided denoising needs an epsilon-prediction scheduler, got prediction_type="
                             f"{scheduler.config.prediction_type!r}")
        self.eps_fn, self.scheduler, self.log_prob_fn = eps_fn, scheduler, log_prob_fn
        self.has_energy = log_prob_fn is not None

    def sigma(self, t) -> float:
        return float((1 - self.scheduler.alphas_cumprod[int(t)]).sqrt())

    def energy(self, x, t, **context):
        if self.log_prob_fn is None:
            raise EnergyError("this diffusion generator gives scores, not densities (no log_prob_fn)")
        return -self.log_prob_fn(x, t, **context)

    def energy_and_grad(self, x, t, **context):
        e = self.energy(x, t, **context) if self.has_energy else None
        return e, self.eps_fn(x, t, **context) / self.sigma(t)


@dataclass
class DenoiseResult:
    samples: torch.Tensor
    history: list[dict] = field(default_factory=list)  # per step: t, scorer energy means, grad norms, MCMC stats


def guided_denoise(prior: DiffusionPrior, scheduler, x: torch.Tensor, energy: ComposedEnergy | None = None, *,
                   num_steps: int = 50, mcmc: Langevin | None = None, generator: torch.Generator | None = None,
                   strength: float = 1.0, progress: bool = False, **context) -> DenoiseResult:
    """Run the reverse process from `x` [B, ...] and return the clean samples.

    x: noise already scaled by scheduler.init_noise_sigma; or, with strength < 1, clean samples that are first
    re-noised to that fraction of the schedule and denoised from there (SDEdit: proposals near given ones).
    energy: the composed scorers (None: the generator alone); each scorer receives (x_t, t=..., step=...,
    **context). mcmc: Langevin/MALA steps on the product prior + scorers at every noise level but the first.
    """
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    scheduler.set_timesteps(num_steps)
    timesteps = scheduler.timesteps[num_steps - max(1, round(num_steps * strength)):]
    if strength < 1.0:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = scheduler.add_noise(x, noise, timesteps[:1])
    product = ComposedEnergy([Term(prior)] + (energy.terms if energy is not None else []))
    history = []
    for step, t in enumerate(progress_bar(timesteps, "denoising", disable=not progress)):
        record: dict = {"step": step, "t": int(t)}
        if mcmc is not None and step > 0:
            x, stats = mcmc.run(x, product, generator, t=t, step=step, **context)
            record.update(mcmc_step_size=stats.step_size, mcmc_acceptance=stats.acceptance)
            _check_finite(x, step, t, "after the MCMC correction; lower the MCMC step size")
        eps = prior.eps_fn(scheduler.scale_model_input(x, t), t, **context)
        if energy is not None:
            energies, grad = energy.energy_and_grad(x, t=t, step=step, **context)
            eps = eps + prior.sigma(t) * grad
            record.update({f"energy/{k}": v for k, v in energies.means().items()})
            record.update({f"grad_norm/{k}": float(v.mean()) for k, v in energies.grad_norms.items()})
        x = scheduler.step(eps, t, x, generator=generator).prev_sample
        _check_finite(x, step, t, "after the guided step; lower the guidance weights "
                      + (str({n.scorer.name: n.weight for n in energy.terms}) if energy is not None else ""))
        history.append(record)
    return DenoiseResult(x, history)


def _check_finite(x: torch.Tensor, step: int, t, hint: str) -> None:
    bad = ~torch.isfinite(x.flatten(1)).all(dim=1)
    if bad.any():
        raise GuidanceDivergedError(f"{int(bad.sum())} of {x.shape[0]} samples became NaN/inf at step {step} "
                                    f"(t={int(t)}) {hint}")


def diffusion_proposer(prior: DiffusionPrior, scheduler, shape: tuple[int, ...], *, num_steps: int = 50,
                       strength: float = 0.3, energy: ComposedEnergy | None = None,
                       generator: torch.Generator | None = None, dtype=torch.float32, **context):
    """A `propose(kept, n)` for rerank_rounds: n fresh samples on the first round, then n samples near the kept
    ones (each kept sample re-noised to `strength` of the schedule and denoised again, SDEdit-style)."""

    def propose(kept, n):
        if kept is None:
            x = torch.randn((n, *shape), generator=generator, dtype=dtype) * scheduler.init_noise_sigma
            return guided_denoise(prior, scheduler, x, energy, num_steps=num_steps, generator=generator,
                                  **context).samples
        seeds = kept[torch.arange(n) % kept.shape[0]]
        return guided_denoise(prior, scheduler, seeds, energy, num_steps=num_steps, generator=generator,
                              strength=strength, **context).samples

    return propose
