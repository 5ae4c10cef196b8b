"""Table 3, grade-school math (GSM8K): language models propose solutions, scorers rank them, and PIC rounds re-propose
from the kept solutions.

Notebooks: 30_train_gsm8k_models.ipynb (the LoRA baseline and the MiniLM verifier), 31_gsm8k.ipynb (the paper-analog
rows: SmolLM2 alone, beam search, LoRA, + classifier BS=1 / BS=5), 32_train_gsm8k_consensus.ipynb (the cross-model
consensus's normalisation and weights, chosen on held-out train problems), 33_gsm8k_consensus.ipynb (the consensus
of different pre-trained models: Qwen2.5-Coder programs and SmolLM2 chains of thought, scored by agreement within
and across models, each model's likelihood, a calculator and a program-execution check). Optimizer:
pic/optim/rerank_rounds.py, its per-problem loops sharing batched generation through pic/optim/lockstep.py.

`load(profile, notebook)` (pic.tasks.gsm8k.loading) gives each notebook what it needs at a profile.
"""
from pic.tasks.gsm8k.loading import load

__all__ = ["load"]
