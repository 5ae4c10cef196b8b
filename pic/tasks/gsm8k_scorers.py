"""The four scorers of a GSM8K solution, each a gradient-free energy (lower = better) over a list of candidate
solutions, with the question in the context:

  lm          the generator's own length-normalised log-likelihood, E = -mean token log p;
  calculator  share of arithmetic steps the calculator rejects (pic.tasks.gsm8k_calculator);
  verifier    a question-solution classifier on frozen MiniLM embeddings (the paper's classifier), E = -log p(correct);
  agreement   share of the candidates whose final answer differs (self-consistency as an energy).

Candidates are pic.models.decoding.Continuation objects (text, tokens, recorded log-probabilities) or plain strings.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from pic.energy import ComposedEnergy, Scorer
from pic.models.language_model import continuation_logprobs
from pic.tasks.gsm8k import final_answer
from pic.tasks.gsm8k_calculator import wrong_step_share

EMPTY_LM_ENERGY = 20.0  # an empty solution: worse than any text, even a uniform guess over 50k tokens (10.8)
EMPTY_TEXT = "(no solution)"  # what the verifier reads for an empty solution


def text_of(candidate) -> str:
    return candidate if isinstance(candidate, str) else candidate.text


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
    """E = share of wrong or unverifiable arithmetic steps (1.0 when a solution shows no step at all)."""

    name, differentiable = "calculator", False

    def energy(self, x, **context):
        return torch.tensor([wrong_step_share(text_of(c)) for c in x], dtype=torch.float32)


class AnswerAgreement(Scorer):
    """E_i = 1 - (candidates with candidate i's final answer) / (all candidates); 1.0 without a final answer.
    Its argmin is the self-consistency (majority) vote of the batch it is given."""

    name, differentiable = "agreement", False

    def energy(self, x, **context):
        answers = [final_answer(text_of(c)) for c in x]
        counts = {a: answers.count(a) for a in set(answers) if a is not None}
        return torch.tensor([1.0 if a is None else 1.0 - counts[a] / len(x) for a in answers], dtype=torch.float32)


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


SCORERS = ("lm", "calculator", "verifier", "agreement")


def gsm8k_energy(model, tokenizer, prompt: Callable[[str], str], encoder, verifier_weights,
                 weights: dict[str, float] | None = None) -> ComposedEnergy:
    """All four scorers composed, E = sum_n w_n E_n (every weight 1 unless given)."""
    weights = {name: 1.0 for name in SCORERS} | (weights or {})
    scorers = [LMLikelihood(model, tokenizer, prompt), CalculatorScorer(),
               SolutionVerifier(encoder, verifier_weights), AnswerAgreement()]
    return ComposedEnergy([(s, weights[s.name]) for s in scorers])
