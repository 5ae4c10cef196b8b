"""The GSM8K evaluation: every configuration of Table 3 on the same problems, candidates sampled once and shared by
the rows that can share them, results appended per problem to a resumable JSONL, accuracies with bootstrap
intervals.

Problems run in fixed chunks (batched generation needs many prompts at once); a chunk's records are appended when
it completes, so an interrupted run redoes at most one chunk, with the same seeds, and ends with the same table.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.stats
import torch

from pic.models.decoding import SharedPrefix, beam_search, sample
from pic.optim import select_argmin
from pic.tasks.gsm8k import Problem, final_answer, few_shot_prefix, is_correct, question_prompt, solution_end
from pic.tasks.gsm8k_consensus import consensus_rounds, lockstep, serve_requests


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
    energy: the composed scorers (pic.tasks.gsm8k_scorers.gsm8k_energy)."""

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


# ---------------------------------------------------------------- the resumable store
class ResultStore:
    """Per-problem records in a JSONL file, keyed by (problem id, configuration), under a fingerprint of the run's
    settings: a file written with other settings is set aside (renamed *.previous.jsonl), never mixed in."""

    def __init__(self, path: str | Path, fingerprint: dict):
        self.path, self.fingerprint = Path(path), json.loads(json.dumps(fingerprint, sort_keys=True))

    def load(self) -> dict[tuple[str, str], dict]:
        if not self.path.exists():
            return {}
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if header.get("fingerprint") != self.fingerprint:
            self.path.replace(self.path.with_suffix(".previous.jsonl"))
            return {}
        records = {}
        for line in lines[1:]:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill mid-write; its chunk is redone
                continue
            records.setdefault((r["problem"], r["config"]), r)
        return records

    def append(self, records: list[dict]) -> None:
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            if new:
                f.write(json.dumps({"fingerprint": self.fingerprint}, sort_keys=True) + "\n")
            elif self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
                f.write("\n")  # end a line cut by a kill, so the next record starts clean
            f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)
            f.flush()
            os.fsync(f.fileno())


def run_evaluation(evaluation: Evaluation, problems: list[Problem], store: ResultStore, on_chunk=None,
                   log=print) -> dict[tuple[str, str], dict]:
    """Every chunk not yet complete in the store is (re)run and appended; returns all records."""
    done = store.load()
    size = evaluation.settings.chunk_size
    chunks = [problems[i:i + size] for i in range(0, len(problems), size)]
    for index, chunk in enumerate(chunks):
        if all((p.id, c) in done for p in chunk for c in evaluation.configs):
            continue
        start = time.perf_counter()
        store.append(evaluation.run_chunk(chunk, index))
        if log:
            log(f"chunk {index + 1}/{len(chunks)}: {len(chunk)} problems in {time.perf_counter() - start:.0f} s")
        if on_chunk is not None:
            on_chunk(index)
    return store.load()


def fingerprint(settings: Settings, seed: int, profile: str, problems: list[Problem], **extra) -> dict:
    """What the stored results depend on: settings, seed, profile, the problems, the checkpoints' sha256 (extra)
    and this evaluation's code."""
    code = hashlib.sha256()
    for module in ("gsm8k", "gsm8k_calculator", "gsm8k_scorers", "gsm8k_consensus", "gsm8k_eval"):
        code.update((Path(__file__).parent / f"{module}.py").read_bytes())
    code.update((Path(__file__).parents[1] / "models" / "decoding.py").read_bytes())
    ids = hashlib.sha256(",".join(p.id for p in problems).encode()).hexdigest()[:16]
    return {"settings": asdict(settings), "seed": seed, "profile": profile, "problems": ids,
            "code": code.hexdigest()[:16], **extra}


# ---------------------------------------------------------------- accuracy with bootstrap intervals
def correctness(records: dict, problems: list[Problem], config: str) -> np.ndarray:
    return np.array([bool(records[(p.id, config)]["correct"]) for p in problems], dtype=float)


def bootstrap_interval(values: np.ndarray, seed: int = 0, resamples: int = 2000, level: float = 0.95):
    """Percentile bootstrap interval of the mean over problems (resampling problems)."""
    ci = scipy.stats.bootstrap((np.asarray(values, dtype=float),), np.mean, n_resamples=resamples,
                               confidence_level=level, method="percentile", rng=np.random.default_rng(seed),
                               vectorized=True).confidence_interval
    return float(ci.low), float(ci.high)


def paired_interval(a: np.ndarray, b: np.ndarray, seed: int = 0, resamples: int = 2000, level: float = 0.95):
    """Percentile bootstrap interval of mean(a - b) over the same problems (paired)."""
    return bootstrap_interval(a - b, seed, resamples, level)


# Table 3 of the paper (GSM8K accuracy %, GPT-2-Medium), beside the row we read as its analog.
PAPER = {"beam5": ("GPT-2-M, BS=5", 12.2), "finetuned_beam5": ("GPT-2-M fine-tuned, BS=5", 18.3),
         "rounds/keep1": ("GPT-2-M + classifier, BS=1", 16.8), "rounds/keep5": ("GPT-2-M + classifier, BS=5", 20.8)}


def table_rows(records: dict, problems: list[Problem], labels: dict[str, str], seed: int = 0) -> list[dict]:
    """One row per configuration: accuracy % with its bootstrap 95% interval, and the paper's number beside it."""
    rows = []
    for config, label in labels.items():
        values = correctness(records, problems, config)
        lo, hi = bootstrap_interval(values, seed)
        paper_setting, paper = PAPER.get(config, ("", None))
        rows.append({"method": label, "accuracy %": 100 * values.mean(), "95% CI low": 100 * lo,
                     "95% CI high": 100 * hi, "paper %": paper, "paper setting": paper_setting or "-"})
    return rows


def sample_stats(records: dict, problems: list[Problem], n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per problem: (mean correctness of a single sample, whether any of the first n samples is correct)."""
    rows = [records[(p.id, "samples")]["correct"][:n] for p in problems]
    return np.array([np.mean(r) for r in rows]), np.array([float(any(r)) for r in rows])


def accuracy_after_rounds(records: dict, problems: list[Problem], config: str, rounds: int) -> np.ndarray:
    """[problems, rounds] correctness of the best candidate after each round (a loop that stopped early keeps
    its answer for the rounds it did not run)."""
    out = np.zeros((len(problems), rounds))
    for i, p in enumerate(problems):
        flags = records[(p.id, config)]["best_correct_after_round"]
        out[i] = [flags[min(r, len(flags) - 1)] for r in range(rounds)]
    return out


def corrected_examples(records: dict, problems: list[Problem], config: str, k: int = 3) -> list[Problem]:
    """The rule for worked examples: the first k problems (id order) where greedy decoding is wrong and `config`
    is right."""
    return [p for p in problems if not records[(p.id, "greedy")]["correct"] and records[(p.id, config)]["correct"]][:k]
