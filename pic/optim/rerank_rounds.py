"""Discrete consensus: propose -> score with every scorer -> keep the best -> propose again from them.

For outputs without gradients (text, actions) the closed loop is a search: the generator proposes N candidates
(batched), the composed energy ranks them, the best k are kept and handed back to the generator, which proposes
N more conditioned on them. It stops after K rounds, when every scorer ranks the same candidate best
(consensus), or when the best composed energy stops improving.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from pic.energy import ComposedEnergy, Energies, batch_size

Candidates = torch.Tensor | Sequence
Propose = Callable[[Candidates | None, int], Candidates]  # (kept or None on the first round, n) -> n candidates


@dataclass
class RoundsResult:
    candidates: Candidates  # the kept candidates, best first
    energies: Energies  # their energies, same order
    history: list[dict] = field(default_factory=list)  # per round: best total, best per-scorer, agreement
    stop_reason: str = "rounds"  # "rounds" | "agreement" | "no_improvement"

    @property
    def best(self):
        return self.candidates[0]


def take(candidates: Candidates, index: torch.Tensor) -> Candidates:
    """candidates[index] for a tensor or a list."""
    if isinstance(candidates, torch.Tensor):
        return candidates[index.to(candidates.device)]
    return [candidates[i] for i in index.tolist()]


def concat(a: Candidates, b: Candidates) -> Candidates:
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b])
    return list(a) + list(b)


def rerank_rounds(propose: Propose, energy: ComposedEnergy, *, n: int, keep: int = 1, rounds: int = 3,
                  min_improvement: float = 0.0, stop_on_agreement: bool = True, **context) -> RoundsResult:
    """Run up to `rounds` propose/score/keep rounds; each scorer gets (pool, t=round, **context)."""
    if keep < 1 or n < 1 or rounds < 1:
        raise ValueError(f"rerank_rounds needs n, keep, rounds >= 1, got n={n}, keep={keep}, rounds={rounds}")
    kept, history, best_so_far, reason = None, [], None, "rounds"
    for r in range(rounds):
        new = propose(kept, n)
        if batch_size(new) == 0:
            raise ValueError(f"the generator proposed no candidates in round {r}")
        pool = new if kept is None else concat(kept, new)
        e = energy(pool, t=r, **context)
        order = torch.argsort(e.total, stable=True)[:keep]
        kept = take(pool, order)
        # the total and every term as one matrix: the kept columns and the best candidate's values in two tensor
        # calls, not two per scorer (each costs about as much as a small scorer's batch)
        kept_table = torch.stack([e.total, *e.terms.values()])[:, order]
        kept_e = Energies(kept_table[0], dict(zip(e.terms, kept_table[1:])), e.weights)
        best, *terms = kept_table[:, 0].tolist()
        agreed = e.agree()
        history.append({"round": r, "pool": batch_size(pool), "best/total": best, "agree": agreed,
                        **{f"best/{k}": v for k, v in zip(kept_e.terms, terms)}})
        if stop_on_agreement and agreed:
            reason = "agreement"
            break
        if best_so_far is not None and best_so_far - best <= min_improvement:
            reason = "no_improvement"
            break
        best_so_far = best
    return RoundsResult(kept, kept_e, history, reason)
