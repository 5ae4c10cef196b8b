"""What 21_visual_qa runs, profile by profile: the generator, the scorers of a model seed, the frames of questions,
the step-size choice on held-out train images, every row of Table 2 per run, and the two refinement variants.

At smoke and local: SmolLM2 (a tiny random Llama at smoke) with the scorers and reference trained by
20_train_vqa_scorers on easy-VQA; at paper: GPT-2-medium and the hub CLIPs on ActivityNet-QA (no reference row).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch

from pic.energy import ComposedEnergy
from pic.lm import PromptedLM, load_causal_lm
from pic.models.text_encoder import FrozenTextEncoder
from pic.optim.token_consensus import ConsensusConfig
from pic.runtime import seed_everything
from pic.tasks.vqa import checkpoints, consensus
from pic.tasks.vqa import data as vqa
from pic.tasks.vqa.activitynet import load_activitynet_qa, load_videos
from pic.tasks.vqa.frame_scorer import FrameTextScorer
from pic.tasks.vqa.reference import predict
from pic.tasks.vqa.scorers import TOWERS, lit_tower
from pic.tasks.vqa.settings import Settings

REFERENCE_ROW = "supervised reference (trained on QA pairs)"
RERANK_ROW = "answer-level rerank, all scorers"


@dataclass
class Setup:
    """The generator, the data and where the scorers come from, for one run of 21."""

    settings: Settings
    lm_model: Any
    tokenizer: Any
    lm: PromptedLM
    test_q: list
    vocabulary: Sequence[str]
    text_encoder: FrozenTextEncoder | None = None  # trained scorers (smoke, local)
    hub_scorers: list[FrameTextScorer] | None = None  # paper

    @property
    def scorer_names(self) -> list[str]:
        return [s.name for s in self.hub_scorers] if self.hub_scorers is not None else list(TOWERS)

    def scorers(self, model_seed: int) -> list[FrameTextScorer]:
        """The scorers of a model seed (the hub CLIPs at paper, whatever the seed)."""
        if self.hub_scorers is not None:
            return self.hub_scorers
        return [checkpoints.load_scorer(t, model_seed, self.text_encoder) for t in TOWERS]

    def frames(self, questions, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
        """(frames [V, F, 3, H, W] of the questions' videos, video index of each question)."""
        videos = list(dict.fromkeys(q.video for q in questions))
        where = {v: i for i, v in enumerate(videos)}
        if self.settings.hub_models:
            frames = load_videos(self.settings.data_root, videos, num_frames=8, size=224)
        else:
            frames = vqa.as_frames(vqa.load_images(split, videos))
        return frames, torch.tensor([where[q.video] for q in questions])

    def reference(self, model_seed: int, questions, frames, video_of) -> consensus.Answers | None:
        """The supervised reference's answers (None at paper: there is none)."""
        if self.hub_scorers is not None:
            return None
        model, ref_vocab = checkpoints.load_reference(model_seed)
        features = lit_tower()(frames[:, 0])
        preds = predict(model, features, self.text_encoder.encode([q.text for q in questions]), video_of, ref_vocab)
        return consensus.Answers(preds, preds)

    def test_subset(self, i: int) -> list:
        """Run i's test questions: a subset of per_kind questions of each kind drawn with seed + i (all of them
        when per_kind is None)."""
        s = self.settings
        if s.per_kind is None:
            return list(self.test_q)
        return [self.test_q[j] for j in vqa.stratified_subset(self.test_q, s.per_kind, seed=s.seed + i)]

    def kinds(self, per_seed: list[dict]) -> list[str]:
        """The question kinds the table reports, in order."""
        if self.settings.hub_models:
            return sorted({q.kind for q in self.test_q})
        return [k for k in vqa.KINDS if any(r.get(k) is not None for r in per_seed)]

    def config(self, step_size: float, variant: str = "logits") -> ConsensusConfig:
        return ConsensusConfig(top_k=self.settings.top_k, step_size=step_size, variant=variant,
                               max_new_tokens=self.settings.max_new_tokens)


def load(settings: Settings) -> Setup:
    """Seeds everything with the experiment's seed, refuses model seeds without committed checkpoints (before any
    work), then loads the generator and the test questions. paper: offline this stops at once, naming every hub
    id it needs."""
    seed_everything(settings.seed)
    if settings.hub_models:
        lm_model, tokenizer, hub_scorers = consensus.load_paper_models()
        test_q = load_activitynet_qa(settings.data_root, "test")
        setup = Setup(settings, lm_model, tokenizer, None, test_q, sorted({q.answer for q in test_q}),
                      hub_scorers=hub_scorers)
    else:
        checkpoints.check_seeds(settings.model_seeds)
        lm_model, tokenizer = load_causal_lm(settings.profile)  # smoke: a tiny random Llama, SmolLM2's tokenizer
        text_encoder = FrozenTextEncoder()
        test_q = vqa.load_questions("test")
        vocabulary = vqa.answer_vocabulary()
        # the frozen EfficientNet features of every test image, computed (or read from the cache) once, in the
        # batches 20_train_vqa_scorers used, so a fresh machine gets the same numbers as the committed run
        lit_tower()(vqa.as_frames(vqa.load_images("test"))[:, 0])
        setup = Setup(settings, lm_model, tokenizer, None, test_q, vocabulary, text_encoder=text_encoder)
    vqa.check_answers(setup.test_q, set(setup.vocabulary))
    setup.lm = consensus.prompted_lm(setup.lm_model, setup.tokenizer)
    return setup


def choose_step_size(setup: Setup) -> tuple[list[dict], float]:
    """(accuracy per step size, the best) on questions about the 500 train images 20_train_vqa_scorers held out,
    with the scorers of the first model seed; at paper nothing is tuned: ([], ZeroCap's step size)."""
    s = setup.settings
    if s.hub_models:
        return [], ConsensusConfig().step_size
    train_q = vqa.load_questions("train")
    _, holdout = vqa.holdout_images(vqa.image_count("train"), 500, seed=0)  # as 20_train_vqa_scorers held out
    holdout = set(holdout)
    pool = [q for q in train_q if q.video in holdout]
    val_q = [pool[i] for i in vqa.stratified_subset(pool, s.val_per_kind, seed=0)]
    scorers = setup.scorers(s.model_seeds[0])
    frames, video_of = setup.frames(val_q, "train")
    embeddings = consensus.question_video_embeddings(scorers, frames, video_of)
    energy = ComposedEnergy(scorers)
    tuning = []
    for step in s.step_sizes:
        answers, _ = consensus.answer_by_consensus(setup.lm, val_q, energy, embeddings, setup.vocabulary,
                                                   setup.config(step))
        tuning.append({"step_size": step, **vqa.accuracy_by_kind(answers.predictions, val_q)})
    return tuning, max(tuning, key=lambda r: r["overall"])["step_size"]


@dataclass
class Evaluation:
    per_seed: list[dict]  # per run and row: {"row", "seed" (the subset's), "model_seed", accuracy by kind}
    questions: list  # one run's (evaluate: the first run's) questions, frames, video index, answers per row
    frames: torch.Tensor
    video_of: torch.Tensor
    rows: dict[str, consensus.Answers]


def evaluate(setup: Setup, config: ConsensusConfig, log: Callable[[str], None] = print) -> Evaluation:
    """Every row of Table 2 for each run (evaluate_run): the first run's questions and answers, every run's
    accuracies."""
    first, per_seed = None, []
    for i in range(setup.settings.n_seeds):
        run = evaluate_run(setup, config, i, log)
        per_seed += run.per_seed
        if first is None:
            first = run
    return replace(first, per_seed=per_seed)


def evaluate_run(setup: Setup, config: ConsensusConfig, i: int,
                 log: Callable[[str], None] | None = print) -> Evaluation:
    """Every row of Table 2 for run i: its own test subset (drawn with seed + i) and the scorers and reference of
    model_seeds[i]. The unit of work of the notebook's loop and of `python -m pic.evaluate vqa` (its seeds derive
    from i, never from a rank)."""
    s = setup.settings
    model_seed, subset_seed = s.model_seeds[i], s.seed + i
    questions = setup.test_subset(i)
    scorers = setup.scorers(model_seed)
    frames, video_of = setup.frames(questions)
    embeddings = consensus.question_video_embeddings(scorers, frames, video_of)
    rows = consensus.answer_all_rows(setup.lm, questions, scorers, embeddings, setup.vocabulary, config,
                                     s.n_rerank, sharpened=len(scorers))
    reference = setup.reference(model_seed, questions, frames, video_of)
    if reference is not None:
        rows[REFERENCE_ROW] = reference
    per_seed = [{"row": name, "seed": subset_seed, "model_seed": model_seed,
                 **vqa.accuracy_by_kind(answers.predictions, questions)} for name, answers in rows.items()]
    if log:
        log(f"run {i} (test subset seed {subset_seed}, model seed {model_seed}): {len(questions)} questions, "
            f"{len(rows)} rows")
    return Evaluation(per_seed, questions, frames, video_of, rows)


def trace_answer(setup: Setup, evaluation: Evaluation, config: ConsensusConfig, kinds: Sequence[str]):
    """(question index, its refinement trace at the first answer position, the traced decoding) of the first
    colour question (else the first of kinds[0]) in the first run's subset, all scorers of the first model seed:
    chosen by position, not by outcome."""
    kind = "color" if "color" in kinds else kinds[0]
    questions = evaluation.questions
    j = next(j for j, q in enumerate(questions) if q.kind == kind)
    scorers = setup.scorers(setup.settings.model_seeds[0])
    embeddings = consensus.question_video_embeddings(scorers, evaluation.frames, evaluation.video_of)
    _, traced = consensus.answer_by_consensus(setup.lm, questions, ComposedEnergy(scorers), embeddings,
                                              setup.vocabulary, config, trace_rows=[j])
    step0 = next(t for t in traced.trace if t["row"] == j and t["position"] == 0)
    return j, step0, traced


def compare_variants(setup: Setup, evaluation: Evaluation, step_size: float) -> list[dict]:
    """Logit offset vs key/value context on kv_per_kind questions per kind of the first run, all scorers of the
    first model seed: accuracy and seconds per question (each with a fresh generator: no memoised proposals)."""
    s = setup.settings
    if not s.kv_per_kind:
        return []
    small = [evaluation.questions[i] for i in vqa.stratified_subset(evaluation.questions, s.kv_per_kind, seed=s.seed)]
    scorers = setup.scorers(s.model_seeds[0])
    energy = ComposedEnergy(scorers)
    frames, video_of = setup.frames(small)
    embeddings = consensus.question_video_embeddings(scorers, frames, video_of)
    variants = []
    for variant in ("logits", "kv"):
        fresh = consensus.prompted_lm(setup.lm_model, setup.tokenizer)
        start = time.perf_counter()
        answers, _ = consensus.answer_by_consensus(fresh, small, energy, embeddings, setup.vocabulary,
                                                   setup.config(step_size, variant))
        seconds = time.perf_counter() - start
        variants.append({"variant": variant, "step_size": step_size, "questions": len(small),
                         **vqa.accuracy_by_kind(answers.predictions, small), "seconds_per_question": seconds / len(small)})
    return variants


def first_run_accuracy(setup: Setup, evaluation: Evaluation, config: ConsensusConfig,
                       weights: dict[str, float]) -> dict:
    """Accuracy by kind of token-level consensus on the first run's questions with the scorers of the first model
    seed named in `weights`, each at its weight (a scorer left out is not used): the exercises' what-ifs. With
    every weight 1 it answers as the table's all-scorer row of that run."""
    scorers = setup.scorers(setup.settings.model_seeds[0])
    unknown = sorted(set(weights) - {s.name for s in scorers})
    if unknown or not weights:
        raise ValueError(f"weights {weights} must name one or more of the scorers {[s.name for s in scorers]}")
    used = [s for s in scorers if s.name in weights]
    embeddings = consensus.question_video_embeddings(used, evaluation.frames, evaluation.video_of)
    answers, _ = consensus.answer_by_consensus(setup.lm, evaluation.questions,
                                               ComposedEnergy([(s, weights[s.name]) for s in used]), embeddings,
                                               setup.vocabulary, config)
    return vqa.accuracy_by_kind(answers.predictions, evaluation.questions)
