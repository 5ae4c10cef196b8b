"""The quickstart experiment: every optimizer on the analytic world, several seeds, against the exact consensus.

`load` builds the world (generator, scorers, their exact product); `run` samples every method on every seed from
the same starting noise; `distance_rows` compares each method with the exact product of all scorers (and with the
product of the scorers it used); `claims` states what the notebook checks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from diffusers import DDPMScheduler

from pic.energy import ComposedEnergy
from pic.optim import MALA, DiffusionPrior, Langevin, diffusion_proposer, guided_denoise, rerank_rounds
from pic.report import profile_settings
from pic.stats import mean_sd
from pic.tasks.quickstart.world import GaussianMixture, MixtureDiffusion, QuadraticScorer, distances

PROFILES = {
    "smoke": dict(n_samples=600, n_seeds=1, num_steps=30, mcmc_steps=2, rounds=3),
    "local": dict(n_samples=4000, n_seeds=3, num_steps=100, mcmc_steps=5, rounds=5),
    "paper": dict(n_samples=20000, n_seeds=5, num_steps=250, mcmc_steps=10, rounds=8),
}
MCMC_STEP_SIZE = 0.03
EXACT = "exact samples of the product"


@dataclass
class World:
    """The generator (an exact diffusion model of a Gaussian mixture), the quadratic scorers and their weights."""

    mixture: GaussianMixture
    scorers: list[QuadraticScorer]
    weights: list[float]
    scheduler: DDPMScheduler
    prior: DiffusionPrior
    settings: dict

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scorers]

    @property
    def energy(self) -> ComposedEnergy:
        return ComposedEnergy(list(zip(self.scorers, self.weights)))

    def product_of(self, subset: Sequence[str]) -> GaussianMixture:
        """The exact consensus of the generator with the named scorers (mixture x Gaussians, in closed form)."""
        return self.mixture.times([(s.centre, s.precision(w)) for s, w in zip(self.scorers, self.weights)
                                   if s.name in subset])

    @property
    def target(self) -> GaussianMixture:
        return self.product_of(self.names)

    def methods(self) -> list[str]:
        return (["generator alone"] + [f"scorer {n} alone (+MALA)" for n in self.names]
                + ["guidance (plain sum)", "guidance + ULA", "guidance + MALA", "rerank rounds"])


def load(profile: str, centres, scales, weights, **given) -> World:
    """The world of a profile; `given` settings (n_samples, n_seeds) override the profile's when not None."""
    settings = profile_settings(profile, PROFILES, **given)
    if not len(centres) == len(scales) == len(weights) or not centres:
        raise ValueError(f"centres, scales and weights need one entry per scorer, got {len(centres)}, "
                         f"{len(scales)}, {len(weights)}")
    mixture = GaussianMixture.ring(n_modes=8, radius=2.0, std=0.3)
    scorers = [QuadraticScorer(c, s, name=chr(ord("A") + i)) for i, (c, s) in enumerate(zip(centres, scales))]
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False)
    exact = MixtureDiffusion(mixture, scheduler.alphas_cumprod)
    prior = DiffusionPrior(exact.eps, scheduler, log_prob_fn=exact.log_prob)
    return World(mixture, scorers, [float(w) for w in weights], scheduler, prior, settings)


@dataclass
class Run:
    """One method on one seed: its samples, the scorers it used and its per-step or per-round history."""

    samples: torch.Tensor
    scorers: list[str]
    history: list[dict]


