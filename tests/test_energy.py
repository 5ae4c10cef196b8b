"""The energy contract: composition is a weighted sum, and every broken promise is a clear error."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pic.energy import ComposedEnergy, EnergyError, FunctionScorer, NotDifferentiableError, Scorer, Term


def quadratic(centre, name):
    c = torch.tensor(centre, dtype=torch.float64)
    return FunctionScorer(lambda x, **_: ((x - c) ** 2).sum(1), name)


def linear(direction, name):
    d = torch.tensor(direction, dtype=torch.float64)
    return FunctionScorer(lambda x, **_: x @ d, name)


weights_st = st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=4)


@settings(max_examples=50, deadline=None)
@given(weights=weights_st, seed=st.integers(0, 10_000))
def test_composed_energy_is_the_weighted_sum_and_its_gradient_the_weighted_sum_of_gradients(weights, seed):
    g = torch.Generator().manual_seed(seed)
    centres = [torch.randn(3, generator=g, dtype=torch.float64) for _ in weights]
    scorers = [quadratic(c.tolist(), f"q{i}") for i, c in enumerate(centres)]
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    composed = ComposedEnergy(list(zip(scorers, weights)))
    e = composed(x)
    expected = sum(w * s.energy(x) for s, w in zip(scorers, weights))
    torch.testing.assert_close(e.total, expected)
    for s in scorers:
        torch.testing.assert_close(e.terms[s.name], s.energy(x))  # unweighted terms are kept
    e2, grad = composed.energy_and_grad(x)
    expected_grad = sum(w * 2 * (x - c) for c, w in zip(centres, weights))
    torch.testing.assert_close(grad, expected_grad)
    torch.testing.assert_close(e2.total, expected)


@settings(max_examples=30, deadline=None)
@given(a=st.floats(-3, 3), b=st.floats(-3, 3), seed=st.integers(0, 1000))
def test_composition_is_linear_in_the_weights(a, b, seed):
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    s1, s2 = quadratic([1.0, 0.0], "s1"), linear([0.5, -2.0], "s2")
    left = ComposedEnergy([(s1, a), (s2, b)])(x).total
    right = a * ComposedEnergy([s1])(x).total + b * ComposedEnergy([s2])(x).total
    torch.testing.assert_close(left, right)


def test_an_empty_scorer_list_is_refused():
    with pytest.raises(EnergyError, match="at least one scorer"):
        ComposedEnergy([])


def test_two_scorers_with_one_name_are_refused():
    with pytest.raises(EnergyError, match="share the name"):
        ComposedEnergy([quadratic([0.0], "same"), quadratic([1.0], "same")])


def test_something_that_is_not_a_scorer_is_refused():
    with pytest.raises(EnergyError, match="not a pic.energy.Scorer"):
        ComposedEnergy([lambda x: x])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_energy_names_its_scorer(bad):
    broken = FunctionScorer(lambda x, **_: torch.tensor([0.0, bad, 1.0]), "broken")
    with pytest.raises(EnergyError, match=r"scorer 'broken' returned 1 non-finite energies .* first at index 1"):
        ComposedEnergy([quadratic([0.0], "fine"), broken])(torch.zeros(3, 1))


def test_a_non_finite_gradient_names_its_scorer():
    class Broken(Scorer):
        name = "nan_grad"

        def energy_and_grad(self, x, **context):
            return torch.zeros(len(x)), torch.full_like(x, float("nan"))

    with pytest.raises(EnergyError, match="'nan_grad' returned non-finite gradients"):
        ComposedEnergy([Broken()]).energy_and_grad(torch.zeros(2, 3))


def test_a_wrongly_shaped_energy_names_its_scorer():
    per_pixel = FunctionScorer(lambda x, **_: x, "per_pixel")
    with pytest.raises(EnergyError, match=r"'per_pixel' returned energies of shape \(4, 2\), expected \(4,\)"):
        ComposedEnergy([per_pixel])(torch.zeros(4, 2))


def test_a_wrongly_shaped_gradient_names_its_scorer():
    class Flat(Scorer):
        name = "flat"

        def energy_and_grad(self, x, **context):
            return torch.zeros(len(x)), torch.zeros(len(x))

    with pytest.raises(EnergyError, match=r"'flat' returned a gradient of shape \(3,\), expected \(3, 2\)"):
        ComposedEnergy([Flat()]).energy_and_grad(torch.zeros(3, 2))


def test_energies_on_another_device_name_their_scorer():
    elsewhere = FunctionScorer(lambda x, **_: torch.empty(len(x), device="meta"), "elsewhere")
    with pytest.raises(EnergyError, match="'elsewhere' returned energies on meta for proposals on cpu"):
        ComposedEnergy([elsewhere])(torch.zeros(2, 2))


def test_a_non_tensor_energy_is_refused():
    listy = FunctionScorer(lambda x, **_: [0.0] * len(x), "listy", differentiable=False)
    with pytest.raises(EnergyError, match="'listy' returned list"):
        ComposedEnergy([listy])(["a", "b"])


def test_asking_a_gradient_free_scorer_for_a_gradient_is_a_clear_error():
    text_scorer = FunctionScorer(lambda x, **_: torch.tensor([float(len(s)) for s in x]), "length",
                                 differentiable=False)
    assert ComposedEnergy([text_scorer])(["ab", "abc"]).total.tolist() == [2.0, 3.0]  # energies work
    with pytest.raises(NotDifferentiableError, match="scorer 'length' is gradient-free"):
        ComposedEnergy([text_scorer]).energy_and_grad(torch.zeros(2, 1))
    assert not ComposedEnergy([text_scorer, quadratic([0.0], "q")]).differentiable


def test_gradients_need_tensor_proposals():
    with pytest.raises(EnergyError, match="gradients need tensor proposals"):
        ComposedEnergy([quadratic([0.0], "q")]).energy_and_grad(["text"])


def test_a_score_only_scorer_gives_gradients_but_no_energy():
    class ScoreOnly(Scorer):
        name, has_energy = "cfg", False

        def energy_and_grad(self, x, **context):
            return None, torch.ones_like(x)

    composed = ComposedEnergy([ScoreOnly(), (quadratic([0.0, 0.0], "q"), 2.0)])
    e, grad = composed.energy_and_grad(torch.zeros(3, 2, dtype=torch.float64))
    assert e.total is None and set(e.terms) == {"q"} and set(e.grad_norms) == {"cfg", "q"}
    torch.testing.assert_close(grad, torch.ones(3, 2, dtype=torch.float64))
    with pytest.raises(EnergyError, match="'cfg' is score-only"):
        composed(torch.zeros(3, 2))


def test_a_weight_schedule_is_read_at_the_optimizers_t():
    s = quadratic([0.0], "q")
    composed = ComposedEnergy([Term(s, lambda t: 0.0 if t > 500 else 1.0)])
    x = torch.ones(2, 1, dtype=torch.float64)
    assert composed(x, t=900).total.tolist() == [0.0, 0.0]
    assert composed(x, t=100).total.tolist() == [1.0, 1.0]
    with pytest.raises(EnergyError, match="weight schedule but the optimizer passed no `t`"):
        composed(x)


def test_agreement_means_every_scorer_ranks_the_same_proposal_best():
    x = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    assert ComposedEnergy([quadratic([1.0], "a"), quadratic([1.2], "b")])(x).agree()
    disagree = ComposedEnergy([quadratic([0.0], "a"), quadratic([2.0], "b")])(x)
    assert not disagree.agree() and disagree.argmin() == 1  # the compromise is the consensus


def test_subset_keeps_weights_and_refuses_unknown_names():
    composed = ComposedEnergy([(quadratic([0.0], "a"), 2.0), (quadratic([1.0], "b"), 3.0)])
    only_b = composed.subset(["b"])
    assert only_b.names == ["b"] and only_b.terms[0].weight == 3.0
    with pytest.raises(EnergyError, match=r"unknown scorer\(s\) \['c'\]"):
        composed.subset(["c"])


def test_energies_reweighted_are_what_the_composition_with_those_weights_gives_and_a_left_out_scorer_weighs_0():
    x = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    a, b = quadratic([0.0], "a"), quadratic([2.0], "b")
    scored = ComposedEnergy([(a, 1.0), (b, 1.0)])(x)
    heavier_b = scored.reweighted({"a": 1.0, "b": 4.0})
    assert torch.allclose(heavier_b.total, ComposedEnergy([(a, 1.0), (b, 4.0)])(x).total)
    assert heavier_b.argmin() == 2 and scored.argmin() == 1 and heavier_b.weights == {"a": 1.0, "b": 4.0}
    assert scored.reweighted({"a": 1.0}).argmin() == 0 and scored.reweighted({"a": 1.0}).weights["b"] == 0.0
    with pytest.raises(EnergyError, match=r"no term named \['c'\]"):
        scored.reweighted({"c": 1.0})


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), -float("inf"), "heavy"])
def test_a_weight_that_is_not_a_finite_number_is_refused_naming_the_scorer(weight):
    with pytest.raises(EnergyError, match=r"scorer 'up' has weight"):
        ComposedEnergy([(quadratic([0.0, 1.0], "up"), weight)])


def test_a_schedule_that_returns_nan_is_refused_at_the_step_that_does():
    energy = ComposedEnergy([(quadratic([0.0, 1.0], "up"), lambda t: 1.0 if t < 5 else float("nan"))])
    x = torch.zeros(3, 2, dtype=torch.float64)
    assert torch.isfinite(energy(x, t=4).total).all()
    with pytest.raises(EnergyError, match=r"scorer 'up' has weight nan \(its schedule at t=5\)"):
        energy(x, t=5)
