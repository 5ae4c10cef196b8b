"""The only place the merging experiments' checkpoint file names appear: one safetensors file per experiment and
model seed under data/merging/, written and verified through pic.assets (sha256 pins).

Stored: only what was trained, in float16 (the merges and evaluations run in float32 on the loaded values, and the
training notebook evaluates the float16-rounded weights too, so both notebooks see the same models):
  multimodal  per seed length S: the seed model and the modality-specific model; the agnostic model from scratch
  text        per task and for joint training: the top layer's trained weights as a task vector (fine-tuned minus
              pre-trained, which float16 keeps to ~1e-3 of its size) and the heads
  domains     the foundation and auxiliary featurizers; per test domain, every target run (soup, ratatouille,
              fusing, two from scratch)
Keys are "<group>/<state-dict key>"; metadata holds the training settings and loss logs (JSON text).
"""
from __future__ import annotations

import json
from typing import Sequence

import torch

from pic.assets import AssetError, DATA_DIR, load_checkpoint, read_pin, save_checkpoint

KINDS = ("multimodal", "text", "domains")
PRODUCED_BY = "50_train_merging_models.ipynb"
STORED_DTYPE = torch.float16


def name(kind: str, seed: int) -> str:
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind {kind!r} is not one of {KINDS}")
    return f"merging/{kind}_seed{seed}.safetensors"


def available_seeds(kind: str) -> list[int]:
    """The model seeds with a pinned checkpoint of this kind."""
    found = sorted(DATA_DIR.glob(f"merging/{kind}_seed*.safetensors.pin.json"))
    return sorted(int(p.name.split("_seed")[1].split(".")[0]) for p in found)


def check_seeds(seeds: Sequence[int]) -> None:
    """Refuses, before any work, model seeds that lack a committed checkpoint of any kind, naming those that exist."""
    for kind in KINDS:
        have = available_seeds(kind)
        missing = [s for s in seeds if s not in have]
        if missing:
            raise AssetError(f"no committed {kind} checkpoint for model seed(s) {missing}; seeds with one: {have} "
                             f"(model_seeds picks among them; `python -m pic.reproduce --train 50` trains others)")


def stored(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights as they are stored and read back: rounded to float16, returned in float32."""
    return {k: v.detach().to(STORED_DTYPE).float() for k, v in state.items()}


def pack(groups: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {f"{g}/{k}": v.detach().to(STORED_DTYPE).contiguous() for g, state in groups.items() for k, v in state.items()}


def unpack(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """{group: state dict in float32} from the stored keys "<group>/<key>"."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        group, _, inner = key.rpartition("/")
        out.setdefault(group, {})[inner] = value.float()
    return out


def save(kind: str, seed: int, groups: dict[str, dict[str, torch.Tensor]], meta: dict) -> int:
    """Writes and pins data/merging/<kind>_seed<seed>.safetensors; returns its size in bytes."""
    path = save_checkpoint(pack(groups), name(kind, seed), PRODUCED_BY, {"settings": json.dumps(meta, sort_keys=True)})
    return path.stat().st_size


def load(kind: str, seed: int) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """({group: state dict}, settings and logs) of a committed checkpoint, verified against its pin."""
    tensors, metadata = load_checkpoint(name(kind, seed))
    return unpack(tensors), json.loads(metadata.get("settings", "{}"))


def sizes() -> dict[str, int]:
    """Bytes of every committed merging checkpoint, by file name."""
    return {p.name: read_pin(f"merging/{p.name}")["bytes"] for p in sorted(DATA_DIR.glob("merging/*.safetensors"))}
