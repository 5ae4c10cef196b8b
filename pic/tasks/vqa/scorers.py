"""The CLIP-style scorers of Table 2's analog: image towers trained against the frozen MiniLM text tower on
easy-VQA *train* images and captions ("a red circle", "a red shape", "a circle", "there is no circle"), never on
question-answer pairs, so answering questions with them stays zero-shot.

Towers: `lit` = frozen ImageNet EfficientNet-Lite0 features + a trained projection (LiT: locked image tower,
here the text tower is the locked one too, only the projection learns); `cnn` = a small CNN trained from scratch
on 32x32 downsamples of the images; `coarse` = the same small CNN on 16x16 thumbnails (a coarse view, as ViT-B/32
is coarser than ViT-L/14). Each is trained with one softmax per caption group (CLIP's image->text cross-entropy against
class captions, pic.models.clip_style.contrastive_loss), so partial statements such as "a red shape" score
sensibly, and with a two-way softmax per claim ("there is a circle" vs "there is no circle"), which real CLIP
lacks (it is blind to negation) and yes/no questions need.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pic.models.clip_style import ClipStyleModel, contrastive_loss
from pic.models.efficientnet import FEATURE_DIM, EfficientNetLite0Features
from pic.runtime import seed_everything
from pic.tasks.vqa.data import COLORS, SHAPES, YES_NO, claim_statement
from pic.tasks.vqa.feature_cache import CachedFeatures
from pic.train import FitLog, batches_per_epoch, epoch_batches, fit, one_cycle

TOWERS = ("lit", "cnn", "coarse")
LIT_SIZE = 128  # EfficientNet-Lite0 input side for the 64x64 images (upsampled): cheaper than 224, same content


# ---------------------------------------------------------------------------------------------- captions

@dataclass(frozen=True)
class Captions:
    """The caption groups; `texts` is their concatenation, in this order, and `slices` locate each group."""

    objects: tuple[str, ...]  # "a red circle": colour x shape
    colors: tuple[str, ...]  # "a red shape"
    shapes: tuple[str, ...]  # "a circle"
    claims: tuple[tuple[str, str], ...]  # per value of COLORS + SHAPES: ("there is a red shape", "there is no ...")
    distractors: tuple[str, ...] = ()  # captions true of no image ("a dog", "a red lamp", "tree"): shared negatives

    @property
    def texts(self) -> list[str]:
        return [*self.objects, *self.colors, *self.shapes, *(t for pair in self.claims for t in pair),
                *self.distractors]

    @property
    def slices(self) -> dict[str, slice]:
        a, b, c, d = len(self.objects), len(self.colors), len(self.shapes), 2 * len(self.claims)
        return {"objects": slice(0, a), "colors": slice(a, a + b), "shapes": slice(a + b, a + b + c),
                "claims": slice(a + b + c, a + b + c + d),
                "distractors": slice(a + b + c + d, a + b + c + d + len(self.distractors))}


# Words that could truly describe one of the shapes or colours are never used as negatives.
_NOT_NEGATIVE = set(COLORS + SHAPES + YES_NO) | {"grey", "square", "round", "ball", "box", "oval", "disk", "disc", "cube",
                                         "sphere", "ring", "shape", "shapes", "color", "colour", "colors", "dot",
                                         "block", "cyan", "turquoise", "aqua", "navy", "crimson", "scarlet"}


def captions(words: Sequence[str] = (), n_distractors: int = 0, seed: int = 0, pool_size: int = 5000) -> Captions:
    """The caption groups, plus `n_distractors` negative captions made of `words` drawn from the first
    `pool_size` usable ones (pass a vocabulary in frequency order: MiniLM's WordPiece vocabulary is). CLIP
    contrasts each image with the 32k captions of its batch; our 57 captions are too few to teach the scorers
    that text unrelated to the image (which the language model proposes: "the", "car", "star") describes it
    worse than a true caption."""
    things = [f"{c} shape" for c in COLORS] + list(SHAPES)
    usable = (w for w in dict.fromkeys(words) if w.isascii() and w.isalpha() and 2 <= len(w) <= 12
              and w not in _NOT_NEGATIVE)
    pool = [w for _, w in zip(range(pool_size), usable)]
    if n_distractors and len(pool) < n_distractors:
        raise ValueError(f"{len(pool)} usable words for {n_distractors} distractor captions")
    rng = np.random.default_rng(seed)
    picked = rng.choice(pool, size=n_distractors, replace=False) if n_distractors else []
    colours = rng.choice(COLORS, size=n_distractors)
    forms = (lambda w, c: w, lambda w, c: f"a {w}", lambda w, c: f"a {c} {w}")  # "tree", "a tree", "a red tree"
    distractors = tuple(forms[i % 3](str(w), str(c)) for i, (w, c) in enumerate(zip(picked, colours)))
    return Captions(tuple(f"a {c} {s}" for c in COLORS for s in SHAPES), tuple(f"a {c} shape" for c in COLORS),
                    tuple(f"a {s}" for s in SHAPES),
                    tuple((claim_statement(t, True), claim_statement(t, False)) for t in things), distractors)


def caption_losses(logits: torch.Tensor, color: torch.Tensor, shape: torch.Tensor,
                   caps: Captions) -> dict[str, torch.Tensor]:
    """Per-group cross-entropies of [B, T] image-caption logits; rows whose label is unknown (-1) are skipped."""
    s = caps.slices
    out = {}
    known = (color >= 0) & (shape >= 0)
    if known.any():
        out["objects"] = contrastive_loss(_with_negatives(logits[known], s, "objects"),
                                          color[known] * len(SHAPES) + shape[known])
    for name, label in (("colors", color), ("shapes", shape)):
        if (label >= 0).any():
            out[name] = contrastive_loss(_with_negatives(logits[label >= 0], s, name), label[label >= 0])
    pairs = logits[:, s["claims"]].reshape(len(logits), -1, 2)  # [B, values, (holds, does not)]
    truth = claim_truth(color, shape)  # [B, values]: 0 holds, 1 does not, -1 unknown
    if (truth >= 0).any():
        out["claims"] = contrastive_loss(pairs[truth >= 0], truth[truth >= 0])
    return out


def _with_negatives(logits: torch.Tensor, slices: dict[str, slice], group: str) -> torch.Tensor:
    """A group's logits followed by the distractors' (never a target): [B, group + distractors]."""
    return torch.cat([logits[:, slices[group]], logits[:, slices["distractors"]]], dim=1)


def claim_truth(color: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """[B, 11] per image and value of COLORS + SHAPES: 0 if 'there is a <value>' holds, 1 if not, -1 unknown."""
    cols = torch.where(color[:, None] >= 0, (color[:, None] != torch.arange(len(COLORS))).long(), -1)
    shps = torch.where(shape[:, None] >= 0, (shape[:, None] != torch.arange(len(SHAPES))).long(), -1)
    return torch.cat([cols, shps], dim=1)


@torch.no_grad()
def retrieval_accuracy(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, color, shape,
                       caps: Captions) -> dict[str, float]:
    """Image -> caption top-1 accuracy per group (24 objects, 8 colours, 3 shapes, each against the distractors
    too; claims: the share of true/false claims judged right)."""
    sims = image_embeddings @ text_embeddings.T
    s, out = caps.slices, {}
    known = (color >= 0) & (shape >= 0)
    out["objects"] = _top1(_with_negatives(sims[known], s, "objects"), color[known] * len(SHAPES) + shape[known])
    out["colors"] = _top1(_with_negatives(sims[color >= 0], s, "colors"), color[color >= 0])
    out["shapes"] = _top1(_with_negatives(sims[shape >= 0], s, "shapes"), shape[shape >= 0])
    truth = claim_truth(color, shape)
    out["claims"] = _top1(sims[:, s["claims"]].reshape(len(sims), -1, 2)[truth >= 0], truth[truth >= 0])
    return out


def _top1(scores, labels) -> float:
    return float((scores.argmax(-1) == labels).float().mean()) if len(labels) else float("nan")


# ---------------------------------------------------------------------------------------------- towers

class SmallCNN(torch.nn.Module):
    """Three conv blocks (3x3 conv, batch norm, ReLU, 2x2 max-pool) and global average pooling -> [B, 4 width];
    images in [0, 1] are first resized to `input_size` (16 gives the coarse view)."""

    def __init__(self, width: int = 16, input_size: int = 32):
        super().__init__()
        layers, c = [], 3
        for out in (width, 2 * width, 4 * width):
            layers += [torch.nn.Conv2d(c, out, 3, padding=1), torch.nn.BatchNorm2d(out), torch.nn.ReLU(),
                       torch.nn.MaxPool2d(2)]
            c = out
        self.net = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.input_size, self.feature_dim = input_size, 4 * width

    def forward(self, x: torch.Tensor, **context) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=True)
        return self.net(x * 2 - 1)


def distractor_words(text_encoder) -> list[str]:
    """MiniLM's WordPiece vocabulary in id order, which is frequency order for whole words."""
    vocab = text_encoder.tokenizer.get_vocab()
    return sorted(vocab, key=vocab.get)


def lit_tower() -> CachedFeatures:
    """Frozen EfficientNet-Lite0 (ImageNet weights) features, cached on disk by input hash."""
    return CachedFeatures(EfficientNetLite0Features(size=LIT_SIZE), tag=f"efficientnet-lite0-{LIT_SIZE}")


def build_model(tower: str, width: int = 16, init_scale: float = 30.0) -> ClipStyleModel:
    """A CLIP-style model with the named image tower. The logit scale starts high: telling "there is a circle"
    from "there is no circle" (MiniLM cosine 0.8) needs a sharp softmax."""
    if tower == "lit":
        return ClipStyleModel(lit_tower(), FEATURE_DIM, init_scale=init_scale)
    if tower in ("cnn", "coarse"):
        cnn = SmallCNN(width, input_size=32 if tower == "cnn" else 16)
        return ClipStyleModel(cnn, cnn.feature_dim, init_scale=init_scale)
    raise ValueError(f"unknown tower {tower!r}; choose one of {TOWERS}")


def trainable_state(model: ClipStyleModel, tower: str) -> dict[str, torch.Tensor]:
    """What training changed: the projection and scale, plus the tower when it was trained from scratch."""
    state = model.state_dict()
    return {k: v for k, v in state.items() if tower != "lit" or not k.startswith("image_tower.")}


# ---------------------------------------------------------------------------------------------- training

def minibatch_training(params, n: int, batch_loss: Callable[[torch.Tensor], torch.Tensor], *, epochs: int,
                       seed: int, lr: float, batch_size: int) -> FitLog:
    """AdamW (weight decay 1e-4) with a one-cycle learning rate over `epochs` shuffled passes of `n` examples
    (pic.train.fit); batch_loss(indices) -> loss. Seeds Python, NumPy and torch first; the batch order comes from a
    generator seeded the same."""
    gen = seed_everything(seed)
    return fit(params, batch_loss, epoch_batches(n, batch_size, epochs, gen), lr=lr, weight_decay=1e-4,
               schedule=one_cycle(epochs * batches_per_epoch(n, batch_size)))


def train_caption_model(model: ClipStyleModel, inputs: torch.Tensor, color: torch.Tensor, shape: torch.Tensor,
                        text_embeddings: torch.Tensor, caps: Captions, *, epochs: int, seed: int,
                        lr: float = 1e-2, batch_size: int = 128, on_features: bool = False) -> FitLog:
    """Contrastive training against fixed caption embeddings [T, D]. `inputs` are images [N, 3, H, W] in [0, 1],
    or (on_features=True) precomputed tower features [N, F], in which case only the projection learns."""
    params = [p for n, p in model.named_parameters()
              if p.requires_grad and (not on_features or not n.startswith("image_tower."))]

    def batch_loss(idx):
        emb = embed(model, inputs[idx], on_features)
        parts = caption_losses(model.scale * emb @ text_embeddings.T, color[idx], shape[idx], caps)
        return sum(parts.values()) / len(parts)

    model.train()
    log = minibatch_training(params, len(inputs), batch_loss, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size)
    model.eval()
    return log


def embed(model: ClipStyleModel, inputs: torch.Tensor, on_features: bool = False) -> torch.Tensor:
    """Unit image embeddings, from images or from precomputed tower features."""
    if on_features:
        return F.normalize(model.projection(inputs), dim=-1)
    return model.embed_images(inputs)


@torch.no_grad()
def embed_all(model: ClipStyleModel, inputs: torch.Tensor, on_features: bool = False, batch_size: int = 512):
    model.eval()
    return torch.cat([embed(model, inputs[i:i + batch_size], on_features) for i in range(0, len(inputs), batch_size)])
