"""Selection: execute the proposal with the lowest composed energy (the robot task's closed-loop step)."""
from __future__ import annotations

from dataclasses import dataclass

from pic.energy import ComposedEnergy, Energies, batch_size
from pic.optim.rerank_rounds import Candidates


@dataclass
class Selection:
    index: int
    candidate: object
    energies: Energies  # of every proposal, so callers can report each scorer's choice too


def select_argmin(candidates: Candidates, energy: ComposedEnergy, **context) -> Selection:
    """argmin_i sum_n w_n E_n(candidates[i]); ties go to the first proposal."""
    if batch_size(candidates) == 0:
        raise ValueError("select_argmin got no candidates: the generator proposed nothing to choose from")
    e = energy(candidates, **context)
    i = e.argmin()
    return Selection(i, candidates[i], e)
