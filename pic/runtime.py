"""Seeding, determinism and device choice."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch.Generator seeded the same, for explicit sampling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def choose_device(preference: str = "auto") -> torch.device:
    """'auto' takes CUDA when present, else the CPU; 'cpu' / 'cuda' force one (PIC_DEVICE overrides 'auto')."""
    preference = os.environ.get("PIC_DEVICE", preference) if preference == "auto" else preference
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} asked for, but torch sees no CUDA device; use 'cpu' or 'auto'")
    return torch.device(preference)
