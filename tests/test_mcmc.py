"""MCMC correction steps leave the target invariant (MALA) and report what they did."""
import pytest
import torch

from pic import ComposedEnergy, EnergyError, FunctionScorer
from pic.optim import MALA, Langevin


def gaussian_energy(var=0.5):
    return ComposedEnergy([FunctionScorer(lambda x, **_: (x**2).sum(1) / (2 * var), "gauss")])


def test_mala_leaves_its_target_invariant_even_with_a_large_step():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20_000, 2, generator=g, dtype=torch.float64) * 0.5**0.5  # exact samples of N(0, 0.5 I)
    x, stats = MALA(steps=30, step_size=0.8).run(x, gaussian_energy(), g)
    assert 0.05 < stats.acceptance < 0.95  # a large step: many rejections, which keep it exact
    assert abs(float(x.var(0).mean()) / 0.5 - 1) < 0.05 and float(x.mean(0).abs().max()) < 0.03


def test_ula_with_a_large_step_is_biased_which_mala_corrects():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(20_000, 1, generator=g, dtype=torch.float64) * 0.5**0.5
    ula, _ = Langevin(steps=30, step_size=0.4).run(x0, gaussian_energy(), g)
    # ULA's stationary variance for this Gaussian is var / (1 - eta / (2 var)) = 0.5 / 0.6
    assert float(ula.var()) > 0.75


def test_mala_adapts_its_step_towards_the_target_acceptance():
    g = torch.Generator().manual_seed(2)
    mala = MALA(steps=40, step_size=5.0, target_acceptance=0.6)
    x = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    _, first = mala.run(x, gaussian_energy(), g)
    _, second = mala.run(x, gaussian_energy(), g)
    assert second.step_size < 5.0 and abs(second.acceptance - 0.6) < 0.2


def test_a_step_size_schedule_needs_the_noise_level():
    with pytest.raises(EnergyError, match="needs the context's `t`"):
        Langevin(steps=1, step_size=lambda t: 0.1).run(torch.zeros(2, 1), gaussian_energy())
    x, stats = Langevin(steps=1, step_size=lambda t: 0.1 * t).run(torch.zeros(2, 1, dtype=torch.float64),
                                                                  gaussian_energy(), t=2)
    assert stats.step_size == pytest.approx(0.2) and stats.acceptance is None
