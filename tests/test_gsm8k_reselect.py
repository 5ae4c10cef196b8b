"""A selection row can be re-run from the energies the records hold, with other weights or without a scorer: the
argmin follows the weights, a scorer left out weighs nothing, and a scorer the records never scored is an error."""
import numpy as np
import pytest

from pic.tasks.gsm8k.analysis import reselect
from pic.tasks.gsm8k.data import Problem


def records_where_likelihood_and_agreement_disagree(pool="samples"):
    """Per problem three candidates: the likeliest one is wrong, the one most others agree with is right."""
    problems = [Problem(f"test-{i}", f"question {i}", f"#### {i}") for i in range(3)]
    records = {(p.id, pool): {"energies": {"lm": [0.1, 0.5, 0.9], "agreement": [0.8, 0.2, 0.5],
                                           "calculator": [0.0, 0.0, -0.5]},
                              "correct": [False, True, False]} for p in problems}
    return records, problems


def test_the_reselected_candidate_follows_the_weights():
    records, problems = records_where_likelihood_and_agreement_disagree()
    assert reselect(records, problems, {"lm": 1.0}).tolist() == [0.0, 0.0, 0.0]  # the likeliest: wrong
    assert reselect(records, problems, {"lm": 1.0, "agreement": 1.0}).tolist() == [1.0, 1.0, 1.0]  # 0.7 < 0.9
    assert reselect(records, problems, {"lm": 4.0, "agreement": 1.0}).tolist() == [0.0, 0.0, 0.0]
    # the calculator, left out, weighs nothing; given, it picks the third candidate (wrong)
    assert reselect(records, problems, {"calculator": 1.0, "lm": 0.1}).tolist() == [0.0, 0.0, 0.0]


def test_the_records_of_the_cross_model_pool_read_the_same_way_and_an_unscored_scorer_is_named():
    records, problems = records_where_likelihood_and_agreement_disagree("pool")
    assert reselect(records, problems, {"agreement": 1.0}, pool="pool").tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(KeyError, match="verifier"):
        reselect(records, problems, {"agreement": 1.0, "verifier": 1.0}, pool="pool")
    assert isinstance(reselect(records, problems, {"lm": 1.0}, pool="pool"), np.ndarray)
