"""pic: composing pre-trained models by iterative consensus (Li, Du, Tenenbaum, Torralba, Mordatch, ICLR 2023).

A generator proposes, scorers return energies (lower = better), and an optimizer refines the proposals towards
argmin_x sum_n w_n E_n(x). Layers, imported in one direction only:
    notebooks -> pic.tasks -> pic.optim / pic.models -> pic.energy
"""
from pic.energy import (ComposedEnergy, Energies, EnergyError, FunctionScorer, NotDifferentiableError, Scorer,
                        Term)

__all__ = ["ComposedEnergy", "Energies", "EnergyError", "FunctionScorer", "NotDifferentiableError", "Scorer", "Term"]
__version__ = "0.1.0"
