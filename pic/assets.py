"""Where data and weights live, and the sha256 checks that guard them.

Committed checkpoints sit under data/, each beside a pin file <name>.pin.json holding its sha256, size and the
notebook that produces it (one pin per file, so branches adding checkpoints never conflict); loading refuses a
missing or altered file with a message naming that notebook.
External files are downloaded once into the cache with a sha256 check.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"


class AssetError(RuntimeError):
    """A data file or checkpoint is missing, altered or cannot be fetched; the message says what provides it."""


def cache_dir() -> Path:
    """$PIC_CACHE, else $XDG_CACHE_HOME/pic, else ~/.cache/pic (created)."""
    base = os.environ.get("PIC_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pic"
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: str | Path, sha256: str, provider: str) -> Path:
    """Return `path` if it exists with this sha256; else raise, naming what provides it."""
    path = Path(path)
    if not path.exists():
        raise AssetError(f"{path} is missing; it is provided by: {provider}")
    actual = sha256_file(path)
    if actual != sha256:
        raise AssetError(f"{path} has sha256 {actual}, expected {sha256}: refusing an altered or partial file; "
                         f"restore it with: {provider}")
    return path


def download(url: str, dest: str | Path, sha256: str, provider: str) -> Path:
    """Fetch `url` into `dest` (atomically) unless a verified copy is there already."""
    dest = Path(dest)
    if dest.exists() and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=30) as r, tempfile.NamedTemporaryFile(dir=dest.parent,
                                                                                      delete=False) as tmp:
            shutil.copyfileobj(r, tmp)
    except OSError as err:
        raise AssetError(f"cannot download {url} ({err}); offline, it is provided by: {provider}") from err
    os.replace(tmp.name, dest)
    return verify(dest, sha256, provider)


def pin_path(name: str) -> Path:
    return DATA_DIR / f"{name}.pin.json"


def read_pin(name: str) -> dict | None:
    path = pin_path(name)
    return json.loads(path.read_text()) if path.exists() else None


def pins(*names: str | None) -> dict[str, str]:
    """name -> sha256 of the committed checkpoints a run reads (for its records' fingerprint); unpinned or None
    names are left out."""
    return {n: pin["sha256"] for n in names if n is not None and (pin := read_pin(n)) is not None}


def _remedy(name: str, produced_by: str | None) -> str:
    train = (f"`python -m pic.reproduce --train {produced_by[:2]}` retrains it (notebooks/{produced_by}, which "
             "rewrites its pins)" if produced_by else "its training notebook (notebooks/NN_train_*.ipynb) writes it")
    return f"`git checkout -- data/{name} data/{name}.pin.json` restores the committed file; {train}"


def checkpoint_path(name: str) -> Path:
    """The verified path of a committed checkpoint data/<name>; a missing, unpinned or altered file is an error
    naming the two remedies: restore the committed file from git, or retrain it with its one training notebook."""
    pin = read_pin(name)
    if pin is None:
        raise AssetError(f"data/{name} has no pin file data/{name}.pin.json: {_remedy(name, None)}")
    return verify(DATA_DIR / name, pin["sha256"], _remedy(name, pin["produced_by"]))


def save_checkpoint(tensors: dict[str, torch.Tensor], name: str, produced_by: str,
                    metadata: dict[str, str] | None = None) -> Path:
    """Write data/<name> as safetensors and pin its sha256 in data/<name>.pin.json."""
    from safetensors.torch import save

    path = DATA_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = _sorted_metadata(save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata))
    path.write_bytes(blob)
    pin = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob), "produced_by": produced_by}
    pin_path(name).write_text(json.dumps(pin, indent=2) + "\n")
    return path


def _sorted_metadata(blob: bytes) -> bytes:
    """The safetensors bytes with the header's metadata in sorted key order. safetensors writes metadata in hash-map
    order, which varies between processes: without this, a bit-identical retrain would not reproduce its pin."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    metadata = header.pop("__metadata__", None)
    if not metadata:
        return blob
    text = json.dumps({"__metadata__": dict(sorted(metadata.items()))} | header, separators=(",", ":"),
                      ensure_ascii=False).encode()
    if len(text) > size:  # never expected (same content, compact JSON); keep the library's bytes then
        return blob
    return blob[:8] + text.ljust(size) + blob[8 + size:]


def load_checkpoint(name: str, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a verified committed checkpoint; safetensors, so no pickle is ever loaded."""
    from safetensors import safe_open

    path = checkpoint_path(name)
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
