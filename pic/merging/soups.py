"""Model soups (Wortsman et al., ICML 2022) and their use in Model Ratatouille (Ramé et al., ICML 2023).

Uniform soup: the plain average of fine-tunings that share an initialisation.
Greedy soup: rank the candidates by their own validation score (best first); start from the best and add each next
one only if the average of the kept ones and it scores at least as well as the soup without it (Ratatouille: "does
not drop"). Scores are higher-is-better and come from in-domain validation only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from pic.merging.interpolation import linear
from pic.merging.state import MergeError, Models, Patterns, StateDict, named

Evaluate = Callable[[dict[str, torch.Tensor]], float]  # state dict -> validation score, higher is better


def uniform_soup(models: Models, *, include: Patterns = None, exclude: Patterns = None,
                 dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The uniform average of the models' weights (other keys copied from the first model)."""
    return linear(models, include=include, exclude=exclude, dtype=dtype)


@dataclass
class GreedySoup:
    """state: the soup's weights; ingredients: the kept models, in the order added; score: the soup's validation
    score; history: per candidate (name, score of the trial soup with it, kept)."""

    state: dict[str, torch.Tensor]
    ingredients: list[str]
    score: float
    history: list[tuple[str, float, bool]] = field(default_factory=list)


def greedy_soup(models: Models, evaluate: Evaluate, scores: Mapping[str, float] | None = None, *,
                include: Patterns = None, exclude: Patterns = None, dtype: torch.dtype | None = None) -> GreedySoup:
    """Greedy soup: candidates in order of their own score, each kept only if the soup's score does not drop.

    evaluate(state) -> float, higher is better; scores: the candidates' own scores if already known (by name),
    else each candidate is evaluated once. Ties in the ranking keep the models' order.
    """
    states = named(models)
    if not callable(evaluate):
        raise MergeError(f"evaluate must be a callable state dict -> validation score, got {type(evaluate).__name__}")
    own = {n: float(scores[n]) if scores is not None and n in scores else _score(evaluate, states[n], n)
           for n in states}
    order = sorted(states, key=lambda n: -own[n])
    kept, best = [order[0]], own[order[0]]
    soup = linear({order[0]: states[order[0]]}, include=include, exclude=exclude, dtype=dtype)
    history = [(order[0], best, True)]
    for name in order[1:]:
        trial = linear({n: states[n] for n in kept + [name]}, include=include, exclude=exclude, dtype=dtype)
        score = _score(evaluate, trial, f"soup + {name}")
        accepted = score >= best
        history.append((name, score, accepted))
        if accepted:
            kept, best, soup = kept + [name], score, trial
    return GreedySoup(soup, kept, best, history)


def _score(evaluate: Evaluate, state: StateDict, what: str) -> float:
    score = float(evaluate(state))
    if score != score:
        raise MergeError(f"evaluate returned NaN for {what}: a validation score must be a number")
    return score
