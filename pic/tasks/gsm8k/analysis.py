"""What the GSM8K notebooks read from their records: table rows, paired comparisons, the claims they check, curves
and worked examples (every interval from pic.stats, through pic.tasks.gsm8k.table)."""
from __future__ import annotations

import numpy as np

from pic.energy import ComposedEnergy
from pic.optim import select_argmin
from pic.stats import bootstrap_interval
from pic.tasks.gsm8k.across_models import is_right, oracle, pool_of
from pic.tasks.gsm8k.data import Problem
from pic.tasks.gsm8k.table import PAPER, accuracy_row, correctness, paired_row
from pic.tasks.gsm8k.weights import argmin_correct

# ---------------------------------------------------------------- 31 and 33: selections re-run from the records


def recorded_energies(records: dict, problems: list[Problem], scorers: list[str],
                      pool: str = "samples") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per problem, the [candidates, scorers] energies recorded for its candidates (the "samples" records of 31, the
    "pool" records of 33), scorers in the given order, and the [candidates] correctness of those candidates."""
    energies, correct = [], []
    for p in problems:
        r = records[(p.id, pool)]
        missing = [s for s in scorers if s not in r["energies"]]
        if missing:
            raise KeyError(f"the {pool!r} records hold energies of {sorted(r['energies'])}, not of {missing}")
        energies.append(np.array([r["energies"][s] for s in scorers], dtype=float).T)
        correct.append(np.array(r["correct"], dtype=float))
    return energies, correct


def reselect(records: dict, problems: list[Problem], weights: dict[str, float], pool: str = "samples") -> np.ndarray:
    """[problems] 1.0 where the candidate of lowest sum_n w_n E_n over the recorded energies is right: a one-round
    selection re-run with other weights (a scorer left out of `weights` weighs 0), without a model call."""
    names = list(weights)
    energies, correct = recorded_energies(records, problems, names, pool)
    return argmin_correct(energies, correct, np.array([weights[n] for n in names], dtype=float))[:, 0]


# ---------------------------------------------------------------- notebook 31: the paper-analog rows


def paper_analog_labels(n: int, rounds: int) -> dict[str, str]:
    return {
        "greedy": "greedy decoding (BS=1)",
        "beam5": "beam search (BS=5)",
        "finetuned_beam5": "fine-tuned (LoRA), beam search (BS=5)",
        f"select/lm@{n}": f"{n} samples + LM-likelihood rerank",
        f"select/agreement@{n}": f"{n} samples + self-consistency vote (agreement alone)",
        f"select/calculator@{n}": f"{n} samples + calculator alone",
        f"select/verifier@{n}": f"{n} samples + verifier alone",
        f"select/all@{n}": f"PIC, all scorers, 1 round ({n} samples)",
        "rounds/keep1": f"PIC, all scorers, {rounds} rounds, keep 1 (BS=1 analog)",
        "rounds/keep5": f"PIC, all scorers, {rounds} rounds, keep 5 (BS=5 analog)",
    }


def paper_analog_pairs(n: int) -> list[tuple[str, str]]:
    return [("rounds/keep5", "greedy"), ("rounds/keep1", "greedy"), (f"select/all@{n}", "greedy"),
            (f"select/all@{n}", f"select/agreement@{n}"), (f"select/all@{n}", f"select/verifier@{n}"),
            ("rounds/keep5", f"select/all@{n}"), ("finetuned_beam5", "beam5")]


def sample_stats(records: dict, problems: list[Problem], n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per problem: (mean correctness of a single sample, whether any of the first n samples is correct)."""
    rows = [records[(p.id, "samples")]["correct"][:n] for p in problems]
    return np.array([np.mean(r) for r in rows]), np.array([float(any(r)) for r in rows])


def paper_analog_rows(records: dict, problems: list[Problem], labels: dict[str, str], seed: int = 0) -> list[dict]:
    """Table 3's paper-analog rows, then one sample (the mean over the samples) and the any-of-n oracle."""
    rows = [accuracy_row(label, correctness(records, problems, c), seed, c) for c, label in labels.items()]
    single, any_right = sample_stats(records, problems)
    n = len(records[(problems[0].id, "samples")]["correct"])
    rows.append(accuracy_row(f"one sample (mean over the {n})", single, seed))
    rows.append(accuracy_row(f"oracle: any of the {n} samples correct", any_right, seed))
    return rows


