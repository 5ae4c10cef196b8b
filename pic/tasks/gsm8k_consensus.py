"""PIC rounds for GSM8K: per problem, `rerank_rounds` proposes, scores with every scorer, keeps the best k and
re-proposes from the longest prefix of each kept solution whose steps the calculator accepts.

`rerank_rounds` is a loop per problem, while a language model on a CPU is only fast when many prompts share one
batched call. `lockstep` runs the per-problem loops in threads and answers their proposal requests together:
once every unfinished loop is waiting, one batched generation serves them all (in a fixed order, so the results
do not depend on thread timing). All torch work (the batched call and the loops' scoring) runs on the calling
thread: torch's OpenMP pool belongs to the thread that uses it, and a pool per loop thread made every call pay
for waking its own idle workers (2x slower on 2 cores).
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import torch

from pic.models.decoding import Continuation, SharedPrefix, sample
from pic.optim import RoundsResult, rerank_rounds
from pic.tasks.gsm8k import solution_end
from pic.tasks.gsm8k_calculator import accepted_prefix


class _Lockstep:
    """The loops' side: a loop posts a batched request or a call and waits for its answer. The owner's side
    (`run`, on the calling thread): runs posted calls as they come, and serves the batched requests, in key
    order, once every unfinished loop waits on one."""

    def __init__(self, serve: Callable[[list], list], clients: int):
        self.serve, self.active = serve, clients
        self.cond = threading.Condition()
        self.pending: dict = {}  # key -> payload of a batched request
        self.calls: list = []  # (key, zero-argument function) to run on the owner's thread
        self.answers: dict = {}

    def _wait_for_answer(self, key):
        self.cond.notify_all()
        self.cond.wait_for(lambda: key in self.answers)
        answer = self.answers.pop(key)
        if isinstance(answer, BaseException):
            raise RuntimeError("a call on the serving thread failed") from answer
        return answer

    def request(self, key, payload):
        with self.cond:
            self.pending[key] = payload
            return self._wait_for_answer(key)

    def call(self, key, fn, *args, **kwargs):
        with self.cond:
            self.calls.append((key, functools.partial(fn, *args, **kwargs)))
            return self._wait_for_answer(key)

    def leave(self):
        with self.cond:
            self.active -= 1
            self.cond.notify_all()

    def run(self):
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.calls or not self.active
                                   or (self.pending and len(self.pending) >= self.active))
                calls, self.calls = self.calls, []
                batch = {} if calls else {k: self.pending.pop(k) for k in sorted(self.pending)}
            if not calls and not batch:
                return
            if calls:
                answers = {key: _outcome(fn) for key, fn in calls}
            else:  # one answer per waiting loop; a failed call fails them all instead of leaving them waiting
                result = _outcome(self.serve, list(batch.values()))
                answers = dict(zip(batch, [result] * len(batch) if isinstance(result, BaseException) else result))
            with self.cond:
                self.answers.update(answers)
                self.cond.notify_all()


def _outcome(fn, *args):
    """fn(*args)'s result, or the exception it raised."""
    try:
        return fn(*args)
    except BaseException as err:
        return err


def lockstep(keys: Sequence[Hashable], loop: Callable, serve: Callable[[list], list]) -> dict:
    """Run `loop(key, request, call)` for every key, each in its own thread. `request(payload)` blocks until one
    call `serve([payloads of all waiting loops, in key order])` answers; `call(fn, *args, **kwargs)` runs fn on
    this (the calling) thread and returns its result. Returns {key: loop result}; re-raises the first error of a
    loop."""
    gate = _Lockstep(serve, len(keys))
    results, errors = {}, {}

    def run(key):
        try:
            results[key] = loop(key, lambda payload: gate.request(key, payload),
                                lambda fn, *args, **kwargs: gate.call(key, fn, *args, **kwargs))
        except BaseException as err:
            errors[key] = err
        finally:
            gate.leave()

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in keys]
    for t in threads:
        t.start()
    gate.run()
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
