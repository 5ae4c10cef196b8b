"""MCMC correction steps on a composed energy U(x) = sum_n w_n E_n(x) (Du et al. 2023, "Reduce, Reuse, Recycle").

Summing scores during reverse diffusion does not sample the product of the experts; a few Langevin steps on the
product's energy at each noise level do. ULA needs only gradients; MALA also needs energies (a Metropolis test
on each move) and reports its acceptance rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from pic.energy import ComposedEnergy, EnergyError

StepSize = float | Callable[[object], float]  # a constant, or eta(t) read from the context's `t`


@dataclass
class MCMCStats:
    steps: int
    step_size: float
    acceptance: float | None  # share of accepted MALA moves; None for ULA


@dataclass
class Langevin:
    """Unadjusted Langevin: x <- x - eta grad U(x) + sqrt(2 eta) xi. Cheap; biased by O(eta)."""

    steps: int = 2
    step_size: StepSize = 1e-2

    def _eta(self, context) -> float:
        if not callable(self.step_size):
            return float(self.step_size)
        if "t" not in context:
            raise EnergyError("an MCMC step-size schedule needs the context's `t`")
        return float(self.step_size(context["t"]))

    def run(self, x: torch.Tensor, energy: ComposedEnergy, generator: torch.Generator | None = None,
            **context) -> tuple[torch.Tensor, MCMCStats]:
        eta = self._eta(context)
        for _ in range(self.steps):
            _, grad = energy.energy_and_grad(x, **context)
            x = x - eta * grad + (2 * eta) ** 0.5 * _noise_like(x, generator)
        return x, MCMCStats(self.steps, eta, None)


@dataclass
class MALA(Langevin):
    """Metropolis-adjusted Langevin: the ULA move, accepted with the Metropolis-Hastings probability, so the
    chain leaves exp(-U) invariant. With `target_acceptance`, eta is adapted within each call (and carried to
    the next one) towards that acceptance rate."""

    target_acceptance: float | None = None

    def __post_init__(self):
        self._scale = 1.0  # adaptation factor carried across calls (noise levels)

    def run(self, x, energy, generator=None, **context):
        if not energy.has_energy:
            names = [t.scorer.name for t in energy.terms if not t.scorer.has_energy]
            raise EnergyError(f"MALA needs energies, and {names} are score-only: use Langevin (ULA) instead")
        eta = self._eta(context) * self._scale
        e, grad = energy.energy_and_grad(x, **context)
        u = e.total
        accepted = 0.0
        for _ in range(self.steps):
            prop = x - eta * grad + (2 * eta) ** 0.5 * _noise_like(x, generator)
            e_p, grad_p = energy.energy_and_grad(prop, **context)
            u_p = e_p.total
            # log q(x | x') - log q(x' | x) for the Gaussian Langevin proposals
            fwd = ((prop - x + eta * grad) ** 2).flatten(1).sum(1)
            bwd = ((x - prop + eta * grad_p) ** 2).flatten(1).sum(1)
            log_alpha = (u - u_p) + (fwd - bwd) / (4 * eta)
            uniform = torch.rand(log_alpha.shape, generator=generator, dtype=log_alpha.dtype).to(x.device)
            accept = uniform.log() < log_alpha
            mask = accept.view(-1, *([1] * (x.dim() - 1)))
            x, grad = torch.where(mask, prop, x), torch.where(mask, grad_p, grad)
            u = torch.where(accept, u_p, u)
            rate = float(accept.float().mean())
            accepted += rate
            if self.target_acceptance is not None:  # Robbins-Monro on log eta
                self._scale *= float(torch.exp(torch.tensor(rate - self.target_acceptance)))
                eta = self._eta(context) * self._scale
        return x, MCMCStats(self.steps, eta, accepted / max(self.steps, 1))


def _noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
