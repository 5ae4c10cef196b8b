"""Soups average fine-tunings and the greedy soup never lowers its validation score; the pre-merge distances
match their definitions."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pic.merging import (MergeError, cosine_similarity, greedy_soup, l2_distance, sign_conflict_rate,
                         soft_sign_dissimilarity, truncated_soft_sign_dissimilarity, uniform_soup)


def scalar_models(values):
    return {f"c{i}": {"w": torch.tensor([float(v)])} for i, v in enumerate(values)}


def closeness(target):
    return lambda state: -float((state["w"] - target).pow(2).sum())  # higher is better


def test_the_uniform_soup_is_the_plain_average():
    models = scalar_models([1.0, 2.0, 6.0])
    assert uniform_soup(models)["w"].item() == pytest.approx(3.0)


def test_greedy_soup_adds_candidates_best_first_and_keeps_only_those_that_do_not_lower_the_score():
    # own scores against 0: c0 -0.01, c3 -0.0225, c1 -0.04, c2 -25 -> tried in the order c0, c3, c1, c2
    soup = greedy_soup(scalar_models([0.1, -0.2, 5.0, -0.15]), closeness(0.0))
    assert [name for name, _, _ in soup.history] == ["c0", "c3", "c1", "c2"]
    assert soup.ingredients == ["c0", "c3"]  # mean -0.025 helps; adding c1 (-0.083) or c2 (1.65) hurts
    assert soup.state["w"].item() == pytest.approx(-0.025)
    assert soup.score == pytest.approx(-0.025 ** 2)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=6), target=st.floats(-5, 5))
def test_greedy_soup_never_accepts_a_candidate_that_lowers_the_validation_score(values, target):
    soup = greedy_soup(scalar_models(values), closeness(target))
    score = soup.history[0][1]
    for _, trial, kept in soup.history[1:]:
        assert kept == (trial >= score)
        score = trial if kept else score
    assert soup.score == score >= max(closeness(target)(m) for m in scalar_models(values).values())


def test_greedy_soup_uses_given_scores_for_the_ranking():
    calls = []

    def evaluate(state):
        calls.append(state["w"].item())
        return closeness(0.0)(state)

    soup = greedy_soup(scalar_models([3.0, 1.0]), evaluate, scores={"c0": 1.0, "c1": 0.0})
    assert soup.history[0][0] == "c0" and calls == [pytest.approx(2.0)]  # only the trial soup is evaluated


def pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    base = {"a": torch.randn(3, 4, generator=g), "b": torch.randn(5, generator=g)}
    return base, [{k: v + torch.randn(v.shape, generator=g) for k, v in base.items()} for _ in range(2)]


def flat(state, base=None):
    return torch.cat([(state[k] - (base[k] if base else 0)).flatten() for k in ("a", "b")]).double()


def test_l2_and_cosine_are_those_of_the_flattened_weights_or_task_vectors():
    base, (x, y) = pair()
    assert l2_distance(x, y) == pytest.approx(float(torch.linalg.norm(flat(x) - flat(y))))
    assert cosine_similarity(x, y) == pytest.approx(float(torch.nn.functional.cosine_similarity(flat(x), flat(y), 0)))
    tv = float(torch.nn.functional.cosine_similarity(flat(x, base), flat(y, base), 0))
    assert cosine_similarity(x, y, base) == pytest.approx(tv)
    assert l2_distance(x, y, include="^a") == pytest.approx(float(torch.linalg.norm(x["a"] - y["a"])))
    with pytest.raises(MergeError, match="cosine of a zero vector"):
        cosine_similarity(base, y, base)


def test_sign_conflict_rate_counts_coordinates_where_two_task_vectors_disagree():
    taus = [torch.tensor([1.0, -1.0, 0.0, 2.0]), torch.tensor([1.0, 1.0, -1.0, 0.0]),
            torch.tensor([0.0, 0.0, 1.0, -1.0])]
    assert sign_conflict_rate(taus) == 0.75  # every coordinate but the first has a + and a -
    base = {"w": torch.full((4,), 5.0)}
    assert sign_conflict_rate([{"w": base["w"] + t} for t in taus], base) == 0.75


def test_soft_sign_dissimilarity_is_zero_for_agreeing_signs_one_for_opposite_and_graded_between():
    x = torch.tensor([1.0, 2.0, -3.0])
    assert soft_sign_dissimilarity(x, 2 * x) == 0.0
    assert soft_sign_dissimilarity(x, -x) == 1.0
    # per entry |x + y| / (|x| + |y|): [1, 0] -> 1 - 1/2; [0.5, 1] -> 1 - 3/4
    assert soft_sign_dissimilarity(torch.tensor([1.0, 2.0]), torch.tensor([1.0, -2.0])) == pytest.approx(0.5)
    assert soft_sign_dissimilarity(torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 1.0])) == pytest.approx(0.25)


def test_truncated_soft_sign_dissimilarity_compares_only_the_largest_entries():
    x, y = torch.tensor([10.0, 1.0, 1.0, 8.0]), torch.tensor([10.0, -1.0, -1.0, 8.0])
    assert soft_sign_dissimilarity(x, y) == pytest.approx(0.5)  # the two small entries disagree
    assert truncated_soft_sign_dissimilarity(x, y, keep=0.5) == 0.0  # the two large ones agree
    base, (a, b) = pair()
    assert truncated_soft_sign_dissimilarity(a, b, base, keep=1.0) == pytest.approx(soft_sign_dissimilarity(a, b, base))
    with pytest.raises(MergeError, match=r"keep=0 must be in \(0, 1\]"):
        truncated_soft_sign_dissimilarity(x, y, keep=0)
