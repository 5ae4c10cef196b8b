"""Experiment 1, multimodal merging in miniature (Sung et al. 2023): a small transformer whose vision (V), language
(L) and cross-modal (VL) experts share a seed pre-training, merged into one modality-agnostic transformer.

Data: easy-VQA (PyPI `easy-vqa`, read through its own API): 64x64 images of one shape, template questions, 13
answers. Images are average-pooled to 16x16 and cut into 16 patches of 4x4x3; questions are word tokens.
Model: [CLS] + 16 patch tokens + question tokens, pre-LayerNorm blocks whose every weight (LayerNorms, attention
projections, MLP) exists once per expert: the patch tokens run through the V expert, the word tokens through the
L expert and [CLS] (the fused token the answer is read from) through the VL expert, with attention across all
tokens (a mixture of modality experts, as VLMo and Sung et al.'s modality-specific model). The modality-agnostic
model has one expert, "shared", for every token. Embeddings and the answer head are outside the blocks: they are
copied, never merged (as in vl-merging).

Pipeline per seed (the training notebook): a modality-agnostic seed model pre-trained for S steps (S from a list
that includes 0), copied into V, L and VL experts, trained modality-specific for M steps; a modality-agnostic
model trained from scratch for max(S) + M steps. The experiment notebook merges the three experts' blocks
(interpolation, modality arithmetic, RegMean), then fine-tunes the merged model briefly on the downstream split.
In miniature, pre-training and the downstream task are both answering easy-VQA questions, on disjoint images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pic.assets import AssetError
from pic.merging import gram_matrices, modality_arithmetic, regmean, vl_interpolation
from pic.train import fit, step_batches, warmup_cosine

EXPERTS = ("v", "l", "vl")  # the modality-specific model's experts: patches, words, [CLS]
SHARED = ("shared",)
PATCHES = 16  # 16x16 image in 4x4 patches
MAX_WORDS = 10
_PROVIDER = "`pip install easy-vqa==1.0` (`make install` does it)"


@dataclass
class VQAData:
    """Questions about images: images [N_img, 16, 48] (patches), tokens [Q, MAX_WORDS] (0 = padding), image [Q]
    (row of `images`), answer [Q] (index into `answers`)."""

    images: torch.Tensor
    tokens: torch.Tensor
    image: torch.Tensor
    answer: torch.Tensor
    vocabulary: tuple[str, ...]
    answers: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.answer)

    def subset(self, rows: torch.Tensor) -> VQAData:
        return VQAData(self.images, self.tokens[rows], self.image[rows], self.answer[rows], self.vocabulary,
                       self.answers)

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[self.image[rows]], self.tokens[rows]


def _easy_vqa():
    try:
        import easy_vqa
    except ImportError as err:
        raise AssetError(f"easy-VQA is missing: {_PROVIDER}") from err
    return easy_vqa


def load_vqa(split: str, n_images: int | None = None) -> VQAData:
    """easy-VQA's `train` or `test` split (its first n_images images and their questions when given)."""
    from PIL import Image

    ev = _easy_vqa()
    if split not in ("train", "test"):
        raise ValueError(f"easy-VQA has splits 'train' and 'test', not {split!r}")
    questions, answers, image_ids = ev.get_train_questions() if split == "train" else ev.get_test_questions()
    paths = ev.get_train_image_paths() if split == "train" else ev.get_test_image_paths()
    ids = sorted(paths)[:n_images] if n_images else sorted(paths)
    row_of = {i: r for r, i in enumerate(ids)}
    pixels = np.stack([np.asarray(Image.open(paths[i]).convert("RGB"), dtype=np.float32) / 255.0 for i in ids])
    images = F.avg_pool2d(torch.from_numpy(pixels).permute(0, 3, 1, 2), 4)  # [N, 3, 16, 16]
    patches = images.unfold(2, 4, 4).unfold(3, 4, 4).permute(0, 2, 3, 1, 4, 5).reshape(len(ids), PATCHES, 48)
    vocabulary = ("<pad>",) + tuple(sorted({w for q in ev.get_train_questions()[0] for w in _words(q)}))
    answer_list = tuple(ev.get_answers())
    keep = [k for k, i in enumerate(image_ids) if i in row_of]
    tokens = torch.zeros(len(keep), MAX_WORDS, dtype=torch.long)
    index = {w: j for j, w in enumerate(vocabulary)}
    for r, k in enumerate(keep):
        words = [index[w] for w in _words(questions[k])][:MAX_WORDS]
        tokens[r, :len(words)] = torch.tensor(words)
    return VQAData(patches.contiguous(), tokens, torch.tensor([row_of[image_ids[k]] for k in keep]),
                   torch.tensor([answer_list.index(answers[k]) for k in keep]), vocabulary, answer_list)


def _words(question: str) -> list[str]:
    return question.lower().replace("?", " ?").split()


