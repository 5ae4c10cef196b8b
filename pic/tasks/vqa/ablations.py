"""Table 2's ablations for 60_ablations: accuracy against token-consensus iterations per answer token, every subset
of the scorers, and whether consensus helps most on the questions where the scorers disagree.

Reuses 21's generator, committed scorers (one run per model seed, each on its own stratified test subset) and its
step-size choice on held-out train questions (with fewer questions than 21). The language model's proposals are
memoised across configurations (pic.lm.PromptedLM), so every configuration sees the same candidates.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from pic.energy import ComposedEnergy
from pic.report import profile_settings
from pic.stats import beats, disagreement, summarize
from pic.tasks.vqa import consensus, experiment
from pic.tasks.vqa import settings as vqa_settings
from pic.tasks.vqa.consensus import statement

PROFILES = {
    "smoke": dict(per_kind=4, val_per_kind=2, step_sizes=(1.0,), iterations=(0, 1, 5)),
    "local": dict(per_kind=60, val_per_kind=30, step_sizes=(0.5, 1.0, 1.5), iterations=(0, 1, 2, 3, 5, 10)),
}


@dataclass
class Run:
    """One model seed's scorers and test subset."""

    model_seed: int
    subset_seed: int
    questions: list
    scorers: list
    embeddings: dict[str, torch.Tensor]

    @property
    def energy(self) -> ComposedEnergy:
        return ComposedEnergy(self.scorers)


@dataclass
class Ablation:
    settings: dict
    setup: experiment.Setup
    step_size: float
    runs: list[Run]

    @property
    def names(self) -> list[str]:
        return self.setup.scorer_names

    def answer(self, run: Run, energy: ComposedEnergy | None, iterations: int | None = None) -> np.ndarray:
        """Whether each of the run's questions is answered right (token consensus; energy None: the LM alone)."""
        config = self.setup.config(self.step_size)
        if iterations is not None:
            config = replace(config, iterations=iterations)
        answers, _ = consensus.answer_by_consensus(self.setup.lm, run.questions, energy, run.embeddings,
                                                   self.setup.vocabulary, config)
        return np.array([p == q.answer for p, q in zip(answers.predictions, run.questions)])


def load(profile: str, seed: int = 0) -> Ablation:
    """21's setup at the profile with fewer questions per kind, the step size chosen on held-out train questions,
    and each model seed's run."""
    settings = profile_settings(profile, PROFILES)
    base = vqa_settings.load(profile, seed, per_kind=settings["per_kind"])
    setup = experiment.load(replace(base, val_per_kind=settings["val_per_kind"], step_sizes=settings["step_sizes"]))
    _, step_size = experiment.choose_step_size(setup)
    runs = []
    for i, model_seed in enumerate(base.model_seeds):
        questions = setup.test_subset(i)
        scorers = setup.scorers(model_seed)
        frames, video_of = setup.frames(questions)
        runs.append(Run(model_seed, seed + i, questions, scorers,
                        consensus.question_video_embeddings(scorers, frames, video_of)))
    return Ablation({**settings, "model_seeds": base.model_seeds, "top_k": base.top_k}, setup, step_size, runs)


def iteration_rows(ab: Ablation) -> list[dict]:
    """Accuracy of all scorers per number of refinement iterations per token (0: the language model's own choice
    among its candidates; 21 uses ZeroCap's 5), per run."""
    return [{"iterations": it, "model_seed": run.model_seed, "accuracy": float(ab.answer(run, run.energy, it).mean())}
            for it in ab.settings["iterations"] for run in ab.runs]


def subset_rows(ab: Ablation) -> list[dict]:
    """Accuracy of the language model alone and of every non-empty subset of the scorers, per run."""
    subsets = [()] + consensus.scorer_subsets(ab.names)
    return [{"scorers": " + ".join(s) or "LM alone", "n_scorers": len(s), "model_seed": run.model_seed,
             "accuracy": float(ab.answer(run, run.energy.subset(s) if s else None).mean())}
            for s in subsets for run in ab.runs]


def scorer_disagreement(ab: Ablation, run: Run) -> np.ndarray:
    """Per question: pic.stats.disagreement of the scorers' energies of the language model's top-k first answer
    tokens (the statements each candidate makes)."""
    lm, k = ab.setup.lm, ab.settings["top_k"]
    prompts = [lm.prompt_ids(q.text) for q in run.questions]
    _, ids = lm.top_k(prompts, [len(p) for p in prompts], k)
    statements = [statement(q.text, lm.decode_tokens([int(t)])) for q, row in zip(run.questions, ids) for t in row]
    energies = run.energy(statements, question_index=torch.arange(len(prompts)).repeat_interleave(k),
                          video_embeddings=run.embeddings)
    per_scorer = {n: e.view(len(prompts), k).numpy() for n, e in energies.terms.items()}
    return np.array([disagreement({n: e[b] for n, e in per_scorer.items()}) for b in range(len(prompts))])


def disagreement_rows(ab: Ablation) -> list[dict]:
    """Per question of every run: the scorers' disagreement, and whether all scorers together and each scorer
    alone answer it right (the rows pic.stats.by_disagreement bins)."""
    rows = []
    for run in ab.runs:
        together = ab.answer(run, run.energy)
        alone = {n: ab.answer(run, run.energy.subset([n])) for n in ab.names}
        for j, d in enumerate(scorer_disagreement(ab, run)):
            rows.append({"model_seed": run.model_seed, "question": j, "kind": run.questions[j].kind,
                         "disagreement": float(d), "consensus_right": bool(together[j]),
                         **{f"{n}_right": bool(alone[n][j]) for n in ab.names}})
    return rows


def summary(rows: list[dict], by: str | list[str]) -> list[dict]:
    """Mean and sd of the accuracy over runs (model seeds), per configuration."""
    return summarize(rows, [by] if isinstance(by, str) else by, ["accuracy"])


def claims(iterations: list[dict], subsets: list[dict], correlation: dict) -> list[dict]:
    """What the Table 2 ablations check; `iterations` and `subsets` are summaries over runs."""
    zero, zerocap = iterations[0], next(r for r in iterations if r["iterations"] == 5)
    full = max(subsets, key=lambda r: r["n_scorers"])
    best_single = max((r for r in subsets if r["n_scorers"] == 1), key=lambda r: r["accuracy"])
    return [
        {"claim": "all scorers: 5 refinement iterations per token (ZeroCap's) beat none beyond the spread",
         "holds": beats(zerocap["accuracy"], zerocap["accuracy_sd"], zero["accuracy"], zero["accuracy_sd"]),
         "none": zero["accuracy"], "five": zerocap["accuracy"]},
        {"claim": f"all scorers beat the best single one ({best_single['scorers']}) beyond the spread",
         "holds": beats(full["accuracy"], full["accuracy_sd"], best_single["accuracy"], best_single["accuracy_sd"]),
         "all": full["accuracy"], "best_single": best_single["accuracy"]},
        {"claim": "consensus gains more over a single scorer where the scorers disagree (rank correlation > 0, its "
                  "95% interval above 0)", "holds": correlation["low"] > 0, "rho": correlation["rho"],
         "low": correlation["low"], "high": correlation["high"]},
    ]
