"""The robot task's checkpoints: the only place their file names appear. One relation CLIP per camera,
data/robot/relation_clip_<camera>.safetensors (its trained weights only, the frozen MiniLM aside; width,
feature_dim, the held-out balanced accuracy and the epoch losses in the metadata), written by
notebooks/40_train_relation_scorer.ipynb and read by 40 and 41 through pic.assets (safetensors + sha256 pin).
"""
from __future__ import annotations

import json

from pic.assets import load_checkpoint, read_pin, save_checkpoint
from pic.models.text_encoder import FrozenTextEncoder
from pic.tasks.robot.relation_clip import RelationClip

PRODUCED_BY = "40_train_relation_scorer.ipynb"


def name(view: str) -> str:
    return f"robot/relation_clip_{view}.safetensors"


def committed(view: str) -> bool:
    return read_pin(name(view)) is not None


def save(model: RelationClip, view: str, width: int, feature_dim: int, accuracy: float,
         losses: list[float] | None = None) -> str:
    """Writes and pins camera `view`'s relation CLIP (with its per-epoch training losses); returns its name."""
    metadata = {"view": view, "width": str(width), "feature_dim": str(feature_dim),
                "held_out_balanced_accuracy": f"{accuracy:.4f}"}
    if losses is not None:
        metadata["epoch_losses"] = json.dumps(losses)
    save_checkpoint(model.trainable_state(), name(view), produced_by=PRODUCED_BY, metadata=metadata)
    return name(view)


def losses(view: str) -> list[float]:
    """The per-epoch training losses stored with camera `view`'s checkpoint ([] for checkpoints written without)."""
    return json.loads(load_checkpoint(name(view))[1].get("epoch_losses", "[]"))


def load(view: str, text_encoder: FrozenTextEncoder) -> RelationClip:
    """Camera `view`'s committed relation CLIP (verified against its pin), frozen and in eval mode."""
    tensors, meta = load_checkpoint(name(view))
    model = RelationClip(text_encoder, width=int(meta["width"]), feature_dim=int(meta["feature_dim"]))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ValueError(f"{name(view)} does not fit RelationClip: missing {missing}, unexpected {unexpected}; "
                         f"`git checkout -- data/{name(view)}` restores the committed one, "
                         f"`python -m pic.reproduce --train 40` trains new ones")
    return model.eval().requires_grad_(False)
