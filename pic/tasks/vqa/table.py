"""Table 2's rows from per-run accuracies, the paper's numbers beside ours, the claims, and 20's scorer and reference
tables. Every mean ± sd over runs comes from pic.stats (sample sd, ddof = 1)."""
from __future__ import annotations

from typing import Sequence

from pic.stats import beats, summarize
from pic.tasks.vqa import data as vqa
from pic.tasks.vqa.consensus import row_name
from pic.tasks.vqa.experiment import RERANK_ROW

PAPER = {"one scorer": "58.4 (GPT-2 + CLIP-32)", "ensemble": "61.2 (GPT-2 + CLIP-14 + CLIP-multilingual)"}
RETRIEVAL_KEYS = [f"{split}_{g}" for split in ("val", "test") for g in ("objects", "colors", "shapes", "claims")]


def accuracy_table(per_seed: list[dict], kinds: Sequence[str]) -> list[dict]:
    """Accuracy (%) per row: mean and sd over the runs of `overall` and each kind; the mean share unanswerable."""
    keys = ["overall", *kinds]
    out = []
    for r in summarize(per_seed, "row", [*keys, "unanswerable"], scale=100, sd_suffix=" sd"):
        out.append({"row": r["row"], **{c: r[c] for k in keys for c in (k, k + " sd")},
                    "unanswerable": r["unanswerable"]})
    return out


def by_row(table: list[dict]) -> dict[str, dict]:
    return {r["row"]: r for r in table}


def best_single(table: list[dict], names: Sequence[str]) -> str:
    by = by_row(table)
    return max((row_name([n]) for n in names), key=lambda n: by[n]["overall"])


def beside_the_paper(table: list[dict], names: Sequence[str]) -> list[dict]:
    """The paper's one-CLIP and two-CLIP numbers beside our best single scorer and all scorers."""
    by, single, everything = by_row(table), best_single(table, names), row_name(names)

    def ours(row, note):
        return f"{by[row]['overall']:.1f} ± {by[row]['overall sd']:.1f} ({note})"

    return [{"setting": "generator + one scorer", "paper (ActivityNet-QA)": PAPER["one scorer"],
             "ours (easy-VQA)": ours(single, f"best single: {single}")},
            {"setting": "generator + ensemble", "paper (ActivityNet-QA)": PAPER["ensemble"],
             "ours (easy-VQA)": ours(everything, everything)}]


def claims(table: list[dict], per_seed: list[dict], names: Sequence[str]) -> list[dict]:
    """All scorers against each single scorer, the language model alone, the answer-level rerank and the
    sharpest single-scorer control: does the ensemble beat it beyond the spread (pic.stats.beats), and on how
    many runs (same questions and models) is it ahead."""
    by, everything = by_row(table), row_name(names)
    acc = {(r["row"], r["seed"]): r["overall"] for r in per_seed}
    runs = list(dict.fromkeys(r["seed"] for r in per_seed))

    def claim(other, text):
        a, b = by[everything], by[other]
        return {"claim": text, "difference": a["overall"] - b["overall"], "sd sum": a["overall sd"] + b["overall sd"],
                "seeds won": sum(acc[(everything, s)] > acc[(other, s)] for s in runs),
                "holds": beats(a["overall"], a["overall sd"], b["overall"], b["overall sd"])}

    out = [claim(other, f"{everything} beats {other} beyond the seed std")
           for other in [*(row_name([n]) for n in names), "LM alone", RERANK_ROW]]
    sharp = [n for n in by if n.endswith(f"(weight {len(names)})")]
    if sharp:
        best_sharp = max(sharp, key=lambda n: by[n]["overall"])
        out.append(claim(best_sharp, f"{everything} beats the sharpest single control {best_sharp} beyond the seed std"))
    return out


def colour_answers(evaluation, names: Sequence[str]) -> list[dict]:
    """What all scorers together answer to the colour questions of the first run: right, another colour, a shape
    word, or anything else."""
    texts = evaluation.rows[row_name(names)].texts
    colour_q = [(q, t) for q, t in zip(evaluation.questions, texts) if q.kind == "color"]
    outcome = {"right": 0, "another colour": 0, "a shape word": 0, "anything else": 0}
    for q, text in colour_q:
        words = vqa.normalise_answer(text).split() or [""]
        if words == [q.answer]:
            outcome["right"] += 1
        elif words[0] in vqa.COLORS:
            outcome["another colour" if words[0] != q.answer else "anything else"] += 1
        elif words[0] in vqa.SHAPES:
            outcome["a shape word"] += 1
        else:
            outcome["anything else"] += 1
    return [{"answer": k, "questions": v, "share": v / len(colour_q)} for k, v in outcome.items()]


def retrieval_table(rows: list[dict]) -> list[dict]:
    """20's scorers: retrieval accuracy per tower, mean and sd over the model seeds, and its trained parameters."""
    out = summarize(rows, "tower", RETRIEVAL_KEYS)
    for r in out:
        r["params"] = next(x["params"] for x in rows if x["tower"] == r["tower"])
    return out
