"""Training data and loops for the GSM8K models (train split only): the fine-tuned baseline (a LoRA adapter,
supervised on reference solutions) and the verifier's labelled solutions (generated ones labelled by final-answer
correctness, references, and references with perturbed numbers as cheap negatives)."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch

from pic.tasks.gsm8k.data import Problem, final_answer, is_correct, question_prompt
from pic.train import fit, stream_batches, warmup_then_cosine


def split_problems(problems: list[Problem], sizes: dict[str, int], seed: int,
                   exclude: set[str] = frozenset()) -> dict[str, list[Problem]]:
    """Disjoint, seeded subsets of the given sizes (in id order), never containing the `exclude` ids."""
    pool = [p for p in problems if p.id not in exclude]
    random.Random(seed).shuffle(pool)
    if sum(sizes.values()) > len(pool):
        raise ValueError(f"asked for {sum(sizes.values())} problems, have {len(pool)}")
    out, start = {}, 0
    for name, n in sizes.items():
        out[name] = sorted(pool[start:start + n], key=lambda p: p.id)
        start += n
    return out


# ---------------------------------------------------------------- the fine-tuned baseline (LoRA)
def sft_example(tokenizer, problem: Problem, max_tokens: int) -> tuple[list[int], int]:
    """(token ids of prompt + " solution\\n\\n", number of prompt tokens); the loss covers the solution only."""
    prompt = tokenizer(question_prompt(problem.question), add_special_tokens=False)["input_ids"]
    target = tokenizer(" " + problem.solution.strip() + "\n\n", add_special_tokens=False)["input_ids"]
    return (prompt + target)[:max_tokens], len(prompt)


@torch.no_grad()
def solution_loss(model, tokenizer, problems: list[Problem], max_tokens: int = 256, batch_size: int = 8) -> float:
    """Mean token cross-entropy of the reference solutions given the zero-shot prompt (held-out check)."""
    total, count = 0.0, 0
    for i in range(0, len(problems), batch_size):
        examples = [sft_example(tokenizer, p, max_tokens) for p in problems[i:i + batch_size]]
        nll, n = _solution_nll(model, examples, tokenizer)
        total, count = total + float(nll), count + n
    return total / max(count, 1)


def _solution_nll(model, examples, tokenizer) -> tuple[torch.Tensor, int]:
    """(summed token cross-entropy of the solution tokens, their number). Logits are computed only from the first
    solution position on (a 50k-word vocabulary makes them the largest tensor of a training step)."""
    ids, labels, mask = _batch(tokenizer, examples)
    keep = ids.shape[1] - min(n_prompt for _, n_prompt in examples) + 1
    logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits[:, :-1]
    targets = labels[:, ids.shape[1] - keep + 1:]
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                                            reduction="sum")
    return nll, int((targets != -100).sum())


def _batch(tokenizer, examples):
    width = max(len(ids) for ids, _ in examples)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([s + [pad] * (width - len(s)) for s, _ in examples])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s, _ in examples])
    labels = ids.clone()
    for row, (s, n_prompt) in enumerate(examples):
        labels[row, :n_prompt] = -100
        labels[row, len(s):] = -100
    return ids, labels, mask


@dataclass
class LoraRun:
    steps: int
    examples: int
    tokens: int
    seconds: float
    losses: list[float]  # mean training loss of each logging window
    window: int  # steps per window


def train_lora(peft_model, tokenizer, problems: list[Problem], *, steps: int, batch_size: int = 8,
               lr: float = 3e-4, warmup: int = 10, max_tokens: int = 256, seed: int = 0,
               log=print, log_every: int = 10) -> LoraRun:
    """AdamW on the LoRA factors over a Python-random stream of `problems` (pic.train.stream_batches), linear
    warm-up multiplied into a cosine decay (warmup_then_cosine), gradients clipped at 1: pic.train.fit, which
    reproduces the loop that trained the committed adapter bit for bit."""
    tokens = 0

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        nonlocal tokens
        examples = [sft_example(tokenizer, problems[i], max_tokens) for i in index.tolist()]
        tokens += sum(len(ids) for ids, _ in examples)
        nll, n = _solution_nll(peft_model, examples, tokenizer)
        return nll / max(n, 1)

    run = fit(peft_model, batch_loss, stream_batches(len(problems), batch_size, steps, random.Random(seed)), lr=lr,
              schedule=warmup_then_cosine(steps, warmup), clip_grad=1.0, seed=seed, log_every=log_every,
              desc=None, log=log)
    return LoraRun(run.steps, run.examples, tokens, run.seconds, run.losses, log_every)


# ---------------------------------------------------------------- the verifier's data
_RESULT = re.compile(r"(?<=>>)(-?\d+(?:\.\d+)?)|(?<=#### )(-?[\d,]+(?:\.\d+)?)")


def perturb_numbers(solution: str, rng: random.Random) -> str | None:
    """The reference with its final answer changed everywhere it is shown (as the "####" answer and as a step
    result), so that the text reads like a solution but answers wrongly; None if it has no numeric answer."""
    answer = final_answer(solution)
    if answer is None:
        return None
    delta = rng.choice([-1, 1]) * rng.randint(1, max(2, int(abs(answer) * 0.5)))
    new = answer + delta
    shown = f"{new:g}" if new != int(new) else str(int(new))

    def swap(m: re.Match) -> str:
        return shown if float(m.group(0).replace(",", "")) == answer else m.group(0)

    return _RESULT.sub(swap, solution)


@dataclass(frozen=True)
class LabelledSolution:
    problem: Problem
    text: str
    kind: str  # "generated", "reference" or "perturbed"
    correct: bool


def labelled_solutions(problems: list[Problem], generated: list[list[str]],
                       rng: random.Random) -> list[LabelledSolution]:
    """The verifier's examples for these problems: each generated solution (labelled by its final answer), each
    reference (correct) and each reference with a perturbed final answer (wrong)."""
    out = []
    for i, p in enumerate(problems):
        for text in generated[i] if i < len(generated) else []:
            out.append(LabelledSolution(p, text, "generated", is_correct(text, p)))
        out.append(LabelledSolution(p, p.solution, "reference", True))
        wrong = perturb_numbers(p.solution, rng)
        if wrong is not None:
            out.append(LabelledSolution(p, wrong, "perturbed", False))
    return out


# ---------------------------------------------------------------- notebook 30's steps: train (retrain) or load
TRAIN_PARTS = ("lora", "lora_heldout", "verifier", "weights")  # disjoint, seeded parts of the train split


def train_parts(train: list[Problem], settings: dict, seed: int) -> dict[str, list[Problem]]:
    """The parts of the train split each model learns from or is checked on (the prompt's exemplars left out):
    lora, lora_heldout, verifier (notebook 30), then weights (notebook 32) when `settings` has weight_problems;
    appending a part never changes the earlier ones."""
    from pic.tasks.gsm8k.data import EXEMPLARS

    sizes = {"lora": settings["lora_steps"] * settings["lora_batch"], "lora_heldout": settings["heldout_accuracy"],
             "verifier": settings["verifier_problems"]}
    if "weight_problems" in settings:
        sizes["weights"] = settings["weight_problems"]
    return split_problems(train, sizes, seed=seed, exclude=set(EXEMPLARS))


@dataclass
class Adapter:
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    run: LoraRun | None  # None when loaded
    heldout_loss_before: float
    heldout_loss_after: float
    trainable: int


LORA_TARGETS = {"llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
                "gpt2": ("c_attn", "c_proj", "c_fc")}


def writes_checkpoints(profile: str, overrides: dict) -> bool:
    """Only the committed configuration (no changed parameter, a profile with checkpoints) may write data/."""
    from pic.tasks.gsm8k import checkpoints

    return not overrides and checkpoints.lora_name(profile) is not None


def lora_adapter(profile: str, parts: dict[str, list[Problem]], settings: dict, *, retrain: bool, save: bool,
                 seed: int, log=print) -> Adapter:
    """The fine-tuned baseline's adapter: trained (retrain, or where nothing is committed: smoke, changed
    parameters) on bfloat16 base weights exactly as the committed one was, and saved when `retrain and save`; else
    the committed one. Either way the held-out solution loss is recomputed, before (the base model) and after."""
    from pic.lm import load_causal_lm
    from pic.lm.lora import adapter_tensors, add_lora, merged_with_adapter
    from pic.tasks.gsm8k import checkpoints

    train_now = retrain or not save
    base, tokenizer = load_causal_lm(profile)
    if train_now:
        base.to(torch.bfloat16)  # the committed adapter was trained on bfloat16 base weights
    peft_model = add_lora(base, rank=8, alpha=16.0, targets=LORA_TARGETS[settings["lora_targets"]])
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    run = None
    if train_now:
        before = solution_loss(peft_model, tokenizer, parts["lora_heldout"])
        run = train_lora(peft_model, tokenizer, parts["lora"], steps=settings["lora_steps"],
                         batch_size=settings["lora_batch"], seed=seed, log=log,
                         log_every=max(1, settings["lora_steps"] // 12))
        tensors, meta = adapter_tensors(peft_model)
        after = solution_loss(peft_model, tokenizer, parts["lora_heldout"])
        meta.update(base=type(base).__name__, profile=profile, steps=str(run.steps), examples=str(run.examples),
                    heldout_loss_before=f"{before:.4f}", heldout_loss_after=f"{after:.4f}")
        if retrain and save:
            checkpoints.save_lora(profile, tensors, meta)
    else:  # held-out losses on the float32 path: the base model, and the committed adapter merged into it
        before = solution_loss(load_causal_lm(profile)[0], tokenizer, parts["lora_heldout"])
        tensors, meta = checkpoints.load_lora(profile)
        after = solution_loss(merged_with_adapter(load_causal_lm(profile)[0], tensors, meta), tokenizer,
                              parts["lora_heldout"])
    return Adapter(tensors, meta, run, before, after, trainable)


def verifier_weights(features: torch.Tensor, labels: torch.Tensor, groups: list[str], *, retrain: bool,
                     save: bool, metadata: dict[str, str], seed: int) -> dict[str, torch.Tensor]:
    """The MiniLM verifier's logistic regression: fitted (retrain, or when nothing committed fits: smoke) and saved
    when `save`; else the committed weights."""
    from pic.tasks.gsm8k import checkpoints
    from pic.tasks.gsm8k.scorers import fit_verifier

    if not retrain and save:
        return checkpoints.load_verifier()
    weights = fit_verifier(features, labels, groups, seed=seed)
    if retrain and save:
        checkpoints.save_verifier(weights, metadata)
    return weights


def consensus_weights(pools, problems: list[Problem], *, retrain: bool, save: bool):
    """The cross-model consensus's normalisation and weights: chosen on these train pools (retrain, or smoke) and
    saved when `save`; else the committed ones."""
    import numpy as np

    from pic.tasks.gsm8k import checkpoints
    from pic.tasks.gsm8k.across_models import is_right
    from pic.tasks.gsm8k.weights import ConsensusWeights, fit_weights

    if not retrain and save:
        return ConsensusWeights.from_checkpoint(*checkpoints.load_consensus())
    correct = [np.array([is_right(c, p) for c in pool], dtype=float) for pool, p in zip(pools, problems)]
    weights = fit_weights(pools, [p.question for p in problems], correct)
    if retrain and save:
        checkpoints.save_consensus(*weights.to_checkpoint())
    return weights


def heldout_greedy_accuracy(prefixes: dict, problems: list[Problem], max_new_tokens: int) -> list[dict]:
    """Greedy accuracy % of each {label: SharedPrefix} on held-out problems (GSM8K prompt tails)."""
    from pic.lm import sample
    from pic.tasks.gsm8k.data import solution_end

    rows = []
    for label, prefix in prefixes.items():
        out = sample(prefix, [prefix.tail_ids(question_prompt(p.question)) for p in problems], n=1, temperature=0.0,
                     max_new_tokens=max_new_tokens, stop=solution_end)
        right = [is_correct(o[0].text, p) for o, p in zip(out, problems)]
        rows.append({"model": label, "held-out problems": len(problems), "greedy accuracy %": 100 * sum(right) /
                     len(right)})
    return rows


@dataclass
class VerifierData:
    """The verifier's labelled examples, their features, and the held-out mask (a seeded 20% of its problems)."""

    examples: list[LabelledSolution]
    features: torch.Tensor
    labels: torch.Tensor
    held: "np.ndarray"
    kinds: "np.ndarray"


