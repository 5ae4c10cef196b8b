"""Consensus optimizers: gradient guidance (+ MCMC correction) for continuous outputs, rounds and selection for
discrete ones. Each works on a pic.energy.ComposedEnergy."""
from pic.optim.guided_denoising import DiffusionPrior, GuidanceDivergedError, diffusion_proposer, guided_denoise
from pic.optim.mcmc import MALA, Langevin
from pic.optim.rerank_rounds import RoundsResult, rerank_rounds
from pic.optim.selection import Selection, select_argmin

__all__ = ["DiffusionPrior", "GuidanceDivergedError", "diffusion_proposer", "guided_denoise", "Langevin", "MALA", "RoundsResult",
           "rerank_rounds", "Selection", "select_argmin"]
