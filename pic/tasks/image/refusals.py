"""Bad input is refused clearly: each check calls something that must fail and returns the first line of its error,
for notebook 11 to print (a check that does not fail is an AssertionError)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable
from unittest import mock

import torch

from pic import assets
from pic.optim import GuidanceDivergedError
from pic.tasks.image import checkpoints
from pic.tasks.image import generation as ig


def refusal(error_type: type[Exception], fn: Callable[[], object]) -> str:
    """'ErrorType: first line of its message' of the error fn() raises; AssertionError if it raises none."""
    try:
        fn()
    except error_type as err:
        return f"{type(err).__name__}: {str(err).splitlines()[0][:400]}"
    raise AssertionError(f"expected {error_type.__name__}")


def refusals(sampler: ig.ConsensusSampler, labels: torch.Tensor, noise: torch.Tensor, text_encoder=None) -> list[str]:
    """An unknown class name; a guidance weight so large that the samples become NaN; and, given the text encoder
    of the committed models, a missing and an altered checkpoint (on a copy of data/: the committed files are
    untouched)."""
    out = [refusal(ValueError, lambda: ig.labels_for(["sneaker", "umbrella"], 1)),
           refusal(GuidanceDivergedError, lambda: sampler.sample({"cls": 1e39}, labels[:10], noise[:10], num_steps=3))]
    if text_encoder is None:
        return out
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(assets, "DATA_DIR", Path(tmp)):
        shutil.copytree(assets.ROOT / "data" / "image_generation", Path(tmp) / "image_generation")
        generator_file = Path(tmp) / checkpoints.NAMES["generator"]
        kept = generator_file.read_bytes()
        generator_file.unlink()  # missing: the error names the training notebook
        out.append(refusal(assets.AssetError, lambda: checkpoints.load(text_encoder)))
        generator_file.write_bytes(kept[:-1] + bytes([kept[-1] ^ 1]))  # one bit flipped: refused
        out.append(refusal(assets.AssetError, lambda: checkpoints.load(text_encoder)))
        # shown as the user would see them, under data/, not under this machine's temporary folder
        out[-2:] = [line.replace(tmp, "data") for line in out[-2:]]
    return out
