"""Training data and loops: LoRA fine-tuning lowers the loss of the solutions it trains on, perturbed references
answer wrongly, and the data parts never share a problem."""
import random
import warnings

import pytest

from pic.lm import tiny_random_llama
from pic.lm.lora import add_lora
from pic.tasks.gsm8k.data import EXEMPLARS, Problem, final_answer, is_correct
from pic.tasks.gsm8k.training import labelled_solutions, perturb_numbers, solution_loss, split_problems, train_lora

PROBLEMS = [Problem(i, q, a) for i, (q, a) in EXEMPLARS.items()]


def test_lora_fine_tuning_lowers_the_loss_of_its_training_solutions():
    model, tok = tiny_random_llama()
    peft_model = add_lora(model, rank=4, alpha=8.0, targets=("q_proj", "v_proj", "up_proj", "down_proj"))
    before = solution_loss(peft_model, tok, PROBLEMS)
    run = train_lora(peft_model, tok, PROBLEMS, steps=8, batch_size=3, lr=3e-2, warmup=1, log=None, log_every=1)
    assert run.examples == 24 and len(run.losses) == 8
    assert solution_loss(peft_model, tok, PROBLEMS) < before - 0.2


def test_adding_an_adapter_warns_of_nothing_a_notebook_would_store():
    # peft reads a deprecated transformers alias when it wraps a model; the stored FutureWarning named a path
    model, _ = tiny_random_llama()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        add_lora(model, rank=4, alpha=8.0, targets=("q_proj", "v_proj"))
    assert [str(w.message) for w in caught] == []


def test_a_perturbed_reference_reads_alike_but_answers_wrongly():
    rng = random.Random(0)
    for p in PROBLEMS:
        wrong = perturb_numbers(p.solution, rng)
        assert final_answer(wrong) != p.answer and wrong.split("\n")[0] == p.solution.split("\n")[0]
    assert perturb_numbers("no answer here", rng) is None


def test_the_verifier_examples_are_labelled_by_final_answer_correctness():
    generated = [[" 3*120=<<3*120=360>>360\n#### 180", " #### 7"]]
    examples = labelled_solutions(PROBLEMS[2:], generated, random.Random(0))
    assert [(e.kind, e.correct) for e in examples] == [("generated", True), ("generated", False),
                                                       ("reference", True), ("perturbed", False)]
    assert all(e.correct == is_correct(e.text, e.problem) for e in examples)


def test_the_parts_of_the_train_split_are_disjoint_and_skip_the_exemplars():
    problems = [Problem(f"train-{i:04d}", "q", "#### 1") for i in range(30)]
    parts = split_problems(problems, {"a": 10, "b": 5}, seed=0, exclude={"train-0003"})
    ids = [p.id for part in parts.values() for p in part]
    assert len(ids) == len(set(ids)) == 15 and "train-0003" not in ids
    with pytest.raises(ValueError, match="asked for 40 problems, have 29"):
        split_problems(problems, {"a": 40}, seed=0, exclude={"train-0003"})


def old_lora_loop(peft_model, tokenizer, problems, *, steps, batch_size, lr, warmup, seed):
    """The loop that trained the committed adapter (before pic.train.fit), kept here verbatim as the reference."""
    import math

    import torch

    from pic.tasks.gsm8k.training import _solution_nll, sft_example

    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    rng = random.Random(seed)
    order = []
    torch.manual_seed(seed)
    peft_model.train()
    for step in range(steps):
        while len(order) < batch_size:
            more = list(problems)
            rng.shuffle(more)
            order += more
        chunk, order = order[:batch_size], order[batch_size:]
        nll, n = _solution_nll(peft_model, [sft_example(tokenizer, p, 256) for p in chunk], tokenizer)
        loss = nll / max(n, 1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        schedule.step()
        opt.zero_grad(set_to_none=True)
    peft_model.eval()


def test_train_lora_on_the_shared_fit_loop_reproduces_the_committed_loop_bit_for_bit():
    import torch

    from pic.lm.lora import adapter_tensors

    adapters = []
    for train in (old_lora_loop, train_lora):
        model, tok = tiny_random_llama()
        peft_model = add_lora(model, rank=4, alpha=8.0, targets=("q_proj", "v_proj", "up_proj", "down_proj"))
        kwargs = dict(steps=7, batch_size=4, lr=3e-2, warmup=3, seed=1)
        train(peft_model, tok, PROBLEMS * 2, **kwargs, **({"log": None} if train is train_lora else {}))
        adapters.append(adapter_tensors(peft_model, torch.float32)[0])
    old, new = adapters
    assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
