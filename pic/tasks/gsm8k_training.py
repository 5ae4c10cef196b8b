"""Training data and loops for the GSM8K models (train split only): the fine-tuned baseline (a LoRA adapter,
supervised on reference solutions) and the verifier's labelled solutions (generated ones labelled by final-answer
correctness, references, and references with perturbed numbers as cheap negatives)."""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

import torch

from pic.tasks.gsm8k import Problem, final_answer, question_prompt


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
    losses: list[float]  # training loss per step


def train_lora(peft_model, tokenizer, problems: list[Problem], *, steps: int, batch_size: int = 8,
               lr: float = 3e-4, warmup: int = 10, max_tokens: int = 256, seed: int = 0,
               log=print, log_every: int = 10) -> LoraRun:
    """AdamW on the LoRA factors over seeded shuffles of `problems`, linear warm-up then cosine decay."""
    import time

    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    rng = random.Random(seed)
    order: list[Problem] = []
    torch.manual_seed(seed)  # LoRA dropout
    peft_model.train()
    losses, tokens, start = [], 0, time.perf_counter()
    for step in range(steps):
        while len(order) < batch_size:
            more = list(problems)
            rng.shuffle(more)
            order += more
        chunk, order = order[:batch_size], order[batch_size:]
        examples = [sft_example(tokenizer, p, max_tokens) for p in chunk]
        nll, n = _solution_nll(peft_model, examples, tokenizer)
        loss = nll / max(n, 1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        schedule.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        tokens += sum(len(ids) for ids, _ in examples)
        if log and (step + 1) % log_every == 0:
            recent = losses[-log_every:]
            log(f"step {step + 1}/{steps}: loss {sum(recent) / len(recent):.3f}, {time.perf_counter() - start:.0f} s")
    peft_model.eval()
    return LoraRun(steps, steps * batch_size, tokens, time.perf_counter() - start, losses)


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
    from pic.tasks.gsm8k import is_correct

    out = []
    for i, p in enumerate(problems):
        for text in generated[i] if i < len(generated) else []:
            out.append(LabelledSolution(p, text, "generated", is_correct(text, p)))
        out.append(LabelledSolution(p, p.solution, "reference", True))
        wrong = perturb_numbers(p.solution, rng)
        if wrong is not None:
            out.append(LabelledSolution(p, wrong, "perturbed", False))
    return out