def accuracy_after_rounds(records: dict, problems: list[Problem], config: str, rounds: int) -> np.ndarray:
    """[problems, rounds] correctness of the best candidate after each round (a loop that stopped early keeps
    its answer for the rounds it did not run)."""
    out = np.zeros((len(problems), rounds))
    for i, p in enumerate(problems):
        flags = records[(p.id, config)]["best_correct_after_round"]
        out[i] = [flags[min(r, len(flags) - 1)] for r in range(rounds)]
    return out


def curve_with_interval(values: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Column means of [items, points] in % and their bootstrap 95% intervals [points, 2] in %."""
    return 100 * values.mean(0), 100 * np.array([bootstrap_interval(values[:, j], seed) for j in
                                                 range(values.shape[1])])


def corrected_examples(records: dict, problems: list[Problem], configs: list[str], k: int = 3):
    """The rule for worked examples: the first k problems (id order) where greedy decoding is wrong and a PIC
    row is right, each with the first of `configs` that is right there."""
    out = []
    for p in problems:
        if records[(p.id, "greedy")]["correct"]:
            continue
        right = [c for c in configs if records[(p.id, c)]["correct"]]
        if right:
            out.append((p, right[0]))
    return out[:k]


# ---------------------------------------------------------------- notebook 32: the consensus across models


def across_labels(proposers: list[str], scorers: list[str], rounds: int) -> dict[str, str]:
    labels = {f"greedy/{p}": f"{p} alone, greedy" for p in proposers}
    labels |= {f"vote/{p}": f"{p} alone, self-consistency vote over its own pool" for p in proposers}
    labels |= {f"select/{s}": f"{s} alone over the joint pool" for s in scorers}
    return labels | {"pic/1": "PIC (weights from train), 1 round",
                     f"pic/{rounds}": f"PIC (weights from train), {rounds} rounds"}


def strongest_proposer(records: dict, problems: list[Problem], proposers: list[str]) -> str:
    """The proposer whose greedy solutions are right most often (the first one on a tie)."""
    scores = [correctness(records, problems, f"greedy/{p}").mean() for p in proposers]
    return proposers[int(np.argmax(scores))]


def across_rows(records: dict, problems: list[Problem], labels: dict[str, str], proposers: list[str],
                seed: int = 0) -> list[dict]:
    """The cross-model table, then the any-of-N oracles (each proposer's pool, and the joint pool)."""
    rows = [accuracy_row(label, correctness(records, problems, c), seed) for c, label in labels.items()]
    n = {p: sum(c["proposer"] == p for c in records[(problems[0].id, "pool")]["candidates"]) for p in proposers}
    for p in proposers:
        rows.append(accuracy_row(f"oracle: any of {p}'s {n[p]} candidates right", oracle(records, problems, [p]),
                                 seed))
    rows.append(accuracy_row(f"oracle: any of the {sum(n.values())} candidates right", oracle(records, problems),
                             seed))
    return [{k: v for k, v in r.items() if not k.startswith("paper")} for r in rows]  # no paper analog per row


def pic_configs(rounds: int) -> list[str]:
    return ["pic/1", f"pic/{rounds}"]


def best_pic(records: dict, problems: list[Problem], rounds: int) -> str:
    scores = [correctness(records, problems, c).mean() for c in pic_configs(rounds)]
    return pic_configs(rounds)[int(np.argmax(scores))]


def across_pairs(records, problems, labels, proposers, scorers, rounds, seed: int = 0) -> list[dict]:
    """Paired differences on the same problems: each PIC row against greedy of the strongest proposer, the best
    PIC row against each proposer's vote and each single scorer."""
    strongest = f"greedy/{strongest_proposer(records, problems, proposers)}"
    best = best_pic(records, problems, rounds)
    pairs = [(c, strongest) for c in pic_configs(rounds)] + [(best, f"vote/{p}") for p in proposers]
    pairs += [(best, f"select/{s}") for s in scorers]
    return [paired_row(f"{labels[a]}  minus  {labels[b]}", correctness(records, problems, a),
                       correctness(records, problems, b), seed) for a, b in pairs]


def across_claims(records, problems, proposers, scorers, rounds, seed: int = 0) -> list[dict]:
    """The issue's bars, each a claim with its numbers."""
    strongest = f"greedy/{strongest_proposer(records, problems, proposers)}"
    best = best_pic(records, problems, rounds)
    a, g = correctness(records, problems, best), correctness(records, problems, strongest)
    diff = paired_row("", a, g, seed)
    singles = {s: 100 * correctness(records, problems, f"select/{s}").mean() for s in scorers}
    best_single = max(singles, key=singles.get)
    return [
        {"claim": f"at least 150 test problems", "holds": len(problems) >= 150, "problems": len(problems)},
        {"claim": f"the best PIC row ({best}) is >= greedy of the strongest proposer ({strongest}) + 5 points",
         "holds": diff["difference (points)"] >= 5, "PIC %": 100 * a.mean(), "greedy %": 100 * g.mean(),
         "difference": diff["difference (points)"]},
        {"claim": "its paired 95% interval against that greedy lies above 0", "holds": diff["95% CI low"] > 0,
         "CI low": diff["95% CI low"], "CI high": diff["95% CI high"]},
        {"claim": "it is above every single-scorer row on the same pool",
         "holds": 100 * a.mean() > max(singles.values()), "PIC %": 100 * a.mean(),
         f"best single ({best_single}) %": singles[best_single]},
    ]


def paper_beside(records, problems, proposers, rounds) -> list[dict]:
    """The composition's gain over its parts, ours beside the paper's (Table 3: GPT-2-M + classifier over beam
    search of the same generator)."""
    strongest = f"greedy/{strongest_proposer(records, problems, proposers)}"
    best = best_pic(records, problems, rounds)
    ours = 100 * (correctness(records, problems, best).mean() - correctness(records, problems, strongest).mean())
    return [{"setting": "paper: GPT-2-M + classifier BS=5 minus GPT-2-M BS=5", "gain (points)":
             PAPER["rounds/keep5"][1] - PAPER["beam5"][1]},
            {"setting": "paper: GPT-2-M + classifier BS=1 minus GPT-2-M BS=5", "gain (points)":
             PAPER["rounds/keep1"][1] - PAPER["beam5"][1]},
            {"setting": "paper's abstract: PIC on grade-school math", "gain (points)": 7.5},
            {"setting": f"ours: {best} minus {strongest} ({len(problems)} test problems)", "gain (points)": ours}]


def accuracy_vs_candidates(records: dict, problems: list[Problem], energy: ComposedEnergy, proposers: list[str],
                           sizes: list[int]) -> dict[str, np.ndarray]:
    """[problems, sizes] correctness of PIC (all scorers) and of each proposer's vote when each proposer brings
    only its greedy solution and its first size-1 samples (rescored from the records: no model call)."""
    out = {"PIC": np.zeros((len(problems), len(sizes)))} | {p: np.zeros((len(problems), len(sizes))) for p in
                                                             proposers}
    for i, p in enumerate(problems):
        pool = pool_of(records, p)
        for j, k in enumerate(sizes):
            sub = [c for q in proposers for c in [c for c in pool if c.proposer == q][:k]]
            out["PIC"][i, j] = is_right(select_argmin(sub, energy, question=p.question).candidate, p)
            for q in proposers:
                own = [c for c in sub if c.proposer == q]
                votes = [c.answer for c in own]
                top = max(votes, key=lambda a: (a is not None, votes.count(a)))  # first most frequent answer
                out[q][i, j] = top is not None and is_right(own[votes.index(top)], p)
    return out


def cross_model_examples(records: dict, problems: list[Problem], strongest: str, config: str, k: int = 3):
    """The rule for worked examples: the first k problems (id order) where the strongest proposer's greedy
    answer is wrong and `config` is right, those where a candidate of *another* model gives the chosen answer
    first, then those where the chosen answer's backing comes from the same model. Each as (problem, chosen
    record, the first other candidate with the chosen answer, whether it is of another model)."""
    across, within = [], []
    for p in problems:
        chosen = records[(p.id, config)]
        if records[(p.id, f"greedy/{strongest}")]["correct"] or not chosen["correct"]:
            continue
        pool = pool_of(records, p)
        others = [c for c in pool if c.proposer != chosen["proposer"] and c.answer == chosen["answer"]]
        same = [c for c in pool if c.proposer == chosen["proposer"] and c.answer == chosen["answer"]
                and c.text != chosen["text"]]
        if others:
            across.append((p, chosen, others[0], True))
        elif same:
            within.append((p, chosen, same[0], False))
    return (across + within)[:k]