@dataclass(frozen=True)
class Splits:
    """Question rows of the train split: `pretrain` (seed and modality-specific training), `downstream` (the
    fine-tune after merging) and `validation` (choosing modality arithmetic's λ), on disjoint images."""

    pretrain: torch.Tensor
    downstream: torch.Tensor
    validation: torch.Tensor


def split_by_image(data: VQAData, fractions: tuple[float, float] = (0.5, 0.35)) -> Splits:
    """Pretrain / downstream / validation question rows by image index (first half of the images, next 35%, rest)."""
    n = len(data.images)
    a, b = int(fractions[0] * n), int((fractions[0] + fractions[1]) * n)
    img = data.image
    return Splits(torch.nonzero(img < a).flatten(), torch.nonzero((img >= a) & (img < b)).flatten(),
                  torch.nonzero(img >= b).flatten())


class ExpertBlock(nn.Module):
    """One expert's weights of a pre-LayerNorm transformer block."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.ln1, self.qkv, self.proj = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ln2, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, hidden), nn.Linear(hidden, d)


class MultimodalTransformer(nn.Module):
    """forward(patches [B, 16, 48], tokens [B, W]) -> answer logits [B, n_answers].

    experts: EXPERTS (modality-specific: [CLS] -> vl, patches -> v, words -> l) or SHARED (modality-agnostic).
    State-dict keys of the blocks: blocks.<i>.<expert>.<weight>; everything else is embeddings and the head."""

    def __init__(self, vocab: int, n_answers: int, experts: Sequence[str] = SHARED, d: int = 64, heads: int = 4,
                 layers: int = 2, hidden: int = 128):
        super().__init__()
        if tuple(experts) not in (EXPERTS, SHARED):
            raise ValueError(f"experts must be {EXPERTS} (modality-specific) or {SHARED} (agnostic), got {experts}")
        self.experts, self.heads, self.d = tuple(experts), heads, d
        self.patch = nn.Linear(48, d)
        self.word = nn.Embedding(vocab, d, padding_idx=0)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.position = nn.Parameter(0.02 * torch.randn(1, 1 + PATCHES + MAX_WORDS, d))
        self.kind = nn.Parameter(0.02 * torch.randn(3, d))  # token type: [CLS], patch, word
        self.blocks = nn.ModuleList(nn.ModuleDict({e: ExpertBlock(d, hidden) for e in self.experts})
                                    for _ in range(layers))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, n_answers)

    def segments(self, words: int) -> list[tuple[str, slice]]:
        """Which expert runs which token positions."""
        if self.experts == SHARED:
            return [("shared", slice(0, 1 + PATCHES + words))]
        return [("vl", slice(0, 1)), ("v", slice(1, 1 + PATCHES)), ("l", slice(1 + PATCHES, 1 + PATCHES + words))]

    def forward(self, patches: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, w = tokens.shape
        x = torch.cat([self.cls.expand(b, 1, -1) + self.kind[0], self.patch(patches) + self.kind[1],
                       self.word(tokens) + self.kind[2]], 1) + self.position[:, :1 + PATCHES + w]
        pad = torch.cat([torch.zeros(b, 1 + PATCHES, dtype=torch.bool), tokens == 0], 1)
        mask = torch.zeros(b, 1, 1, x.shape[1]).masked_fill(pad[:, None, None, :], float("-inf"))
        segments = self.segments(w)
        for block in self.blocks:
            qkv = torch.cat([block[e].qkv(block[e].ln1(x[:, s])) for e, s in segments], 1)
            q, k, v = qkv.view(b, -1, 3, self.heads, self.d // self.heads).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, -1, self.d)
            x = x + torch.cat([block[e].proj(att[:, s]) for e, s in segments], 1)
            x = x + torch.cat([block[e].fc2(F.gelu(block[e].fc1(block[e].ln2(x[:, s])))) for e, s in segments], 1)
        return self.head(self.norm(x[:, 0]))


def new_model(data: VQAData, experts: Sequence[str] = SHARED, seed: int = 0, **sizes) -> MultimodalTransformer:
    torch.manual_seed(seed)
    return MultimodalTransformer(len(data.vocabulary), len(data.answers), experts, **sizes)


# ------------------------------------------------------------------------------------------ experts as state dicts

def expert_weights(state: dict[str, torch.Tensor], expert: str) -> dict[str, torch.Tensor]:
    """One expert's block weights under expert-free keys (blocks.<i>.<weight>), the keys the merge sees."""
    tag = f".{expert}."
    out = {k.replace(tag, ".", 1): v for k, v in state.items() if k.startswith("blocks.") and tag in k}
    if not out:
        raise KeyError(f"no block weights of expert {expert!r} in this state dict (experts are {EXPERTS} or {SHARED})")
    return out


