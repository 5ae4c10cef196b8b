"""The scorers of a GSM8K solution, each a gradient-free energy (lower = better) over a list of candidate
solutions, with the question in the context:

  lm               a language model's length-normalised log-likelihood of the solution, E = -mean token log p
                   (the proposing model's own, recorded while sampling; standardised per proposer when given);
  calculator       the calculator's evidence on the arithmetic steps (pic.tasks.gsm8k.calculator): 0 with no
                   checkable step, towards -1/2 as steps check, towards +1/2 as they fail; programs are neutral;
  execution        the program-execution check (pic.tasks.gsm8k.program): 0 when the program runs in the
                   whitelisted interpreter and returns a whole number, 1/2 for a fraction (GSM8K answers are whole
                   numbers), 1 when refused; chain-of-thought solutions are neutral;
  agreement        the share of the same proposer's candidates whose final answer differs (self-consistency);
  cross_agreement  the share of the *other* proposers' candidates whose final answer differs (agreement across
                   models);
  verifier         a question-solution classifier on frozen MiniLM embeddings (the paper's classifier),
                   E = -log p(correct).

Candidates are pic.tasks.gsm8k.proposers.Candidate objects, pic.lm.Continuation objects (text, tokens, recorded
log-probabilities) or plain strings; the last two are chain-of-thought solutions of one proposer.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from pic.energy import ComposedEnergy, Scorer
from pic.lm import continuation_logprobs
from pic.tasks.gsm8k.data import final_answer
from pic.tasks.gsm8k.calculator import calculator_energy

EMPTY_LM_ENERGY = 20.0  # an empty solution: worse than any text, even a uniform guess over 50k tokens (10.8)
EMPTY_TEXT = "(no solution)"  # what the verifier reads for an empty solution


def text_of(candidate) -> str:
    return candidate if isinstance(candidate, str) else candidate.text


def answer_of(candidate) -> float | None:
    """A candidate's final answer: its own (a program's result) when it carries one, else the `####` line's."""
    return candidate.answer if hasattr(candidate, "answer") else final_answer(text_of(candidate))


def proposer_of(candidate) -> str:
    return getattr(candidate, "proposer", "")


def format_of(candidate) -> str:
    """"pot" for a program, "cot" for a chain of thought (plain strings and continuations are)."""
    return "pot" if proposer_of(candidate).endswith("/pot") else "cot"


def _questions(question, n: int, scorer: str) -> list[str]:
    if question is None:
        raise ValueError(f"scorer '{scorer}' needs the `question` in the context")
    questions = [question] * n if isinstance(question, str) else list(question)
    if len(questions) != n:
        raise ValueError(f"scorer '{scorer}' got {len(questions)} questions for {n} solutions")
    return questions


class LMLikelihood(Scorer):
    """E = -(1/T) sum_t log p(token_t | prompt, tokens before): the generator's view of its own solution.

    Uses the log-probabilities recorded while sampling; strings (or continuations without them) are scored by
    teacher forcing after `prompt(question)`."""

    name, differentiable = "lm", False

    def __init__(self, model, tokenizer, prompt: Callable[[str], str]):
        self.model, self.tokenizer, self.prompt = model, tokenizer, prompt

    def energy(self, x, question=None, **context):
        questions = _questions(question, len(x), self.name)
        energies = [None if isinstance(c, str) or not c.logprobs else -c.mean_logprob for c in x]
        todo = [i for i, e in enumerate(energies) if e is None and text_of(x[i]).strip()]
        if todo:
            sums, counts = continuation_logprobs(self.model, self.tokenizer, [self.prompt(questions[i]) for i in todo],
                                                 [" " + text_of(x[i]).lstrip() for i in todo])
            for i, s, c in zip(todo, sums.tolist(), counts.tolist()):
                energies[i] = -s / max(c, 1)
        return torch.tensor([EMPTY_LM_ENERGY if e is None else e for e in energies], dtype=torch.float32)


class CalculatorScorer(Scorer):
    """E = (wrong steps + 1) / (steps + 2) - 1/2 for a chain of thought (0 when no step can be checked: no
    evidence is neutral, not worst); 0 for a program."""

    name, differentiable = "calculator", False

    def energy(self, x, **context):
        return torch.tensor([calculator_energy(text_of(c)) if format_of(c) == "cot" else 0.0 for c in x],
                            dtype=torch.float32)


class ExecutionCheck(Scorer):
    """E = 0 for a program that runs and returns a whole number, 1/2 for a fraction, 1 for a refused program (no
    answer); 0 for a chain of thought."""

    name, differentiable = "execution", False

    def energy(self, x, **context):
        def e(c):
            if format_of(c) != "pot":
                return 0.0
            a = answer_of(c)
            return 1.0 if a is None else 0.0 if float(a).is_integer() else 0.5
        return torch.tensor([e(c) for c in x], dtype=torch.float32)


class AnswerAgreement(Scorer):
    """E_i = 1 - (candidates of candidate i's proposer with its final answer) / (that proposer's candidates); 1.0
    without a final answer. Over one proposer's batch its argmin is the self-consistency (majority) vote."""

    name, differentiable = "agreement", False

    def energy(self, x, **context):
        answers, owners = [answer_of(c) for c in x], [proposer_of(c) for c in x]
        size = {o: owners.count(o) for o in set(owners)}
        same = {}
        for a, o in zip(answers, owners):
            same[(a, o)] = same.get((a, o), 0) + 1
        return torch.tensor([1.0 if a is None else 1.0 - same[(a, o)] / size[o] for a, o in zip(answers, owners)],
                            dtype=torch.float32)


