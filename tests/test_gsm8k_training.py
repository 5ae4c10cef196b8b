"""Training data and loops: LoRA fine-tuning lowers the loss of the solutions it trains on, perturbed references
answer wrongly, and the data parts never share a problem."""
import random

import pytest

from pic.models.language_model import tiny_random_llama
from pic.models.lora import add_lora
from pic.tasks.gsm8k import EXEMPLARS, Problem, final_answer, is_correct
from pic.tasks.gsm8k_training import labelled_solutions, perturb_numbers, solution_loss, split_problems, train_lora

PROBLEMS = [Problem(i, q, a) for i, (q, a) in EXEMPLARS.items()]


def test_lora_fine_tuning_lowers_the_loss_of_its_training_solutions():
    model, tok = tiny_random_llama()
    peft_model = add_lora(model, rank=4, alpha=8.0, targets=("q_proj", "v_proj", "up_proj", "down_proj"))
    before = solution_loss(peft_model, tok, PROBLEMS)
    run = train_lora(peft_model, tok, PROBLEMS, steps=8, batch_size=3, lr=3e-2, warmup=1, log=None)
    assert run.examples == 24 and len(run.losses) == 8
    assert solution_loss(peft_model, tok, PROBLEMS) < before - 0.2


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