def with_experts(state: dict[str, torch.Tensor], blocks: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """A full state dict: `state`'s embeddings and head, and for each expert name its block weights (expert-free
    keys, as expert_weights gives)."""
    out = {k: v for k, v in state.items() if not k.startswith("blocks.")}
    for expert, weights in blocks.items():
        for key, value in weights.items():
            i, rest = key.split(".", 2)[1], key.split(".", 2)[2]
            out[f"blocks.{i}.{expert}.{rest}"] = value
    return out


def specific_from_seed(seed_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The modality-specific model's initial weights: every expert a copy of the seed's shared block."""
    shared = expert_weights(seed_state, "shared")
    return with_experts(seed_state, {e: {k: v.clone() for k, v in shared.items()} for e in EXPERTS})


def agnostic_from(specific_state: dict[str, torch.Tensor], merged: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The modality-agnostic model: merged block weights under "shared", embeddings and head copied."""
    return with_experts(specific_state, {"shared": merged})


# ------------------------------------------------------------------------------------------------- training

def train(model: MultimodalTransformer, data: VQAData, rows: torch.Tensor, steps: int, seed: int, lr: float = 2e-3,
          batch_size: int = 64, desc: str | None = None):
    """AdamW on answer cross-entropy over `rows` for `steps` steps (warm-up + cosine), via pic.train.fit."""
    if steps == 0:
        return None
    gen = torch.Generator().manual_seed(seed)

    def loss(index):
        r = rows[index]
        return F.cross_entropy(model(*data.batch(r)), data.answer[r])

    return fit(model, loss, step_batches(len(rows), batch_size, steps, gen), lr=lr, weight_decay=0.01,
               schedule=warmup_cosine(steps, max(1, steps // 10)), seed=seed, log_every=max(1, steps // 10),
               total=steps, desc=desc)


@torch.no_grad()
def accuracy(model: MultimodalTransformer, data: VQAData, rows: torch.Tensor | None = None,
             batch_size: int = 2048) -> float:
    model.eval()
    rows = torch.arange(len(data)) if rows is None else rows
    right = 0
    for i in range(0, len(rows), batch_size):
        r = rows[i:i + batch_size]
        right += int((model(*data.batch(r)).argmax(1) == data.answer[r]).sum())
    return right / len(rows)


def load_state(data: VQAData, state: dict[str, torch.Tensor], experts: Sequence[str], **sizes) -> MultimodalTransformer:
    model = new_model(data, experts, **sizes)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


# ------------------------------------------------------------------------------------------------- merging

def merge_experts(method: str, specific: dict[str, torch.Tensor], seed_state: dict[str, torch.Tensor],
                  grams: dict[str, dict[str, torch.Tensor]] | None = None, alpha: float = 0.5,
                  lam: float = 1.0, regmean_alpha: float = 0.9) -> dict[str, torch.Tensor]:
    """The modality-agnostic state dict from the V, L and VL experts of `specific`: interpolation (α, with
    vl-merging's 2α/3, 2(1−α)/3, 1/3 weights, every layer having a VL expert), modality arithmetic from the seed's
    shared block (θ_seed + λ Σ_m (θ_m − θ_seed)), or RegMean (grams: expert -> {layer: Gram}, layer names
    expert-free as expert_weights's keys)."""
    v, l, vl = (expert_weights(specific, e) for e in EXPERTS)
    if method == "interpolation":
        merged = vl_interpolation(v, l, alpha, vl)
    elif method == "modality_arithmetic":
        merged = modality_arithmetic(expert_weights(seed_state, "shared"), {"v": v, "l": l, "vl": vl}, lam)
    elif method == "regmean":
        if grams is None:
            raise ValueError("RegMean needs each expert's Gram matrices: expert_grams(model, data, rows)")
        merged = regmean({"v": v, "l": l, "vl": vl}, {e: grams[e] for e in EXPERTS}, regmean_alpha)
    else:
        raise ValueError(f"merge method {method!r} is not one of {MERGES}")
    return agnostic_from(specific, merged)


MERGES = ("interpolation", "modality_arithmetic", "regmean")


def expert_grams(model: MultimodalTransformer, data: VQAData, rows: torch.Tensor,
                 batch_size: int = 512) -> dict[str, dict[str, torch.Tensor]]:
    """expert -> {expert-free linear layer name (blocks.<i>.<linear>): XᵀX of its inputs on its own tokens}."""
    batches = [data.batch(rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)]
    grams = gram_matrices(model.eval(), batches, include=r"^blocks\.")
    out: dict[str, dict[str, torch.Tensor]] = {e: {} for e in EXPERTS}
    for name, g in grams.items():
        _, i, expert, layer = name.split(".")
        out[expert][f"blocks.{i}.{layer}"] = g
    return out


def n_parameters(state: dict[str, torch.Tensor]) -> int:
    return int(sum(v.numel() for v in state.values()))

