"""Frozen features computed once: a wrapper that keeps a frozen tower's output for every input it has seen under
the cache directory, keyed by a hash of each input, so re-running a notebook (or training a projection on top)
skips the tower whatever the batches look like."""
from __future__ import annotations

import hashlib
import os
import warnings

import torch

from pic.assets import cache_dir


class CachedFeatures(torch.nn.Module):
    """forward(x [N, ...]) = tower(x) [N, F], each row read from cache_dir()/features/<tag>.safetensors when there.

    `tag` must name everything that changes the output (model, weights version, input size). Only the rows not
    seen before go through the tower; the file is rewritten atomically after each miss.
    """

    def __init__(self, tower: torch.nn.Module, tag: str, batch_size: int = 64):
        super().__init__()
        self.tower, self.tag, self.batch_size = tower, tag, batch_size
        self._rows: dict[str, torch.Tensor] | None = None

    @property
    def path(self):
        return cache_dir() / "features" / f"{self.tag}.safetensors"

    def _load(self) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        if self._rows is None:
            self._rows = {}
            if self.path.exists():
                try:
                    self._rows = dict(load_file(self.path))
                except Exception as err:  # a damaged file: its rows are recomputed (it is a cache)
                    warnings.warn(f"the feature cache {self.path} cannot be read ({type(err).__name__}: {err}); "
                                  "its features are computed again", stacklevel=3)
        return self._rows

    @staticmethod
    def key(row: torch.Tensor) -> str:
        h = hashlib.sha256(str((tuple(row.shape), str(row.dtype))).encode())
        h.update(row.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:32]

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        """The tower on a batch; a batch of one is padded to two, as convolution libraries take another code path
        for a single image and its features would differ in the last bits from the same image's in a batch."""
        if len(batch) == 1:
            return self.tower(batch.expand(2, *batch.shape[1:]))[:1]
        return self.tower(batch)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from safetensors.torch import save_file

        rows, keys = self._load(), [self.key(r) for r in x]
        missing = list(dict.fromkeys(k for k in keys if k not in rows))
        if missing:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            inputs = x[torch.tensor([first[k] for k in missing])]
            out = torch.cat([self._run(inputs[i:i + self.batch_size]) for i in range(0, len(inputs), self.batch_size)])
            rows.update(zip(missing, out.detach().cpu().contiguous()))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
            save_file(rows, tmp)
            os.replace(tmp, self.path)  # atomic: a concurrent reader never sees half a file
        return torch.stack([rows[k] for k in keys]).to(x.device)
