"""PIC rounds for GSM8K: per problem, `rerank_rounds` proposes, scores with every scorer, keeps the best k and
re-proposes from the longest prefix of each kept solution whose steps the calculator accepts.

`rerank_rounds` is a loop per problem, while a language model on a CPU is only fast when many prompts share one
batched call. `lockstep` runs the per-problem loops in threads and answers their proposal requests together:
once every unfinished loop is waiting, one batched generation serves them all (in a fixed order, so the results
do not depend on thread timing).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import torch

from pic.models.decoding import Continuation, SharedPrefix, sample
from pic.optim import RoundsResult, rerank_rounds
from pic.tasks.gsm8k import solution_end
from pic.tasks.gsm8k_calculator import accepted_prefix


class _Lockstep:
    """Collects one request per waiting client; when all unfinished clients wait, serves them in key order."""

    def __init__(self, serve: Callable[[list], list], clients: int):
        self.serve, self.active = serve, clients
        self.cond = threading.Condition()
        self.pending: dict = {}
        self.answers: dict = {}

    def request(self, key, payload):
        with self.cond:
            self.pending[key] = payload
            self._serve_if_all_wait()
            self.cond.wait_for(lambda: key in self.answers)
            answer = self.answers.pop(key)
        if isinstance(answer, BaseException):
            raise RuntimeError("the batched proposal call failed") from answer
        return answer

    def leave(self):
        with self.cond:
            self.active -= 1
            self._serve_if_all_wait()

    def _serve_if_all_wait(self):
        if not self.pending or len(self.pending) < self.active:
            return
        keys = sorted(self.pending)
        try:
            results = self.serve([self.pending[k] for k in keys])
        except BaseException as err:  # every waiting loop gets the error instead of waiting forever
            results = [err] * len(keys)
        self.answers.update(zip(keys, results))
        self.pending.clear()
        self.cond.notify_all()


def lockstep(keys: Sequence[Hashable], loop: Callable, serve: Callable[[list], list]) -> dict:
    """Run `loop(key, request)` for every key, each in its own thread; `request(payload)` blocks until one call
    `serve([payloads of all waiting loops, in key order])` answers. Returns {key: loop result}; re-raises the
    first error of a loop."""
    gate = _Lockstep(serve, len(keys))
    results, errors = {}, {}

    def run(key):
        try:
            results[key] = loop(key, lambda payload: gate.request(key, payload))
        except BaseException as err:
            errors[key] = err
        finally:
            gate.leave()

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        key = sorted(errors)[0]
        raise RuntimeError(f"the consensus loop of {key!r} failed: {errors[key]}") from errors[key]
    return results


# ---------------------------------------------------------------- re-proposals from accepted prefixes
def prefix_tokens(tokenizer, candidate: Continuation) -> int:
    """How many of the candidate's tokens make up its calculator-accepted prefix (the longest token prefix whose
    text does not run past it)."""
    keep = len(accepted_prefix(candidate.text))
    j = 0
    for i in range(1, len(candidate.tokens) + 1):
        if len(tokenizer.decode(candidate.tokens[:i], skip_special_tokens=True)) > keep:
            break
        j = i
    return j if keep else 0


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
        seeds = [kept[i % len(kept)] for i in range(size)]
        return request([Request(tail, s, prefix_tokens(tokenizer, s)) for s in seeds])

    result = rerank_rounds(propose, energy, n=n, keep=keep, rounds=rounds, question=question)
    return ConsensusResult(result, best_after + [result.best])
