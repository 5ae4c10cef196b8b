"""The GSM8K checkpoints: the only place their file names appear. Saved and loaded through pic.assets
(safetensors + sha256 pin; never pickle).

  lora       the fine-tuned baseline's LoRA adapter (bfloat16 factors, its config in the metadata), per profile;
             notebooks/30_train_gsm8k_models.ipynb
  verifier   the MiniLM question-solution classifier's logistic-regression weights; notebook 30
  consensus  the cross-model consensus: per-scorer normalisation and weights, chosen on held-out train problems;
             notebooks/32_train_gsm8k_consensus.ipynb
"""
from __future__ import annotations

import torch

from pic.assets import load_checkpoint, save_checkpoint

PRODUCER = "30_train_gsm8k_models.ipynb"
CONSENSUS_PRODUCER = "32_train_gsm8k_consensus.ipynb"
VERIFIER = "gsm8k/verifier.safetensors"
CONSENSUS = "gsm8k/consensus.safetensors"


def lora_name(profile: str) -> str | None:
    """The adapter of a profile's generator; None at smoke (a tiny random model gets no adapter)."""
    return {"smoke": None, "local": "gsm8k/lora_smollm2.safetensors"}.get(profile, f"gsm8k/lora_{profile}.safetensors")


def save_lora(profile: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]):
    return save_checkpoint(tensors, lora_name(profile), PRODUCER, metadata)


def load_lora(profile: str) -> tuple[dict[str, torch.Tensor], dict] | None:
    name = lora_name(profile)
    return None if name is None else load_checkpoint(name)


def save_verifier(weights: dict[str, torch.Tensor], metadata: dict[str, str]):
    return save_checkpoint(weights, VERIFIER, PRODUCER, metadata)


def load_verifier() -> dict[str, torch.Tensor]:
    return load_checkpoint(VERIFIER)[0]


def save_consensus(tensors: dict[str, torch.Tensor], metadata: dict[str, str]):
    return save_checkpoint(tensors, CONSENSUS, CONSENSUS_PRODUCER, metadata)


def load_consensus() -> tuple[dict[str, torch.Tensor], dict]:
    return load_checkpoint(CONSENSUS)

