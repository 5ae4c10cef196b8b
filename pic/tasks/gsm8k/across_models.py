"""Table 3 by a consensus of different pre-trained models (notebook 32): every proposer writes a greedy solution and
n samples per problem, the scorers (pic.tasks.gsm8k.scorers.ACROSS_MODELS, weights from train problems) score the
union of the pools, and PIC picks the candidate of lowest composed energy: after one round, or after K rounds of
`rerank_rounds` in which each kept candidate's own model re-proposes from the start of it (a chain of thought from
its calculator-accepted prefix, a program from all but its last two statements). The per-problem loops share
batched generation through pic.optim.lockstep.

Rows (configurations) per problem: greedy/<proposer>, vote/<proposer> (self-consistency over its own pool),
select/<scorer> (one scorer alone over the union pool), pic/1 (all scorers, one round), pic/K (K rounds).
"""
from __future__ import annotations

import functools
import zlib
from dataclasses import asdict, dataclass

import numpy as np
import torch

from pic.energy import ComposedEnergy
from pic.lm import sample
from pic.optim import rerank_rounds, select_argmin
from pic.optim.lockstep import lockstep
from pic.tasks.gsm8k.calculator import accepted_prefix
from pic.tasks.gsm8k.data import Problem, is_correct
from pic.tasks.gsm8k.proposers import Candidate, Proposer
from pic.tasks.gsm8k.scorers import AnswerAgreement


@dataclass(frozen=True)
class AcrossSettings:
    samples: tuple[int, ...] = (4, 4)  # samples per problem of each proposer (besides its greedy solution)
    max_new_tokens: tuple[int, ...] = (160, 96)  # per proposer
    temperature: float = 0.7
    rounds: int = 2  # PIC rounds (the first scores the pools)
    keep: int = 2  # candidates kept per round
    reproposals: int = 2  # new candidates per later round
    chunk_size: int = 50
    batch_size: int = 96


