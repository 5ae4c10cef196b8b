"""The figures of notebooks 20 and 21 (each returns a matplotlib figure; the notebook saves it via its Report)."""
from __future__ import annotations

import textwrap
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from pic.tasks.vqa.consensus import row_name, scorer_subsets
from pic.tasks.vqa.experiment import REFERENCE_ROW, RERANK_ROW
from pic.tasks.vqa.scorers import TOWERS
from pic.tasks.vqa.table import by_row

SHORT = {REFERENCE_ROW: "supervised", RERANK_ROW: "rerank (all)"}


def training_losses(logs: dict[tuple[str, int], list[float]], seeds: Sequence[int]):
    """Mean caption loss per epoch of each tower and seed (empty panels for checkpoints stored without a log)."""
    fig, axes = plt.subplots(1, len(TOWERS), figsize=(3.2 * len(TOWERS), 2.6), sharey=True)
    for ax, tower in zip(np.atleast_1d(axes), TOWERS):
        for s in seeds:
            losses = logs.get((tower, s), [])
            ax.plot(range(1, len(losses) + 1), losses, marker="o", ms=3, label=f"seed {s}")
        ax.set_title(tower), ax.set_xlabel("epoch")
        if any(logs.get((tower, s)) for s in seeds):
            ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no loss log stored\nwith the checkpoint", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("mean caption loss"), np.atleast_1d(axes)[0].legend(fontsize=7)
    return fig


def examples(evaluation, kinds: Sequence[str], names: Sequence[str]):
    """The first two questions of each kind in the first run's subset (no selection by outcome), with the answer of
    the language model alone, each single scorer, all scorers, the rerank and the reference (green: right, red:
    wrong, grey: unanswerable)."""
    show_rows = ["LM alone", *(row_name([n]) for n in names), row_name(names), RERANK_ROW]
    show_rows += [REFERENCE_ROW] if REFERENCE_ROW in evaluation.rows else []
    questions = evaluation.questions
    picks = []
    for kind in kinds:
        picks += [j for j, q in enumerate(questions) if q.kind == kind][:2]
    fig, axes = plt.subplots(1, len(picks), figsize=(2.3 * len(picks), 4.4))
    for ax, j in zip(np.atleast_1d(axes), picks):
        q = questions[j]
        ax.imshow(evaluation.frames[evaluation.video_of[j], 0].permute(1, 2, 0).numpy())
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(textwrap.fill(q.text, 26) + f"\ngold: {q.answer}", fontsize=7)  # wrapped: titles never meet
        for line, name in enumerate(show_rows):
            answers = evaluation.rows[name]
            pred, text = answers.predictions[j], answers.texts[j]
            colour = "grey" if pred is None else ("green" if pred == q.answer else "red")
            ax.text(0, -0.04 - 0.11 * line, f"{SHORT.get(name, name)}: {text[:14]!s}", transform=ax.transAxes,
                    fontsize=6.5, color=colour, va="top")  # the answers below the image
    fig.subplots_adjust(bottom=0.45)
    return fig


def accuracy_vs_scorers(table: list[dict], kinds: Sequence[str], names: Sequence[str]):
    """Accuracy against the number of scorers (dots: each combination; line: mean per size; bars: the sd)."""
    by = by_row(table)
    fig, axes = plt.subplots(1, 1 + len(kinds), figsize=(3.0 * (1 + len(kinds)), 2.8), sharey=False)
    for ax, k in zip(np.atleast_1d(axes), ["overall", *kinds]):
        sizes, means = [], []
        for size in range(len(names) + 1):
            combos = [row_name(c) for c in scorer_subsets(names) if len(c) == size] if size else ["LM alone"]
            ys = [by[c][k] for c in combos]
            ax.errorbar([size] * len(ys), ys, yerr=[by[c][k + " sd"] for c in combos], fmt="o", ms=4, alpha=0.6,
                        color="C0", capsize=2)
            sizes.append(size), means.append(np.mean(ys))
        ax.plot(sizes, means, "k-", lw=1)
        ax.axhline(by[RERANK_ROW][k], color="C1", ls="--", lw=1, label="rerank (all)")
        if REFERENCE_ROW in by:
            ax.axhline(by[REFERENCE_ROW][k], color="C2", ls=":", lw=1, label="supervised")
        ax.set_title(k), ax.set_xlabel("scorers"), ax.set_xticks(sizes)
    np.atleast_1d(axes)[0].set_ylabel("accuracy (%)"), np.atleast_1d(axes)[0].legend(fontsize=7)
    return fig


def token_refinement(step0: dict, tokenizer, title: str):
    """The language model's, the scorers' and the refined probabilities of the top candidates at one answer
    position (left), and each candidate's refined probability across the gradient steps (right)."""
    order = torch.argsort(step0["target"] + step0["p_lm"], descending=True)[:8].tolist()
    labels = [repr(tokenizer.decode([step0["candidates"][c]])) for c in order]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.0))
    series = {"p_LM": step0["p_lm"], "scorers' target": step0["target"]}
    series.update({f"q, step {it}": q for it, q in enumerate(step0["q"]) if it in (1, len(step0["q"]) - 1)})
    width = 0.8 / len(series)
    for n, (label, p) in enumerate(series.items()):
        a1.bar(np.arange(len(order)) + n * width, [float(p[c]) for c in order], width, label=label)
    a1.set_xticks(np.arange(len(order)) + 0.4 - width / 2, labels, rotation=45, fontsize=7)
    a1.set_ylabel("probability"), a1.legend(fontsize=7), a1.set_title(title, fontsize=8)
    for c, label in zip(order, labels):
        a2.plot(range(len(step0["q"])), [float(q[c]) for q in step0["q"]], marker="o", ms=3, label=label)
    a2.set_xlabel("gradient step on the logit offset (0 = the language model)"), a2.set_ylabel("q(candidate)")
    a2.legend(fontsize=6, ncol=2)
    return fig
