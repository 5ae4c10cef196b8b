"""The energy contract and its composition, a product of experts.

A scorer maps a batch of proposals x (plus context: prompt, labels, timestep ...) to energies of shape [B],
lower = better. Composing scorers with weights w_n gives E(x) = sum_n w_n E_n(x), the energy of the product
p(x) ∝ prod_n exp(-w_n E_n(x)). The per-scorer terms are kept so that every optimizer can report them.

Proposals are a tensor [B, ...] (continuous outputs, where gradients exist) or a sequence of B objects
(text, actions: discrete outputs, scored without gradients).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

import torch

Weight = Union[float, Callable[[Any], float]]  # a constant, or a schedule w(t) read from the context's `t`


class EnergyError(ValueError):
    """A scorer broke the energy contract; the message names the scorer."""


class NotDifferentiableError(EnergyError):
    """A gradient was asked of a scorer that cannot give one."""


def batch_size(x) -> int:
    """B of a proposal batch: a tensor's first dimension, or the length of a sequence."""
    if isinstance(x, torch.Tensor):
        if x.dim() == 0:
            raise EnergyError("proposals must be a batch [B, ...], got a scalar tensor")
        return x.shape[0]
    return len(x)


class Scorer:
    """An expert: `energy(x, **context) -> Tensor[B]`, lower = better.

    Subclasses set `name`, and `differentiable = False` when no gradient in x exists (text, actions).
    A score-only expert (classifier-free guidance, a diffusion prior without a density) sets
    `has_energy = False` and overrides `energy_and_grad` to return (None, gradient).
    Scorers take the context keys they need and ignore the rest.
    """

    name: str = "scorer"
    differentiable: bool = True
    has_energy: bool = True

    def energy(self, x, **context) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not define energy()")

    def energy_and_grad(self, x: torch.Tensor, **context) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(E(x) [B] or None, dE/dx shaped like x). The default differentiates `energy` with autograd."""
        if not self.differentiable:
            raise NotDifferentiableError(
                f"scorer '{self.name}' is gradient-free (differentiable=False): use it with a discrete optimizer "
                "(rerank_rounds, select_argmin), not with gradient guidance or MCMC")
        with torch.enable_grad():  # the energy's shape and values are checked where it is composed (ComposedEnergy)
            xg = x.detach().requires_grad_(True)
            e = self.energy(xg, **context)
            (g,) = torch.autograd.grad(e.sum(), xg)
        return e.detach(), g

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class FunctionScorer(Scorer):
    """A scorer made from a function `fn(x, **context) -> Tensor[B]`."""

    def __init__(self, fn: Callable[..., torch.Tensor], name: str, differentiable: bool = True):
        self.fn, self.name, self.differentiable = fn, name, differentiable

    def energy(self, x, **context):
        return self.fn(x, **context)


class CountingScorer(Scorer):
    """Another scorer, unchanged, that counts its calls (one per energy or gradient evaluation of a batch) and the
    proposals it scored: the model calls behind a cost curve."""

    def __init__(self, scorer: Scorer):
        self.scorer, self.name = scorer, scorer.name
        self.differentiable, self.has_energy = scorer.differentiable, scorer.has_energy
        self.calls = self.proposals = 0

    def _count(self, x) -> None:
        self.calls += 1
        self.proposals += batch_size(x)

    def energy(self, x, **context):
        self._count(x)
        return self.scorer.energy(x, **context)

    def energy_and_grad(self, x, **context):
        self._count(x)
        return self.scorer.energy_and_grad(x, **context)


@dataclass(frozen=True)
class Term:
    """One expert of the product and its weight (a constant or a schedule w(t))."""

    scorer: Scorer
    weight: Weight = 1.0

    def __post_init__(self):
        if not callable(self.weight):
            _check_weight(self.scorer, self.weight, "")

    def weight_at(self, context: Mapping[str, Any]) -> float:
        if not callable(self.weight):
            return float(self.weight)
        if "t" not in context:
            raise EnergyError(f"scorer '{self.scorer.name}' has a weight schedule but the optimizer passed no `t`")
        return _check_weight(self.scorer, self.weight(context["t"]), f" (its schedule at t={context['t']})")


@dataclass
class Energies:
    """The composed energy of a batch and its parts.

    total: [B] weighted sum (None when a score-only term has no energy); terms: scorer name -> [B], unweighted;
    weights: scorer name -> the weight used; grad_norms: scorer name -> [B] norm of the weighted gradient term
    (filled by `energy_and_grad` only).
    """

    total: torch.Tensor | None
    terms: dict[str, torch.Tensor]
    weights: dict[str, float]
    grad_norms: dict[str, torch.Tensor] | None = None

    def argmin(self) -> int:
        if self.total is None:
            raise EnergyError("no total energy: a score-only scorer has none; select with energies, not scores")
        return int(torch.argmin(self.total))

    def reweighted(self, weights: Mapping[str, float]) -> Energies:
        """The same terms under other weights (a scorer left out weighs 0), without scoring again: what the
        composition with those weights gives on this batch."""
        unknown = sorted(set(weights) - set(self.terms))
        if unknown:
            raise EnergyError(f"no term named {unknown} in this batch's energies; its terms are {list(self.terms)}")
        full = {n: float(weights.get(n, 0.0)) for n in self.terms}
        return Energies(_weighted_sum(self.terms, full), dict(self.terms), full)

    def agree(self) -> bool:
        """Whether every scorer ranks the same proposal best (the discrete optimizers' consensus test)."""
        if not self.terms:
            return False
        best = torch.stack(list(self.terms.values())).argmin(dim=1).tolist()  # one read-out for every scorer
        return len(set(best)) == 1

    def means(self) -> dict[str, float]:
        """Batch means of the total and of each unweighted term, for per-iteration reports."""
        out = {name: float(e.mean()) for name, e in self.terms.items()}
        if self.total is not None:
            out["total"] = float(self.total.mean())
        return out


class ComposedEnergy:
    """E(x) = sum_n w_n E_n(x) over a non-empty list of terms; checks every scorer's output."""

    def __init__(self, terms: Sequence[Term | Scorer | tuple[Scorer, Weight]]):
        self.terms = [t if isinstance(t, Term) else Term(*t) if isinstance(t, tuple) else Term(t) for t in terms]
        if not self.terms:
            raise EnergyError("no scorers to compose: a consensus needs at least one scorer")
        for t in self.terms:
            if not isinstance(t.scorer, Scorer):
                raise EnergyError(f"{t.scorer!r} is not a pic.energy.Scorer")
        names = [t.scorer.name for t in self.terms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise EnergyError(f"two scorers share the name {dupes}: give each a distinct `name`")

    @property
    def names(self) -> list[str]:
        return [t.scorer.name for t in self.terms]

    @property
    def differentiable(self) -> bool:
        return all(t.scorer.differentiable for t in self.terms)

    @property
    def has_energy(self) -> bool:
        return all(t.scorer.has_energy for t in self.terms)

    def subset(self, names: Sequence[str]) -> ComposedEnergy:
        """The product of the named experts only (single-scorer and pair rows of an ablation)."""
        unknown = set(names) - set(self.names)
        if unknown:
            raise EnergyError(f"unknown scorer(s) {sorted(unknown)}; have {self.names}")
        return ComposedEnergy([t for t in self.terms if t.scorer.name in names])

    def reweighted(self, weights: Mapping[str, Weight]) -> ComposedEnergy:
        """The same experts under other weights (the rows of a weight sweep); a scorer not named keeps its own."""
        unknown = set(weights) - set(self.names)
        if unknown:
            raise EnergyError(f"unknown scorer(s) {sorted(unknown)} to reweight; have {self.names}")
        return ComposedEnergy([Term(t.scorer, weights.get(t.scorer.name, t.weight)) for t in self.terms])

    def __add__(self, other: ComposedEnergy) -> ComposedEnergy:
        return ComposedEnergy(self.terms + other.terms)

    def __call__(self, x, **context) -> Energies:
        """Energies of a batch, without gradients."""
        terms, weights = {}, {}
        with torch.no_grad():
            for t in self.terms:
                if not t.scorer.has_energy:
                    raise EnergyError(f"scorer '{t.scorer.name}' is score-only (has_energy=False): it gives a "
                                      "gradient, not an energy; use it with guided denoising or Langevin steps")
                e = t.scorer.energy(x, **context)
                _check_energy_shape(t.scorer.name, e, x)
                terms[t.scorer.name], weights[t.scorer.name] = e, t.weight_at(context)
        _check_finite(terms, {}, x)
        return Energies(_weighted_sum(terms, weights), terms, weights)

    def energy_and_grad(self, x: torch.Tensor, **context) -> tuple[Energies, torch.Tensor]:
        """Energies and dE/dx = sum_n w_n dE_n/dx, shaped like x."""
        if not isinstance(x, torch.Tensor):
            raise EnergyError("gradients need tensor proposals; discrete proposals go to rerank_rounds")
        terms, weights, norms, grads = {}, {}, {}, {}
        grad = None
        for t in self.terms:
            e, g = t.scorer.energy_and_grad(x, **context)
            if e is not None:
                _check_energy_shape(t.scorer.name, e, x)
                terms[t.scorer.name] = e
            _check_grad_shape(t.scorer.name, g, x)
            grads[t.scorer.name] = g
            norms[t.scorer.name] = g.flatten(1).norm(dim=1)  # finite when every entry is: it reports and checks
            w = weights[t.scorer.name] = t.weight_at(context)
            grad = w * g if grad is None else grad.add_(g, alpha=w)  # w * g is a new tensor: adding in place is safe
        _check_finite(terms, norms, x, grads)
        norms = {n: abs(weights[n]) * v for n, v in norms.items()}
        total = _weighted_sum(terms, weights) if len(terms) == len(self.terms) else None
        return Energies(total, terms, weights, norms), grad


def _check_weight(scorer, weight, where: str) -> float:
    """A weight as a finite float; else an error naming the scorer (a NaN weight would make every total NaN and
    every argmin silently pick the first proposal)."""
    try:
        w = float(weight)
    except (TypeError, ValueError):
        raise EnergyError(f"scorer '{getattr(scorer, 'name', scorer)}' has weight {weight!r}{where}: weights are "
                          "numbers or schedules w(t)") from None
    if not math.isfinite(w):
        raise EnergyError(f"scorer '{getattr(scorer, 'name', scorer)}' has weight {w}{where}: weights must be finite")
    return w


def _weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    total = None
    for n, e in terms.items():  # sum() would start with 0 + ..., one tensor call more; an add with alpha would fuse
        total = e * weights[n] if total is None else total + e * weights[n]  # and round differently
    return total


def _check_finite(terms: dict[str, torch.Tensor], norms: dict[str, torch.Tensor], x,
                  grads: dict[str, torch.Tensor] | None = None) -> None:
    """Every energy and gradient norm finite, checked in one pass over all scorers; else the error of the first
    scorer (in order) that broke the contract. The pass is one sum, finite whenever every value is (isfinite().all()
    costs several times more); a finite sum that overflows falls through to the per-scorer checks, which pass."""
    values = [*terms.values(), *norms.values()]
    if not values or math.isfinite(float(torch.cat([v.flatten() for v in values]).sum())):
        return
    for name, e in terms.items():
        _check_energy(name, e, x)
    for name, g in (grads or {}).items():
        if not bool(torch.isfinite(norms[name]).all()):
            _check_grad(name, g, x)


def _check_energy_shape(name: str, e, x) -> None:
    b = batch_size(x)
    if not isinstance(e, torch.Tensor):
        raise EnergyError(f"scorer '{name}' returned {type(e).__name__}, expected a tensor of shape [{b}]")
    if e.shape != (b,):
        raise EnergyError(f"scorer '{name}' returned energies of shape {tuple(e.shape)}, expected ({b},): "
                          "one energy per proposal")
    if isinstance(x, torch.Tensor) and e.device != x.device:
        raise EnergyError(f"scorer '{name}' returned energies on {e.device} for proposals on {x.device}")


def _check_energy(name: str, e, x) -> None:
    _check_energy_shape(name, e, x)
    b, bad = batch_size(x), ~torch.isfinite(e)
    if bad.any():
        raise EnergyError(f"scorer '{name}' returned {int(bad.sum())} non-finite energies (NaN/inf) of {b}, "
                          f"first at index {int(bad.nonzero()[0])}")


def _check_grad_shape(name: str, g, x: torch.Tensor) -> None:
    if not isinstance(g, torch.Tensor) or g.shape != x.shape:
        shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
        raise EnergyError(f"scorer '{name}' returned a gradient of shape {shape}, expected {tuple(x.shape)}")
    if g.device != x.device:
        raise EnergyError(f"scorer '{name}' returned a gradient on {g.device} for proposals on {x.device}")


def _check_grad(name: str, g, x: torch.Tensor) -> None:
    _check_grad_shape(name, g, x)
    bad = ~torch.isfinite(g.flatten(1)).all(dim=1)
    if bad.any():
        raise EnergyError(f"scorer '{name}' returned non-finite gradients for {int(bad.sum())} of "
                          f"{x.shape[0]} proposals, first at index {int(bad.nonzero()[0])}")