class CrossAgreement(Scorer):
    """E_i = 1 - (other proposers' candidates with candidate i's final answer) / (other proposers' candidates):
    agreement across models; 1.0 without a final answer or without other proposers."""

    name, differentiable = "cross_agreement", False

    def energy(self, x, **context):
        answers, owners = [answer_of(c) for c in x], [proposer_of(c) for c in x]
        out = []
        for a, o in zip(answers, owners):
            others = [b for b, p in zip(answers, owners) if p != o]
            out.append(1.0 if a is None or not others else 1.0 - sum(b == a for b in others) / len(others))
        return torch.tensor(out, dtype=torch.float32)


class OwnLikelihood(Scorer):
    """E = -(mean token log p of the candidate under the model that proposed it), recorded while sampling, and
    standardised per proposer as (E - mean) / sd with `scales` {proposer: (mean, sd)} chosen on train problems
    (models differ in how sure they are of their own text). A candidate without log-probabilities gets `missing`."""

    name, differentiable = "lm", False

    def __init__(self, scales: dict[str, tuple[float, float]] | None = None, missing: float = 3.0):
        self.scales, self.missing = dict(scales or {}), missing

    def energy(self, x, **context):
        out = []
        for c in x:
            m = getattr(c, "mean_logprob", None)
            mean, sd = self.scales.get(proposer_of(c), (0.0, 1.0))
            out.append(self.missing if m is None else (-m - mean) / sd)
        return torch.tensor(out, dtype=torch.float32)


class SolutionVerifier(Scorer):
    """p(correct | question, solution) = sigmoid(w . standardised([s, q*s, |q-s|]) + b) on frozen MiniLM sentence
    embeddings q (question) and s (solution); E = -log p(correct).

    weights: {"mean", "std", "coef", "bias"}, from `fit_verifier` (a checkpoint under data/gsm8k/)."""

    name, differentiable = "verifier", False

    def __init__(self, encoder, weights: dict[str, torch.Tensor]):
        self.encoder, self.weights = encoder, {k: v.float() for k, v in weights.items()}

    def features(self, questions: Sequence[str], solutions: Sequence[str]) -> torch.Tensor:
        return verifier_features(self.encoder, questions, solutions)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        w = self.weights
        return ((features - w["mean"]) / w["std"]) @ w["coef"] + w["bias"]

    def energy(self, x, question=None, **context):
        questions = _questions(question, len(x), self.name)
        return F.softplus(-self.logits(self.features(questions, [text_of(c) for c in x])))


def verifier_features(encoder, questions: Sequence[str], solutions: Sequence[str]) -> torch.Tensor:
    """[N, 3 * dim] features of (question, solution) pairs from unit MiniLM embeddings."""
    q = encoder.encode(list(questions)).float()
    s = encoder.encode([t.strip() or EMPTY_TEXT for t in solutions]).float()
    return torch.cat([s, q * s, (q - s).abs()], dim=1)


def fit_verifier(features: torch.Tensor, labels: torch.Tensor, groups: Sequence[str], cs=(0.01, 0.1, 1.0),
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """Logistic regression (scikit-learn) on standardised features, its inverse regularisation C chosen among `cs`
    by 3-fold cross-validated AUC with folds grouped by problem; returns the weights SolutionVerifier takes
    (and the chosen C)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold

    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    x, y = ((features - mean) / std).numpy(), labels.numpy().astype(int)
    folds = list(GroupKFold(n_splits=3).split(x, y, groups=list(groups)))
    clf = LogisticRegressionCV(Cs=list(cs), l1_ratios=(0.0,), cv=folds, scoring="roc_auc", max_iter=5000,
                               random_state=seed, use_legacy_attributes=True)  # l1_ratios 0: the L2 penalty
    clf.fit(x, y)
    return {"mean": mean, "std": std, "coef": torch.tensor(clf.coef_[0], dtype=torch.float32),
            "bias": torch.tensor(clf.intercept_, dtype=torch.float32),
            "C": torch.tensor([float(clf.C_[0])])}


SCORERS = ("lm", "calculator", "verifier", "agreement")  # the paper-analog composition (notebook 31)
ACROSS_MODELS = ("agreement", "cross_agreement", "lm", "calculator", "execution")  # notebook 32


def gsm8k_energy(model, tokenizer, prompt: Callable[[str], str], encoder, verifier_weights,
                 weights: dict[str, float] | None = None) -> ComposedEnergy:
    """All four scorers composed, E = sum_n w_n E_n (every weight 1 unless given)."""
    weights = {name: 1.0 for name in SCORERS} | (weights or {})
    scorers = [LMLikelihood(model, tokenizer, prompt), CalculatorScorer(),
               SolutionVerifier(encoder, verifier_weights), AnswerAgreement()]
    return ComposedEnergy([(s, weights[s.name]) for s in scorers])


def across_models_energy(weights: dict[str, float], lm_scales: dict[str, tuple[float, float]]) -> ComposedEnergy:
    """The cross-model consensus E = sum_n w_n E_n over the scorers of ACROSS_MODELS with a non-zero weight (the
    weights already divided by each scorer's spread on train problems: pic.tasks.gsm8k.weights)."""
    scorers = {"agreement": AnswerAgreement(), "cross_agreement": CrossAgreement(), "lm": OwnLikelihood(lm_scales),
               "calculator": CalculatorScorer(), "execution": ExecutionCheck()}
    terms = [(scorers[name], float(weights[name])) for name in ACROSS_MODELS if weights.get(name, 0.0) != 0.0]
    if not terms:
        raise ValueError(f"every consensus weight is 0: {weights}; choose them with pic.tasks.gsm8k.weights")
    return ComposedEnergy(terms)
