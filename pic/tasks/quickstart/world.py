"""A world where consensus has a known answer: a Gaussian-mixture generator and Gaussian (quadratic) experts.

The generator's density is known in closed form at every noise level of the forward process
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, so its exact epsilon-prediction drives a diffusers scheduler.
The product of the mixture with Gaussian experts is again a Gaussian mixture: that is the target every
consensus optimizer is measured against.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from pic.energy import Scorer


@dataclass
class GaussianMixture:
    """sum_k weights_k N(means_k, var_k I) in D dimensions. weights [K], means [K, D], var [K]."""

    weights: torch.Tensor
    means: torch.Tensor
    var: torch.Tensor

    @classmethod
    def ring(cls, n_modes: int = 8, radius: float = 2.0, std: float = 0.3, dtype=torch.float64) -> GaussianMixture:
        angle = torch.arange(n_modes, dtype=dtype) * (2 * math.pi / n_modes)
        means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
        return cls(torch.full((n_modes,), 1.0 / n_modes, dtype=dtype), means, torch.full((n_modes,), std**2, dtype=dtype))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def diffused(self, abar: float | torch.Tensor) -> GaussianMixture:
        """The law of x_t when x_0 follows this mixture."""
        abar = torch.as_tensor(abar, dtype=self.means.dtype)
        return GaussianMixture(self.weights, abar.sqrt() * self.means, abar * self.var + (1 - abar))

    def _component_log_probs(self, x: torch.Tensor) -> torch.Tensor:  # [B, K], log(w_k N(x; m_k, v_k))
        x = x.to(self.means.dtype)
        sq = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)
        return self.weights.log() - 0.5 * sq / self.var - 0.5 * self.dim * torch.log(2 * math.pi * self.var)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._component_log_probs(x), dim=1).to(x.dtype)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """grad_x log p(x), exactly: responsibilities times each component's pull."""
        resp = torch.softmax(self._component_log_probs(x), dim=1)
        pull = (self.means[None] - x.to(self.means.dtype)[:, None, :]) / self.var[None, :, None]
        return (resp[..., None] * pull).sum(1).to(x.dtype)

    def mean(self) -> torch.Tensor:
        return (self.weights[:, None] * self.means).sum(0)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, dtype=self.means.dtype, generator=generator)
        return self.means[k] + self.var[k].sqrt()[:, None] * noise

    def times(self, experts: Sequence[tuple[torch.Tensor, float]]) -> GaussianMixture:
        """The normalised product with Gaussian experts exp(-precision/2 |x - centre|^2), in closed form."""
        prec = 1.0 / self.var  # [K]
        lin = self.means * prec[:, None]  # precision-weighted means
        const = -0.5 * (self.means**2).sum(1) * prec
        for centre, p in experts:
            c = torch.as_tensor(centre, dtype=self.means.dtype)
            prec, lin, const = prec + p, lin + p * c, const - 0.5 * p * (c**2).sum()
        var = 1.0 / prec
        means = lin * var[:, None]
        # log of each component's mass after the product (Gaussian integral), up to a shared constant
        log_mass = (self.weights.log() + const + 0.5 * (means**2).sum(1) / var
                    + 0.5 * self.dim * torch.log(var / self.var))
        return GaussianMixture(torch.softmax(log_mass, 0), means, var)


class QuadraticScorer(Scorer):
    """A Gaussian expert: E(x) = |x - centre|^2 / (2 scale^2); with weight w its precision is w / scale^2."""

    def __init__(self, centre: Sequence[float], scale: float, name: str):
        self.centre, self.scale, self.name = torch.as_tensor(centre, dtype=torch.float64), float(scale), name

    def energy(self, x, **context):
        return ((x - self.centre.to(x.dtype)) ** 2).sum(1) / (2 * self.scale**2)

    def precision(self, weight: float) -> float:
        return weight / self.scale**2


class MixtureDiffusion:
    """The exact denoiser of a Gaussian mixture under a diffusers scheduler's noise schedule.

    `eps(x_t, t)` is the exact epsilon-prediction -sqrt(1 - abar_t) grad log p_t(x_t); `log_prob(x_t, t)`
    the exact density, which lets MALA correct the sampler.
    """

    def __init__(self, mixture: GaussianMixture, alphas_cumprod: torch.Tensor):
        self.mixture, self.alphas_cumprod = mixture, alphas_cumprod.to(torch.float64)

    def at(self, t) -> GaussianMixture:
        return self.mixture.diffused(self.alphas_cumprod[int(t)])

    def eps(self, x, t, **context):
        return -(1 - self.alphas_cumprod[int(t)]).sqrt().to(x.dtype) * self.at(t).score(x)

    def log_prob(self, x, t, **context):
        return self.at(t).log_prob(x)


def mode_weights(x: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    """Share of samples that each component of `mixture` explains best (its maximum-posterior component)."""
    k = mixture._component_log_probs(x).argmax(1)
    return torch.bincount(k, minlength=len(mixture.weights)).to(mixture.weights.dtype) / len(x)


def distances(samples: torch.Tensor, target: GaussianMixture, reference: torch.Tensor) -> dict[str, float]:
    """How far samples are from a target mixture: mean error, sliced Wasserstein and MMD to exact `reference`
    samples of it, and the total-variation error of the mode weights."""
    from pic.metrics import mmd_rbf, sliced_wasserstein

    samples = samples.to(torch.float64)
    return {"mean_error": float((samples.mean(0) - target.mean()).norm()),
            "sliced_w1": sliced_wasserstein(samples, reference),
            "mmd2": mmd_rbf(samples, reference),
            "mode_tv": 0.5 * float((mode_weights(samples, target) - target.weights).abs().sum())}
