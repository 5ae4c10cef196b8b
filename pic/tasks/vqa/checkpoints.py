"""The only place Table 2's checkpoint file names appear: per model seed, one file per scorer tower and one for the
supervised reference under data/visual_qa/, written and verified through pic.assets (sha256 pins).

A model seed is the seed a checkpoint was trained with (20_train_vqa_scorers); it is not the seed of an experiment
that loads it (21_visual_qa's `seed`), which may be anything.
"""
from __future__ import annotations

from typing import Sequence

from pic.assets import DATA_DIR, AssetError, load_checkpoint, save_checkpoint
from pic.tasks.vqa.data import IMAGE_SIZE
from pic.tasks.vqa.frame_scorer import FrameTextScorer, from_clip_style
from pic.tasks.vqa.reference import QAClassifier
from pic.tasks.vqa.scorers import TOWERS, build_model, trainable_state

PRODUCED_BY = "20_train_vqa_scorers.ipynb"
KINDS = (*(f"scorer_{t}" for t in TOWERS), "reference")  # one file per kind and model seed


def scorer_name(tower: str, seed: int) -> str:
    return f"visual_qa/scorer_{tower}_seed{seed}.safetensors"


def reference_name(seed: int) -> str:
    return f"visual_qa/reference_seed{seed}.safetensors"


def committed_seeds() -> list[int]:
    """The model seeds with a pinned checkpoint of every kind (the three scorers and the reference)."""
    pins = [p.name.removesuffix(".safetensors.pin.json") for p in DATA_DIR.glob("visual_qa/*.safetensors.pin.json")]
    by_kind: dict[str, set[int]] = {kind: set() for kind in KINDS}
    for kind, _, seed in (name.rpartition("_seed") for name in pins):
        if kind in by_kind and seed.isdigit():
            by_kind[kind].add(int(seed))
    return sorted(set.intersection(*by_kind.values()))


def check_seeds(seeds: Sequence[int]) -> None:
    """Refuses, before any work, model seeds that lack a committed checkpoint of any kind, naming those that exist."""
    have = committed_seeds()
    missing = [s for s in seeds if s not in have]
    if missing:
        raise AssetError(f"no committed Table 2 checkpoints (scorers {', '.join(TOWERS)} and reference) for model "
                         f"seed(s) {missing}; seeds with one: {have} (model_seeds picks among them; "
                         f"`python -m pic.reproduce --train 20` trains others)")


def save_scorer(model, tower: str, seed: int, metadata: dict[str, str]) -> None:
    save_checkpoint(trainable_state(model, tower), scorer_name(tower, seed), produced_by=PRODUCED_BY,
                    metadata={"tower": tower, "seed": str(seed), **metadata})


def load_scorer_model(tower: str, seed: int):
    """A trained CLIP-style model from its committed, sha256-checked checkpoint (eval mode, frozen)."""
    tensors, meta = load_checkpoint(scorer_name(tower, seed))
    model = build_model(tower, width=int(meta.get("width", 16)))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or any(not k.startswith("image_tower.") or tower != "lit" for k in missing):
        raise ValueError(f"checkpoint {scorer_name(tower, seed)} does not fit tower {tower!r}: "
                         f"missing {missing}, unexpected {unexpected}")
    return model.eval().requires_grad_(False)


def scorer_metadata(tower: str, seed: int) -> dict[str, str]:
    """What a committed scorer's checkpoint records beside its weights (settings, held-out numbers, loss log)."""
    return load_checkpoint(scorer_name(tower, seed))[1]


def load_scorer(tower: str, seed: int, text_encoder) -> FrameTextScorer:
    """A committed scorer as a frame-text scorer named after its tower."""
    return from_clip_style(load_scorer_model(tower, seed), text_encoder, name=tower, image_size=IMAGE_SIZE)


def save_reference(model: QAClassifier, seed: int, vocabulary: Sequence[str], metadata: dict[str, str]) -> None:
    save_checkpoint(model.state_dict(), reference_name(seed), produced_by=PRODUCED_BY,
                    metadata={"vocabulary": ",".join(vocabulary), "seed": str(seed), **metadata})


def load_reference(seed: int) -> tuple[QAClassifier, list[str]]:
    """The supervised reference of a model seed and its answer vocabulary (eval mode, frozen)."""
    tensors, meta = load_checkpoint(reference_name(seed))
    vocabulary = meta["vocabulary"].split(",")
    model = QAClassifier(len(vocabulary))
    model.load_state_dict(tensors)
    return model.eval().requires_grad_(False), vocabulary


def sizes() -> dict[str, int]:
    """Bytes of every committed Table 2 checkpoint, by file name."""
    return {p.name: p.stat().st_size for p in sorted((DATA_DIR / "visual_qa").glob("*.safetensors"))}