def verifier_data(few_shot, encoder, problems: list[Problem], settings: dict, temperature: float,
                  seed: int) -> VerifierData:
    """Solutions sampled from the generator as in the evaluation (few-shot prompt), labelled by final-answer
    correctness, with every problem's reference (right) and perturbed reference (wrong); MiniLM features."""
    import numpy as np

    from pic.lm import sample
    from pic.tasks.gsm8k.data import solution_end
    from pic.tasks.gsm8k.scorers import verifier_features

    sampled = problems[:settings["sampled_problems"]]
    pools = sample(few_shot, [few_shot.tail_ids(question_prompt(p.question)) for p in sampled],
                   n=settings["samples_per_problem"], temperature=temperature,
                   max_new_tokens=settings["max_new_tokens"], stop=solution_end,
                   generator=torch.Generator().manual_seed(seed))
    examples = labelled_solutions(problems, [[c.text for c in pool] for pool in pools], random.Random(seed))
    features = verifier_features(encoder, [e.problem.question for e in examples], [e.text for e in examples])
    held_ids = {p.id for p in random.Random(seed + 1).sample(problems, len(problems) // 5)}
    return VerifierData(examples, features, torch.tensor([e.correct for e in examples]),
                        np.array([e.problem.id in held_ids for e in examples]), np.array([e.kind for e in examples]))


def verifier_probability(weights: dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(((features - weights["mean"]) / weights["std"]) @ weights["coef"] + weights["bias"])


def auc_with_interval(labels, scores, seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """ROC AUC and its percentile-bootstrap 95% interval (resampling items); None without both labels."""
    import numpy as np
    import scipy.stats
    from sklearn.metrics import roc_auc_score

    y, s = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    if not 0 < y.sum() < len(y):
        return None, None, None
    ci = scipy.stats.bootstrap((y, s), lambda a, b: roc_auc_score(a, b) if 0 < a.sum() < len(a) else 0.5,
                               paired=True, vectorized=False, n_resamples=1000, method="percentile",
                               rng=np.random.default_rng(seed)).confidence_interval
    return float(roc_auc_score(y, s)), float(ci.low), float(ci.high)


def verifier_rows(data: VerifierData, probability: torch.Tensor) -> list[dict]:
    """AUC of the verifier on held-out solutions (all; generated; references vs perturbed) and on its training
    part."""
    y, p = data.labels.numpy(), probability.numpy()
    rows = []
    for name, mask in [("all held-out solutions", data.held),
                       ("held-out generated solutions", data.held & (data.kinds == "generated")),
                       ("held-out references vs perturbed references", data.held & (data.kinds != "generated")),
                       ("training solutions (for comparison)", ~data.held)]:
        auc, lo, hi = auc_with_interval(y[mask], p[mask])
        rows.append({"solutions": name, "count": int(mask.sum()), "correct": int(y[mask].sum()), "AUC": auc,
                     "95% CI low": lo, "95% CI high": hi})
    return rows


def verifier_on_pools(encoder, weights, pools, problems: list[Problem], seed: int = 0) -> dict:
    """Does the verifier beat chance at telling right from wrong candidates of the cross-model pools on held-out
    train problems? Its AUC with a bootstrap interval; it qualifies as a scorer only if the interval lies above 0.5."""
    from pic.tasks.gsm8k.across_models import is_right
    from pic.tasks.gsm8k.scorers import verifier_features

    questions = [p.question for p, pool in zip(problems, pools) for _ in pool]
    texts = [c.text for pool in pools for c in pool]
    labels = [is_right(c, p) for p, pool in zip(problems, pools) for c in pool]
    probability = verifier_probability(weights, verifier_features(encoder, questions, texts))
    auc, lo, hi = auc_with_interval(labels, probability.numpy(), seed)
    return {"claim": "the MiniLM verifier beats chance on the candidates of held-out train problems",
            "holds": lo is not None and lo > 0.5, "candidates": len(labels), "right": int(sum(labels)), "AUC": auc,
            "95% CI low": lo, "95% CI high": hi}


def weight_rows(weights, pools, problems: list[Problem]) -> list[dict]:
    """Accuracy on the train pools of the chosen composition, each scorer alone, each proposer's greedy and the
    any-of-N oracle (the numbers the weights were chosen on: optimistic by construction)."""
    import numpy as np

    from pic.energy import ComposedEnergy
    from pic.tasks.gsm8k.across_models import is_right
    from pic.tasks.gsm8k.scorers import ACROSS_MODELS

    energy = weights.energy()
    full = weights.__class__({n: 1.0 for n in ACROSS_MODELS}, weights.scales, weights.lm_scales, 0.0, 0).energy()
    rows = []

    def row(name, picks):
        rows.append({"selection": name, "train problems": len(problems),
                     "accuracy %": 100 * float(np.mean([is_right(c, p) for c, p in zip(picks, problems)]))})

    for proposer in dict.fromkeys(c.proposer for c in pools[0]):
        row(f"{proposer} greedy", [next(c for c in pool if c.proposer == proposer) for pool in pools])
    for name in ACROSS_MODELS:
        alone = ComposedEnergy([t for t in full.terms if t.scorer.name == name])
        row(f"{name} alone", [pool[alone(pool, question=p.question).argmin()] for pool, p in zip(pools, problems)])
    row("PIC, chosen weights", [pool[energy(pool, question=p.question).argmin()] for pool, p in zip(pools, problems)])
    rows.append({"selection": "oracle: any candidate right", "train problems": len(problems),
                 "accuracy %": 100 * float(np.mean([any(is_right(c, p) for c in pool)
                                                    for pool, p in zip(pools, problems)]))})
    return rows
