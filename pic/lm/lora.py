"""LoRA adapters (peft) for causal LMs, stored as plain safetensors: the adapter weights plus its config in the
file's metadata, so loading never unpickles anything."""
from __future__ import annotations

import json
import warnings

import torch

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # Llama names


def add_lora(model, rank: int = 8, alpha: float = 16.0, dropout: float = 0.05,
             targets: tuple[str, ...] = DEFAULT_TARGETS):
    """A peft model whose only trainable parameters are the LoRA factors (kept in float32 whatever the base
    dtype, so that bfloat16 base weights still train a precise adapter)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                        task_type="CAUSAL_LM")
    with warnings.catch_warnings():
        # peft itself reads transformers' deprecated `is_gradient_checkpointing` alias: nothing for a reader to fix,
        # and the warning would store a path of this machine in every notebook that adds an adapter
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        peft_model = get_peft_model(model, config)
    for p in peft_model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return peft_model


def adapter_tensors(peft_model, dtype: torch.dtype = torch.bfloat16) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(LoRA weights, metadata with the LoRA config as JSON) ready for pic.assets.save_checkpoint."""
    from peft import get_peft_model_state_dict

    config = peft_model.peft_config["default"]
    meta = {"lora": json.dumps({"rank": config.r, "alpha": config.lora_alpha, "dropout": config.lora_dropout,
                                "targets": sorted(config.target_modules)})}
    return {k: v.detach().to(dtype) for k, v in get_peft_model_state_dict(peft_model).items()}, meta


def merged_with_adapter(model, tensors: dict[str, torch.Tensor], metadata: dict[str, str]):
    """`model` with the adapter added and merged into its weights (a plain model again: no LoRA cost when
    decoding). Raises naming the missing or unexpected keys when the adapter does not fit the model."""
    from peft import set_peft_model_state_dict

    if "lora" not in metadata:
        raise ValueError("these tensors carry no LoRA config in their metadata; save them with adapter_tensors()")
    cfg = json.loads(metadata["lora"])
    peft_model = add_lora(model, cfg["rank"], cfg["alpha"], 0.0, tuple(cfg["targets"]))
    dtype = next(model.parameters()).dtype
    result = set_peft_model_state_dict(peft_model, {k: v.float() for k, v in tensors.items()})
    unexpected = getattr(result, "unexpected_keys", [])
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if unexpected or missing:
        raise ValueError(f"the adapter does not fit this model: unexpected {unexpected[:3]}, missing {missing[:3]}")
    return peft_model.merge_and_unload().to(dtype).eval()
