"""PIC rounds for GSM8K: per problem, `rerank_rounds` proposes, scores with every scorer, keeps the best k and
re-proposes from the longest prefix of each kept solution whose steps the calculator accepts; the per-problem
loops share batched generation through `pic.optim.lockstep`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from pic.lm import Continuation, SharedPrefix, sample
from pic.optim import RoundsResult, rerank_rounds
from pic.tasks.gsm8k.data import solution_end
from pic.tasks.gsm8k.calculator import accepted_prefix


# ---------------------------------------------------------------- re-proposals from accepted prefixes
def prefix_tokens(tokenizer, candidate: Continuation) -> int:
    """How many of the candidate's tokens make up its calculator-accepted prefix (the longest token prefix whose
    text does not run past it)."""
    keep = len(accepted_prefix(candidate.text))
    if not keep:
        return 0
    j = 0
    for i in range(1, len(candidate.tokens) + 1):
        if len(tokenizer.decode(candidate.tokens[:i], skip_special_tokens=True)) > keep:
            break
        j = i
    return j


def _stop_after(text_before: str):
    """The solution stop rule for a continuation of `text_before` (a blank line may straddle the seam)."""
    def rule(text: str) -> int | None:
        cut = solution_end(text_before + text)
        return None if cut is None else max(cut - len(text_before), 0)
    return rule


@dataclass
class Request:
    tail: list[int]  # the problem's prompt tail
    seed: Continuation | None  # the kept candidate to continue; None: a fresh solution
    keep_tokens: int  # how many of its tokens to keep


def serve_requests(prefix: SharedPrefix, requests: list[Request], *, temperature: float, max_new_tokens: int,
                   generator: torch.Generator, batch_size: int) -> list[Continuation]:
    """One batched sampling call for many (prompt, kept prefix) requests; returns the joined candidates, whose
    recorded log-probabilities cover the kept prefix and the new tokens (so the LM scorer needs no extra pass).
    Requests with the same prompt and kept tokens are sampled as n rows of one prompt (prefilled once)."""
    tokenizer = prefix.tokenizer
    groups: dict[tuple[int, ...], list[int]] = {}  # prompt + kept tokens -> the requests asking for it
    for i, r in enumerate(requests):
        groups.setdefault(tuple(r.tail + (r.seed.tokens[:r.keep_tokens] if r.seed else [])), []).append(i)
    firsts = [requests[members[0]] for members in groups.values()]
    kept = [r.seed.tokens[:r.keep_tokens] if r.seed else [] for r in firsts]
    before = [tokenizer.decode(k, skip_special_tokens=True) for k in kept]
    new = sample(prefix, [list(key) for key in groups], n=[len(m) for m in groups.values()], temperature=temperature,
                 max_new_tokens=[max(1, max_new_tokens - len(k)) for k in kept],  # the same budget per solution
                 stop=[_stop_after(b) for b in before], generator=generator, batch_size=batch_size)
    out: list[Continuation | None] = [None] * len(requests)
    for members, r, k, b, rows in zip(groups.values(), firsts, kept, before, new):
        for i, c in zip(members, rows):
            logprobs = (r.seed.logprobs[:r.keep_tokens] if r.seed else []) + c.logprobs
            out[i] = Continuation(b + c.text, k + c.tokens, logprobs, c.stopped)
    return out


@dataclass
class ConsensusResult:
    rounds: RoundsResult
    best_after: list[Continuation]  # the best candidate after each round that ran


def consensus_rounds(energy, question: str, first_pool: list[Continuation], tail: list[int], tokenizer,
                     request: Callable[[list[Request]], list[Continuation]], *, keep: int, n: int,
                     rounds: int) -> ConsensusResult:
    """PIC for one problem: round 0 scores the shared samples `first_pool`; each later round asks for n
    re-proposals, cycling over the kept candidates (best first), each continued from its calculator-accepted
    prefix."""
    best_after = []

    def propose(kept, size):
        if kept is None:
            return list(first_pool)
        best_after.append(kept[0])  # rerank_rounds hands back the kept candidates best first
        cuts = [prefix_tokens(tokenizer, c) for c in kept]
        return request([Request(tail, kept[i % len(kept)], cuts[i % len(kept)]) for i in range(size)])

    result = rerank_rounds(propose, energy, n=n, keep=keep, rounds=rounds, question=question)
    return ConsensusResult(result, best_after + [result.best])
