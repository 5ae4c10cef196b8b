"""Consensus optimizers, one file per mechanism, each working on a pic.energy.ComposedEnergy:
guided_denoising (+ mcmc) for continuous outputs; rerank_rounds, selection and token_consensus for discrete ones;
lockstep lets many per-item loops share one batched generator call."""
from pic.optim.guided_denoising import DiffusionPrior, GuidanceDivergedError, diffusion_proposer, guided_denoise
from pic.optim.lockstep import lockstep
from pic.optim.mcmc import MALA, Langevin
from pic.optim.rerank_rounds import RoundsResult, rerank_rounds
from pic.optim.selection import Selection, select_argmin
from pic.optim.token_consensus import ConsensusConfig, Proposer, consensus_decode

__all__ = ["ConsensusConfig", "DiffusionPrior", "GuidanceDivergedError", "Langevin", "MALA", "Proposer", "RoundsResult",
           "Selection", "consensus_decode", "diffusion_proposer", "guided_denoise", "lockstep", "rerank_rounds",
           "select_argmin"]
