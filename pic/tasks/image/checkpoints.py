"""The only place Table 1's checkpoint file names appear: the four trained networks as safetensors under
data/image_generation/, written and verified through pic.assets (sha256 pins, never pickle). The generator's
metadata also holds the guidance weights chosen on the validation split; every checkpoint's metadata holds its
training steps and held-out accuracies, which the notebooks print in load mode.
"""
from __future__ import annotations

import json

import torch

from pic.assets import AssetError, load_checkpoint, read_pin, save_checkpoint
from pic.models.clip_style import ClipStyleModel
from pic.tasks.image.feature_net import FeatureNet
from pic.tasks.image.generation import ImageModels
from pic.tasks.image.noise_aware import NoiseAwareClassifier, NoiseAwareEncoder
from pic.tasks.image.unet import ClassConditionalUNet

PRODUCED_BY = "10_train_image_models.ipynb"
NAMES = {"generator": "image_generation/generator.safetensors",
         "cls": "image_generation/noisy_classifier.safetensors",
         "clip": "image_generation/clip_image_tower.safetensors",
         "eval_net": "image_generation/eval_net.safetensors"}


def save(models: ImageModels, metadata: dict[str, dict[str, str]]) -> dict[str, int]:
    """Write the four checkpoints (safetensors + sha256 pins) under data/image_generation/; returns their bytes."""
    gen_tensors, gen_meta = models.generator.state()
    tower_meta = {"encoder_config": json.dumps(models.clip.image_tower.config),
                  "text_dim": str(models.clip.projection.out_features)}
    parts = {"generator": (gen_tensors, gen_meta), "cls": (models.cls.state_dict(), models.cls.metadata()),
             "clip": (models.clip.state_dict(), tower_meta),
             "eval_net": (models.eval_net.state_dict(), models.eval_net.metadata())}
    sizes = {}
    for name, (tensors, meta) in parts.items():
        path = save_checkpoint(tensors, NAMES[name], produced_by=PRODUCED_BY,
                               metadata={**meta, **metadata.get(name, {})})
        sizes[name] = path.stat().st_size
    return sizes


def load(text_encoder, device: str | torch.device = "cpu") -> ImageModels:
    """The committed, sha256-verified checkpoints (never pickle); a missing one names the training notebook."""
    def load(name):
        try:
            return load_checkpoint(NAMES[name], device=device)
        except AssetError as err:
            raise AssetError(f"{err}\nThe image models are trained by notebooks/{PRODUCED_BY} "
                             f"(`python -m pic.reproduce --train 10`).") from err

    generator = ClassConditionalUNet.from_state(*load("generator"))
    cls = NoiseAwareClassifier.from_state(*load("cls"))
    tensors, meta = load("clip")
    tower = NoiseAwareEncoder(**json.loads(meta["encoder_config"]))
    clip = ClipStyleModel(tower, tower.feature_dim, text_dim=int(meta["text_dim"]))
    clip.load_state_dict(tensors)
    eval_net = FeatureNet.from_state(*load("eval_net"))
    for m in (generator, cls, clip, eval_net):
        m.to(device).eval().requires_grad_(False)
    return ImageModels(generator, cls, clip, text_encoder, eval_net)


def metadata(name: str) -> dict[str, str]:
    """The metadata stored with a committed checkpoint (sizes, held-out accuracies, training steps)."""
    return load_checkpoint(NAMES[name])[1]


def pinned_bytes(name: str) -> int:
    """The size of a committed checkpoint, as its pin records it."""
    return read_pin(NAMES[name])["bytes"]


def stored_guidance() -> dict[str, float]:
    """The guidance weights chosen on validation, stored with the generator."""
    return json.loads(metadata("generator")["guidance"])


def training_metadata(steps: dict[str, int], gen_loss: float, held_out: dict, guidance: dict[str, float]) -> dict:
    """What notebook 10 stores with each checkpoint: training steps, held-out accuracies, the chosen guidance."""
    return {"generator": {"final_loss": f"{gen_loss:.5f}", "steps": str(steps["generator"]),
                          "guidance": json.dumps(guidance)},
            "cls": {"test_accuracy_by_t": json.dumps(held_out["cls"]), "steps": str(steps["cls"])},
            "clip": {"zero_shot_test_accuracy_by_t": json.dumps(held_out["clip"]), "steps": str(steps["clip"])},
            "eval_net": {"test_accuracy": f"{held_out['eval_net']:.5f}", "steps": str(steps["eval_net"])}}


def save_trained(setup, metadata: dict[str, dict[str, str]]) -> dict[str, int]:
    """Notebook 10's checkpoints, {name: bytes}: written when it retrained at a profile that saves (`local`); in
    load mode the committed ones, untouched; nothing at `smoke` (the committed files stay those of `local`)."""
    if not setup.retrain:
        return {name: pinned_bytes(name) for name in NAMES}
    return save(setup.models, metadata) if setup.settings["save"] else {}
