"""The consensus weights are chosen on train pools: the scorer that separates right from wrong gets the weight, a
scorer that points the wrong way gets none, and the choice round-trips through its checkpoint."""
import numpy as np
import pytest

from pic.tasks.gsm8k.proposers import Candidate
from pic.tasks.gsm8k.weights import ConsensusWeights, fit_weights


def pools_where_the_other_model_knows():
    """Programs split 2-2 between a right and a wrong answer; the wrong pair comes first (greedy and the vote's
    first-seen tie pick it); the chain-of-thought model backs the right answer."""
    pools, correct, questions = [], [], []
    for i in range(12):
        right, wrong = float(i + 10), float(i + 50)
        pool = [Candidate("coder/pot", "    return w", wrong, -0.2, 5, greedy=True),
                Candidate("coder/pot", "    return w", wrong, -0.2, 5),
                Candidate("coder/pot", "    return r", right, -0.9, 5),
                Candidate("coder/pot", "    return r", right, -0.9, 5),
                Candidate("writer/cot", f" so it is that\n#### {right:g}", right, -1.0, 9, greedy=True),
                Candidate("writer/cot", " no idea\n#### 3", 3.0, -1.0, 9)]
        pools.append(pool)
        correct.append(np.array([c.answer == right for c in pool], dtype=float))
        questions.append(f"question {i}")
    return pools, questions, correct


def test_the_weights_follow_what_separates_right_from_wrong_on_train_pools():
    pools, questions, correct = pools_where_the_other_model_knows()
    weights = fit_weights(pools, questions, correct)
    assert weights.fit_accuracy == 1.0
    assert weights.weights["cross_agreement"] > 0  # the other model's answers break the tie
    assert weights.weights["lm"] == 0  # here the likelihood prefers the wrong programs
    energy = weights.energy()
    assert all(correct[i][energy(pool, question=q).argmin()] for i, (pool, q) in enumerate(zip(pools, questions)))


def test_the_chosen_weights_round_trip_through_their_checkpoint():
    pools, questions, correct = pools_where_the_other_model_knows()
    weights = fit_weights(pools, questions, correct)
    back = ConsensusWeights.from_checkpoint(*weights.to_checkpoint())
    assert back.weights == weights.weights and back.lm_scales == weights.lm_scales  # JSON keeps floats exactly
    assert back.effective() == pytest.approx(weights.effective())
