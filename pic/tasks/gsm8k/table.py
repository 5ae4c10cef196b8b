"""Table 3: the paper's numbers, the row type, and the statistics every GSM8K table prints (all from pic.stats).

Accuracy rows carry a percentile-bootstrap 95% interval over problems; comparisons carry the paired interval of
the difference on the same problems, with the problems won and lost.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pic.stats import bootstrap_interval, paired_interval

# Table 3 of the paper (GSM8K accuracy %, GPT-2-Medium 355M), keyed by the configuration we read as its analog.
PAPER = {"beam5": ("GPT-2-M, BS=5", 12.2), "finetuned_beam5": ("GPT-2-M fine-tuned, BS=5", 18.3),
         "rounds/keep1": ("GPT-2-M + classifier, BS=1", 16.8), "rounds/keep5": ("GPT-2-M + classifier, BS=5", 20.8)}
PAPER_CLAIM = 7.5  # "+7.5 points on grade-school math" (the abstract), PIC BS=5 over fine-tuned BS=5 ... analog


@dataclass(frozen=True)
class Row:
    """One row of an accuracy table: accuracy % with its bootstrap 95% interval, and the paper's number beside it
    when the row has an analog there."""

    method: str
    accuracy: float
    low: float
    high: float
    paper: float | None = None
    paper_setting: str = "-"

    def as_dict(self) -> dict:
        d = asdict(self)
        return {"method": d["method"], "accuracy %": d["accuracy"], "95% CI low": d["low"], "95% CI high": d["high"],
                "paper %": d["paper"], "paper setting": d["paper_setting"]}


def correctness(records: dict, problems, config: str) -> np.ndarray:
    """[problems] 1.0 where the configuration's answer is right."""
    return np.array([bool(records[(p.id, config)]["correct"]) for p in problems], dtype=float)


def accuracy_row(method: str, values, seed: int = 0, paper_key: str | None = None) -> dict:
    values = np.asarray(values, dtype=float)
    lo, hi = bootstrap_interval(values, seed)
    setting, paper = PAPER.get(paper_key, ("-", None)) if paper_key else ("-", None)
    return Row(method, 100 * values.mean(), 100 * lo, 100 * hi, paper, setting).as_dict()


def table_rows(records: dict, problems, labels: dict[str, str], seed: int = 0) -> list[dict]:
    """One row per configuration (labels: config -> method name), with the paper's number where it has one."""
    return [accuracy_row(label, correctness(records, problems, config), seed, config) for config, label in
            labels.items()]


def paired_row(name: str, a, b, seed: int = 0) -> dict:
    """mean(a - b) in points with its paired bootstrap 95% interval, and the problems each side alone solves."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    lo, hi = paired_interval(a, b, seed)
    return {"comparison": name, "difference (points)": 100 * (a - b).mean(), "95% CI low": 100 * lo,
            "95% CI high": 100 * hi, "problems won": int((a > b).sum()), "problems lost": int((a < b).sum())}


def paired_rows(records: dict, problems, pairs, labels: dict[str, str], seed: int = 0) -> list[dict]:
    return [paired_row(f"{labels[a]}  minus  {labels[b]}", correctness(records, problems, a),
                       correctness(records, problems, b), seed) for a, b in pairs]


def verdicts(paired: list[dict]) -> list[str]:
    """'lifts' / 'lowers' / 'no significant difference' for each paired row (its interval against 0)."""
    out = []
    for r in paired:
        verdict = "lifts" if r["95% CI low"] > 0 else "lowers" if r["95% CI high"] < 0 else "no significant difference:"
        out.append(f"{verdict:>27}  {r['comparison']}  ({r['difference (points)']:+.1f} points)")
    return out