def _seed(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def is_right(candidate: Candidate, problem: Problem) -> bool:
    want = problem.answer
    return candidate.answer is not None and want is not None and \
        abs(candidate.answer - want) <= 1e-6 * max(1.0, abs(want))


def program_prefix(body: str) -> str:
    """All whole lines of a program body before its last two statements (the final computation and the return):
    what a re-proposal keeps of a kept program."""
    lines = body.split("\n")
    statements = [i for i, line in enumerate(lines) if line.strip() and not line.strip().startswith("#")]
    if len(statements) <= 2:
        return ""
    return "\n".join(lines[:statements[-2]]) + "\n"


def kept_start(candidate: Candidate) -> str:
    """What a re-proposal from this candidate keeps: nothing for a refused program or an answerless text."""
    if candidate.proposer.endswith("/pot"):
        return program_prefix(candidate.text) if candidate.answer is not None else ""
    return accepted_prefix(candidate.text)


class AcrossModels:
    """Runs every configuration of the cross-model table on chunks of problems."""

    def __init__(self, proposers: list[Proposer], energy: ComposedEnergy, settings: AcrossSettings, seed: int,
                 singles: ComposedEnergy | None = None):
        """energy: the composition PIC minimises; singles: every scorer (weights unused) for the rows of each
        scorer alone over the joint pool (default: the terms of `energy`)."""
        if len(settings.samples) != len(proposers) or len(settings.max_new_tokens) != len(proposers):
            raise ValueError(f"settings give samples {settings.samples} and lengths {settings.max_new_tokens} for "
                             f"{len(proposers)} proposers")
        self.proposers, self.energy, self.settings, self.seed = proposers, energy, settings, seed
        self.singles = singles if singles is not None else energy
        self.configs = ([f"greedy/{p.name}" for p in proposers] + [f"vote/{p.name}" for p in proposers]
                        + [f"select/{n}" for n in self.singles.names] + ["pic/1", f"pic/{settings.rounds}"])

    def pools(self, problems: list[Problem], index: int) -> list[list[Candidate]]:
        return propose_pools(self.proposers, problems, self.settings, self.seed, index)

    def run_chunk(self, problems: list[Problem], index: int) -> list[dict]:
        pools = self.pools(problems, index)
        records = []
        for p, pool in zip(problems, pools):
            records += self._selections(p, pool)
        records += self._rounds(problems, pools, index)
        order = {c: i for i, c in enumerate(["pool"] + self.configs)}
        return sorted(records, key=lambda r: (r["problem"], order[r["config"]]))

    def _selections(self, problem: Problem, pool: list[Candidate]) -> list[dict]:
        e = self.energy(pool, question=problem.question)
        single = self.singles(pool, question=problem.question)
        out = [{"problem": problem.id, "config": "pool", "candidates": [c.as_record() for c in pool],
                "correct": [is_right(c, problem) for c in pool],
                "energies": {k: [round(v, 5) for v in single.terms[k].tolist()] for k in single.terms},
                "total": [round(v, 5) for v in e.total.tolist()]}]
        for proposer in self.proposers:
            own = [c for c in pool if c.proposer == proposer.name]
            out.append(_record(problem, f"greedy/{proposer.name}", own[0]))
            vote = select_argmin(own, ComposedEnergy([AnswerAgreement()]), question=problem.question)
            out.append(_record(problem, f"vote/{proposer.name}", vote.candidate))
        for name in self.singles.names:
            out.append(_record(problem, f"select/{name}", pool[int(single.terms[name].argmin())]))
        out.append(_record(problem, "pic/1", pool[e.argmin()]))
        return out

    def _rounds(self, problems, pools, index) -> list[dict]:
        s = self.settings
        generator = torch.Generator().manual_seed(_seed(self.seed, index, "rounds"))

        def loop(i, request, call):
            best_after = []  # the best candidate after each round that ran

            def propose(kept, size):
                if kept is None:
                    return list(pools[i])
                best_after.append(kept[0])  # rerank_rounds hands back the kept candidates best first
                return request([(i, kept[j % len(kept)]) for j in range(size)])

            energy = functools.partial(call, self.energy)  # scored on lockstep's calling thread
            result = rerank_rounds(propose, energy, n=s.reproposals, keep=s.keep, rounds=s.rounds,
                                   question=problems[i].question)
            return result, best_after + [result.best]

        def serve(payloads):
            flat = [item for payload in payloads for item in payload]
            answers = self._repropose([c for _, c in flat], [problems[i] for i, _ in flat], generator)
            out, start = [], 0
            for payload in payloads:
                out.append(answers[start:start + len(payload)])
                start += len(payload)
            return out

        keys = list(range(len(problems)))
        results = lockstep(keys, loop, serve)
        return [_record(problems[i], f"pic/{s.rounds}", res.best, stop_reason=res.stop_reason,
                        best_correct_after_round=[is_right(c, problems[i]) for c in best_after])
                for i, (res, best_after) in sorted(results.items())]

    def _repropose(self, kept: list[Candidate], problems: list[Problem], generator) -> list[Candidate]:
        """One new candidate per kept one, by the kept candidate's own model, continuing from its kept start."""
        s = self.settings
        out: list[Candidate | None] = [None] * len(kept)
        for proposer, length in zip(self.proposers, s.max_new_tokens):
            mine = [j for j, c in enumerate(kept) if c.proposer == proposer.name]
            if not mine:
                continue
            starts = [kept_start(kept[j]) for j in mine]
            tok = proposer.prefix.tokenizer
            tails = [t + (tok(st, add_special_tokens=False)["input_ids"] if st else [])
                     for t, st in zip(proposer.tails([problems[j].question for j in mine]), starts)]
            rows = sample(proposer.prefix, tails, n=1, temperature=s.temperature,
                          max_new_tokens=[max(1, length - len(tok(st, add_special_tokens=False)["input_ids"]))
                                          for st in starts],
                          stop=[_stop_after(proposer.format.stop, st) for st in starts], generator=generator,
                          batch_size=s.batch_size)
            for j, st, row in zip(mine, starts, rows):
                c = row[0]
                text = st + c.text
                # the kept start's log-probabilities are not recomputed: it counts with the kept candidate's mean
                n_before = len(tok(st, add_special_tokens=False)["input_ids"]) if st else 0
                before = kept[j].mean_logprob if kept[j].mean_logprob is not None else 0.0
                new_sum = sum(c.logprobs)
                mean = (before * n_before + new_sum) / max(1, n_before + len(c.tokens))
                out[j] = Candidate(proposer.name, text, proposer.format.answer(text), mean,
                                   n_before + len(c.tokens))
        return out


def propose_pools(proposers: list[Proposer], problems: list[Problem], settings: AcrossSettings, seed: int,
                  index: int | str) -> list[list[Candidate]]:
    """Per problem, the union of every proposer's greedy solution and samples (proposer order); each proposer's
    sampling generator is seeded by (seed, index, its name)."""
    out = [[] for _ in problems]
    for proposer, n, length in zip(proposers, settings.samples, settings.max_new_tokens):
        rows = proposer.propose([p.question for p in problems], n=n, temperature=settings.temperature,
                                max_new_tokens=length, batch_size=settings.batch_size,
                                generator=torch.Generator().manual_seed(_seed(seed, index, proposer.name)))
        for pool, row in zip(out, rows):
            pool += row
    return out


def _stop_after(stop, text_before: str):
    """The format's stop rule for a continuation of `text_before` (a boundary may straddle the seam)."""
    def rule(text: str) -> int | None:
        cut = stop(text_before + text)
        return None if cut is None else max(cut - len(text_before), 0)
    return rule


def _record(problem: Problem, config: str, c: Candidate, **extra) -> dict:
    return {"problem": problem.id, "config": config, "proposer": c.proposer, "answer": c.answer,
            "correct": is_right(c, problem), "text": c.text, **extra}


def pool_of(records: dict, problem: Problem) -> list[Candidate]:
    return [Candidate.from_record(r) for r in records[(problem.id, "pool")]["candidates"]]


def oracle(records: dict, problems: list[Problem], proposers: list[str] | None = None) -> np.ndarray:
    """[problems] 1.0 where any candidate of the pool (of these proposers) is right: the any-of-N oracle."""
    out = []
    for p in problems:
        r = records[(p.id, "pool")]
        out.append(any(ok for ok, c in zip(r["correct"], r["candidates"])
                       if proposers is None or c["proposer"] in proposers))
    return np.array(out, dtype=float)


def settings_record(settings: AcrossSettings) -> dict:
    return asdict(settings)
