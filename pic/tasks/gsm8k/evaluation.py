"""The paper-analog GSM8K evaluation (notebook 31): every configuration of Table 3 with one generator (SmolLM2) on
the same problems, candidates sampled once and shared by the rows that can share them, results appended per chunk
of problems to a resumable JSONL (pic.tasks.gsm8k.store).

Problems run in fixed chunks (batched generation needs many prompts at once); a chunk's records are appended when
it completes, so an interrupted run redoes at most one chunk, with the same seeds, and ends with the same table.
"""
from __future__ import annotations

import functools
import time
import zlib
from dataclasses import dataclass

import torch

from pic.lm import SharedPrefix, beam_search, sample
from pic.optim import select_argmin
from pic.tasks.gsm8k.data import Problem, final_answer, few_shot_prefix, is_correct, question_prompt, solution_end
from pic.optim.lockstep import lockstep
from pic.tasks.gsm8k.consensus import consensus_rounds, serve_requests
from pic.tasks.gsm8k.store import ResultStore, run_chunks


@dataclass(frozen=True)
class Settings:
    n_samples: int = 8  # candidates sampled once per problem, shared by every selection row
    temperature: float = 0.7
    max_new_tokens: int = 128
    num_beams: int = 5
    rounds: int = 3  # PIC rounds (the first scores the shared samples)
    keeps: tuple[int, ...] = (1, 5)  # kept candidates per round: the BS=1 and BS=5 analogs
    sizes: tuple[int, ...] = (1, 2, 4, 8)  # candidate-pool sizes for the accuracy-vs-candidates curve
    chunk_size: int = 10
    batch_size: int = 64

    def reproposals(self, keep: int) -> int:
        """New candidates per later round: 4 continuations of the single kept one, or one per kept candidate."""
        return max(keep, 4)


def selections(scorers: list[str]) -> dict[str, tuple[str, ...]]:
    """Selection rows over the shared samples: each scorer alone, and all of them ("all")."""
    return {name: (name,) for name in scorers} | {"all": tuple(scorers)}


def config_names(settings: Settings, scorers: list[str]) -> list[str]:
    names = ["greedy", f"beam{settings.num_beams}", f"finetuned_beam{settings.num_beams}", "samples"]
    names += [f"select/{s}@{n}" for s in selections(scorers) for n in settings.sizes if n <= settings.n_samples]
    return names + [f"rounds/keep{k}" for k in settings.keeps]


