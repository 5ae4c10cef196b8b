"""Discrete consensus: rerank rounds return the composed argmin and stop when the scorers agree."""
import pytest
import torch

from pic import ComposedEnergy, FunctionScorer
from pic.optim import rerank_rounds, select_argmin


def distance_to(target, name):
    return FunctionScorer(lambda x, **_: (x - target).abs().sum(1).to(torch.float64), name, differentiable=False)


def fixed_pool(pool):
    return lambda kept, n: pool


def test_rerank_returns_the_argmin_of_the_composed_energy():
    pool = torch.arange(10, dtype=torch.float64)[:, None]
    energy = ComposedEnergy([(distance_to(2.0, "a"), 1.0), (distance_to(7.0, "b"), 3.0)])
    result = rerank_rounds(fixed_pool(pool), energy, n=10, keep=3, rounds=1)
    expected = int(torch.argmin(energy(pool).total))
    assert float(result.best) == float(pool[expected]) == 7.0
    assert result.energies.total.tolist() == sorted(result.energies.total.tolist())  # best first


def test_agreement_of_every_scorer_stops_the_rounds_early():
    calls = []

    def propose(kept, n):
        calls.append(kept)
        return torch.arange(n, dtype=torch.float64)[:, None]

    energy = ComposedEnergy([distance_to(3.0, "a"), distance_to(3.2, "b")])
    result = rerank_rounds(propose, energy, n=8, keep=2, rounds=5)
    assert result.stop_reason == "agreement" and len(calls) == 1 and float(result.best) == 3.0
    assert result.history[0]["agree"] is True


def test_rounds_stop_when_the_composed_energy_stops_improving():
    proposals = iter([[5.0, 6.0], [4.0, 9.0], [9.0, 9.0], [0.0, 0.0]])

    def propose(kept, n):
        return torch.tensor(next(proposals), dtype=torch.float64)[:, None]

    energy = ComposedEnergy([distance_to(0.0, "a"), distance_to(1.0, "b")])
    result = rerank_rounds(propose, energy, n=2, keep=1, rounds=4, stop_on_agreement=False)
    assert result.stop_reason == "no_improvement" and len(result.history) == 3 and float(result.best) == 4.0


def test_later_rounds_propose_from_the_kept_candidates():
    def propose(kept, n):  # a local search: step away from the best so far
        if kept is None:
            return torch.tensor([[0.0]] * n, dtype=torch.float64)
        return kept[:1] + torch.linspace(-1, 1, n, dtype=torch.float64)[:, None]

    energy = ComposedEnergy([distance_to(4.0, "a")])
    result = rerank_rounds(propose, energy, n=5, keep=1, rounds=10, stop_on_agreement=False)
    assert float(result.best) == 4.0 and [h["best/total"] for h in result.history][:5] == [4.0, 3.0, 2.0, 1.0, 0.0]


def test_text_candidates_are_reranked_without_gradients():
    words = ["pear", "apple", "fig", "banana"]
    length = FunctionScorer(lambda x, **_: torch.tensor([abs(len(w) - 5.0) for w in x]), "length", False)
    has_a = FunctionScorer(lambda x, **_: torch.tensor([0.0 if "a" in w else 1.0 for w in x]), "has_a", False)
    result = rerank_rounds(fixed_pool(words), ComposedEnergy([length, has_a]), n=4, keep=2, rounds=1)
    assert result.best == "apple" and result.candidates == ["apple", "pear"]


def test_bad_round_settings_and_empty_proposals_are_refused():
    energy = ComposedEnergy([distance_to(0.0, "a")])
    with pytest.raises(ValueError, match="keep"):
        rerank_rounds(fixed_pool(torch.zeros(2, 1)), energy, n=2, keep=0)
    with pytest.raises(ValueError, match="proposed no candidates in round 0"):
        rerank_rounds(fixed_pool(torch.zeros(0, 1)), energy, n=2)


def test_selection_executes_the_proposal_with_the_lowest_summed_energy_ties_to_the_first():
    actions = ["left", "right", "up", "down"]
    view_1 = FunctionScorer(lambda x, **_: torch.tensor([3.0, 1.0, 2.0, 1.0]), "view_1", False)
    view_2 = FunctionScorer(lambda x, **_: torch.tensor([0.0, 1.0, 2.0, 1.0]), "view_2", False)
    chosen = select_argmin(actions, ComposedEnergy([view_1, view_2]))
    assert (chosen.index, chosen.candidate) == (1, "right")  # 2.0 ties with "down": the first wins
    assert chosen.energies.terms["view_1"].tolist() == [3.0, 1.0, 2.0, 1.0]


def test_selecting_from_no_candidates_is_a_named_error_not_an_index_error():
    energy = ComposedEnergy([distance_to(torch.tensor([0.0]), "a")])
    with pytest.raises(ValueError, match="select_argmin got no candidates"):
        select_argmin([], energy)
    with pytest.raises(ValueError, match="select_argmin got no candidates"):
        select_argmin(torch.zeros(0, 1), energy)