def run_method(world: World, method: str, seed: int) -> Run:
    """Sample `method` from the noise of `seed` (every method of a seed starts from the same noise)."""
    s = world.settings
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(s["n_samples"], 2, generator=g, dtype=torch.float64) * world.scheduler.init_noise_sigma
    common = dict(num_steps=s["num_steps"], generator=g)
    mala = MALA(steps=s["mcmc_steps"], step_size=MCMC_STEP_SIZE)
    energy = world.energy
    if method == "generator alone":
        out = guided_denoise(world.prior, world.scheduler, x, None, **common)
        return Run(out.samples, [], out.history)
    if method.startswith("scorer "):
        subset = [method.split()[1]]
        out = guided_denoise(world.prior, world.scheduler, x, energy.subset(subset), mcmc=mala, **common)
        return Run(out.samples, subset, out.history)
    if method == "guidance (plain sum)":
        out = guided_denoise(world.prior, world.scheduler, x, energy, **common)
    elif method == "guidance + ULA":
        out = guided_denoise(world.prior, world.scheduler, x, energy, mcmc=Langevin(s["mcmc_steps"], MCMC_STEP_SIZE),
                             **common)
    elif method == "guidance + MALA":
        out = guided_denoise(world.prior, world.scheduler, x, energy, mcmc=mala, **common)
    elif method == "rerank rounds":
        propose = diffusion_proposer(world.prior, world.scheduler, (2,), num_steps=s["num_steps"] // 2, strength=0.3,
                                     generator=g, dtype=torch.float64)
        out = rerank_rounds(propose, energy, n=s["n_samples"], keep=s["n_samples"] // 4, rounds=s["rounds"])
        return Run(out.candidates, world.names, out.history)
    else:
        raise ValueError(f"unknown method {method!r}; have {world.methods()}")
    return Run(out.samples, world.names, out.history)


def run(world: World, seed: int) -> tuple[dict[str, list[Run]], dict[str, float]]:
    """Every method on every seed (seed i starts from the noise of seed + 1000 i), and exact samples of the
    product as the floor set by finite samples; with the seconds each method took (all seeds)."""
    n, runs, seconds = world.settings["n_seeds"], {}, {}
    for method in world.methods():
        start = time.perf_counter()
        runs[method] = [run_method(world, method, seed + 1000 * i) for i in range(n)]
        seconds[method] = time.perf_counter() - start
    runs[EXACT] = [Run(world.target.sample(world.settings["n_samples"], torch.Generator().manual_seed(seed + 100 + i)),
                       world.names, []) for i in range(n)]
    return runs, seconds


def distance_rows(world: World, runs: dict[str, list[Run]], seed: int) -> list[dict]:
    """Per method, the mean over seeds of each distance to the exact product of all scorers (and the sd over seeds
    of the sliced W1), plus the sliced W1 to the exact product of the scorers the method used."""
    target = world.target
    reference = target.sample(8000, torch.Generator().manual_seed(seed + 7))
    rows = []
    for method, method_runs in runs.items():
        used = method_runs[0].scorers
        per_seed = [distances(r.samples, target, reference) for r in method_runs]
        if method == EXACT:
            own = [d["sliced_w1"] for d in per_seed]
        else:
            own_target = world.product_of(used)
            own_reference = own_target.sample(8000, torch.Generator().manual_seed(seed + 8))
            own = [distances(r.samples, own_target, own_reference)["sliced_w1"] for r in method_runs]
        w1 = mean_sd(d["sliced_w1"] for d in per_seed)
        rows.append({"method": method, "scorers": "+".join(used) or "-", "sliced_w1": w1.mean, "sliced_w1_sd": w1.sd,
                     # squared MMD is tiny near the target: shown in thousandths
                     "mmd2_x1000": 1000 * float(np.mean([d["mmd2"] for d in per_seed])),
                     "mean_error": float(np.mean([d["mean_error"] for d in per_seed])),
                     "mode_tv": float(np.mean([d["mode_tv"] for d in per_seed])),
                     "sliced_w1_to_own_target": float(np.mean(own))})
    return rows


def claims(world: World, rows: list[dict]) -> dict[str, bool]:
    by = {r["method"]: r["sliced_w1"] for r in rows}
    mala = by["guidance + MALA"]
    return {
        "guidance + MALA is closer to the product than plain guidance": mala < by["guidance (plain sum)"],
        "the composed scorers are closer than any single scorer":
            mala < min(by[f"scorer {n} alone (+MALA)"] for n in world.names),
        "closed-loop consensus is closer than the generator alone": mala < by["generator alone"],
    }
