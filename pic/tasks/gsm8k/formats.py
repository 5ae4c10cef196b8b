"""How each proposer writes a solution: its prompt (a shared prefix and a per-problem tail), where its text stops,
and how its final answer is read.

  cot  GSM8K's own few-shot chain-of-thought format (`<<48/2=24>>` annotations, a final `#### 72`), for SmolLM2;
  pot  program of thought: a chat prompt asking for a Python `solution()` function, whose body the model writes;
       its answer is what pic.tasks.gsm8k.program's whitelisted interpreter computes (never exec/eval).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from pic.tasks.gsm8k.data import few_shot_prefix, final_answer, question_prompt, solution_end
from pic.tasks.gsm8k.program import program_answer

POT_HEADER = "```python\ndef solution():\n"
POT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
POT_INSTRUCTION = ("Write a Python function `solution()` that solves the math word problem and returns the final "
                   "answer as a number. Use only numbers, variables, arithmetic (+ - * / // % **), "
                   "round/min/max/abs and for loops over range(); no imports, lists or strings. Problem:\n")


@dataclass(frozen=True)
class Format:
    """name; prefix: the prompt shared by every problem; tail(question): the rest of the prompt; stop(text): where
    a generated text ends (None while it goes on); answer(text): its final answer (None when it has none)."""

    name: str
    prefix: str
    tail: Callable[[str], str]
    stop: Callable[[str], int | None]
    answer: Callable[[str], float | None]


def _pot_tail(question: str) -> str:
    return f"{question.strip()}<|im_end|>\n<|im_start|>assistant\n{POT_HEADER}"


def pot_stop(text: str) -> int | None:
    """The function body ends at the closing code fence or at the first line that is not indented."""
    m = re.search(r"\n```|\n(?=\S)", text)
    return m.start() if m else None


def pot_answer(body: str) -> float | None:
    """The number `solution()` returns, from the whitelisted interpreter; None when refused or it returns none."""
    return program_answer("def solution():\n" + body)


COT = Format("cot", few_shot_prefix(), question_prompt, solution_end, final_answer)
POT = Format("pot", f"<|im_start|>system\n{POT_SYSTEM}<|im_end|>\n<|im_start|>user\n{POT_INSTRUCTION}", _pot_tail,
             pot_stop, pot_answer)
FORMATS = {f.name: f for f in (COT, POT)}