def _seed(*parts) -> int:
    """A seed from its parts, stable across processes (Python's str hash is not)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


class Evaluation:
    """Runs every configuration on chunks of problems.

    model/tokenizer: the generator (few-shot prompt); finetuned: the fine-tuned generator (zero-shot prompt);
    energy: the composed scorers (pic.tasks.gsm8k.scorers.gsm8k_energy)."""

    def __init__(self, model, tokenizer, finetuned, energy, settings: Settings, seed: int):
        self.tokenizer, self.energy, self.settings, self.seed = tokenizer, energy, settings, seed
        self.prefix = SharedPrefix(model, tokenizer, few_shot_prefix())
        self.finetuned = SharedPrefix(finetuned, tokenizer, "")
        self.configs = config_names(settings, energy.names)
        self.seconds: dict[str, float] = {}

    def _timed(self, stage, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        return out

    def run_chunk(self, problems: list[Problem], index: int) -> list[dict]:
        s = self.settings
        tails = [self.prefix.tail_ids(question_prompt(p.question)) for p in problems]
        common = dict(max_new_tokens=s.max_new_tokens, stop=solution_end, batch_size=s.batch_size)
        beams = self._timed("beam search", beam_search, self.prefix, tails, num_beams=s.num_beams, **common)
        ft_beams = self._timed("fine-tuned beam search", beam_search, self.finetuned, tails,  # same tokenizer
                               num_beams=s.num_beams, **common)
        # greedy rows and the shared samples decode in one continuous batch
        rows = self._timed("greedy + samples", sample, self.prefix, tails + tails,
                           n=[1] * len(tails) + [s.n_samples] * len(tails),
                           temperature=[0.0] * len(tails) + [s.temperature] * len(tails),
                           generator=torch.Generator().manual_seed(_seed(self.seed, index, "samples")), **common)
        greedy, pools = rows[:len(tails)], rows[len(tails):]
        records = []
        for p, g, b, f, pool in zip(problems, greedy, beams, ft_beams, pools):
            records += [_record(p, "greedy", g[0].text), _record(p, self.configs[1], b.text),
                        _record(p, self.configs[2], f.text)]
            records += self._timed("selection", self._selections, p, pool)
        records += self._timed("rounds", self._rounds, problems, tails, pools, index)
        order = {c: i for i, c in enumerate(self.configs)}
        return sorted(records, key=lambda r: (r["problem"], order[r["config"]]))

    def _selections(self, problem: Problem, pool) -> list[dict]:
        e = self.energy(pool, question=problem.question)
        texts = [c.text for c in pool]
        out = [{"problem": problem.id, "config": "samples", "texts": texts,
                "answers": [final_answer(t) for t in texts], "correct": [is_correct(t, problem) for t in texts],
                "energies": {k: [round(v, 5) for v in e.terms[k].tolist()] for k in e.terms}}]
        for name, scorers in selections(self.energy.names).items():
            subset = self.energy.subset(scorers)
            for n in self.settings.sizes:
                if n <= len(pool):  # scored per size: agreement depends on the whole candidate set
                    best = select_argmin(pool[:n], subset, question=problem.question).candidate
                    out.append(_record(problem, f"select/{name}@{n}", best.text))
        return out

    def _rounds(self, problems, tails, pools, index) -> list[dict]:
        s = self.settings
        generator = torch.Generator().manual_seed(_seed(self.seed, index, "rounds"))
        keys = [(i, keep) for i in range(len(problems)) for keep in s.keeps]

        def loop(key, request, call):
            i, keep = key
            energy = functools.partial(call, self.energy)  # scored on lockstep's calling thread, one loop at a time
            return consensus_rounds(energy, problems[i].question, pools[i], tails[i], self.tokenizer, request,
                                    keep=keep, n=s.reproposals(keep), rounds=s.rounds)

        def serve(payloads):
            flat = [r for payload in payloads for r in payload]
            joined = serve_requests(self.prefix, flat, temperature=s.temperature, max_new_tokens=s.max_new_tokens,
                                    generator=generator, batch_size=s.batch_size)
            out, start = [], 0
            for payload in payloads:
                out.append(joined[start:start + len(payload)])
                start += len(payload)
            return out

        results = lockstep(keys, loop, serve)
        records = []
        for (i, keep), res in sorted(results.items()):
            p = problems[i]
            best = [is_correct(c.text, p) for c in res.best_after]
            records.append(_record(p, f"rounds/keep{keep}", res.rounds.best.text, best_correct_after_round=best,
                                   stop_reason=res.rounds.stop_reason))
        return records


def _record(problem: Problem, config: str, text: str, **extra) -> dict:
    return {"problem": problem.id, "config": config, "answer": final_answer(text),
            "correct": is_correct(text, problem), "text": text, **extra}


def run_evaluation(evaluation: Evaluation, problems: list[Problem], store: ResultStore, *, resume: bool = False,
                   on_chunk=None, log=print) -> dict[tuple[str, str], dict]:
    """Every chunk not yet complete in the store is (re)run and appended; returns all records. A run recomputes
    everything unless `resume` (then complete chunks of an interrupted run with the same fingerprint are reused,
    and the log says how many records)."""
    return run_chunks(evaluation.run_chunk, evaluation.configs, problems, store,
                      chunk_size=evaluation.settings.chunk_size, resume=resume, on_chunk=on_chunk, log=log)
