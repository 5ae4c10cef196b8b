"""Proposers: a pre-trained language model writing solutions in one format (pic.tasks.gsm8k.formats), batched.

A proposer's candidates carry what the scorers read: who wrote it, the text, the final answer (for a program:
what the whitelisted interpreter computes), the model's own mean token log-probability (recorded while
sampling, so the likelihood scorer needs no extra pass) and whether it is the greedy one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pic.lm import Continuation, SharedPrefix, sample
from pic.tasks.gsm8k.formats import Format


@dataclass(frozen=True)
class Candidate:
    proposer: str  # e.g. "qwen2.5-coder/pot"
    text: str
    answer: float | None
    mean_logprob: float | None  # log p per token under the proposing model itself; None when unknown
    tokens: int
    greedy: bool = False

    def as_record(self) -> dict:
        return {"proposer": self.proposer, "text": self.text, "answer": self.answer,
                "mean_logprob": None if self.mean_logprob is None else round(self.mean_logprob, 5),
                "tokens": self.tokens, "greedy": self.greedy}

    @classmethod
    def from_record(cls, r: dict) -> Candidate:
        return cls(r["proposer"], r["text"], r["answer"], r["mean_logprob"], r["tokens"], r["greedy"])


class Proposer:
    """`name` writes in `fmt` with `model`; the format's prefix is run once (pic.lm.SharedPrefix)."""

    def __init__(self, name: str, model, tokenizer, fmt: Format):
        self.name, self.format = name, fmt
        self.prefix = SharedPrefix(model, tokenizer, fmt.prefix)

    def tails(self, questions: list[str]) -> list[list[int]]:
        return [self.prefix.tail_ids(self.format.tail(q)) for q in questions]

    def candidate(self, c: Continuation, greedy: bool = False) -> Candidate:
        return Candidate(self.name, c.text, self.format.answer(c.text), c.mean_logprob, len(c.tokens), greedy)

    def propose(self, questions: list[str], *, n: int, temperature: float, max_new_tokens: int,
                generator: torch.Generator, batch_size: int = 64) -> list[list[Candidate]]:
        """Per question: the greedy solution, then n samples at `temperature`, all decoded in one continuous
        batch."""
        tails = self.tails(questions)
        k = len(tails)
        rows = sample(self.prefix, tails + tails, n=[1] * k + [n] * k, temperature=[0.0] * k + [temperature] * k,
                      max_new_tokens=max_new_tokens, stop=self.format.stop, generator=generator,
                      batch_size=batch_size) if n else sample(
            self.prefix, tails, n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=self.format.stop,
            generator=generator, batch_size=batch_size)
        out = []
        for i in range(k):
            samples = rows[k + i] if n else []
            out.append([self.candidate(rows[i][0], greedy=True)] + [self.candidate(c) for c in samples])
        return out
