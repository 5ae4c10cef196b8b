"""Each scorer is an energy over candidate solutions (lower = better); bad candidates get finite energies, are
counted wrong, and lose to a right solution under the composed energy."""
import pytest
import torch

from pic.energy import EnergyError
from pic.lm import Continuation
from pic.lm import tiny_random_llama
from pic.models.text_encoder import FrozenTextEncoder
from pic.tasks.gsm8k.data import EXEMPLARS, Problem, few_shot_prefix, is_correct, question_prompt
from pic.tasks.gsm8k.proposers import Candidate
from pic.tasks.gsm8k.scorers import (EMPTY_LM_ENERGY, AnswerAgreement, CalculatorScorer, CrossAgreement,
                                     ExecutionCheck, LMLikelihood, OwnLikelihood, SolutionVerifier,
                                     across_models_energy, fit_verifier, gsm8k_energy, verifier_features)

QUESTION, REFERENCE = EXEMPLARS["train-0575"]
PROBLEM = Problem("train-0575", QUESTION, REFERENCE)
BAD = {"empty": "", "no answer": " He ate a lot of calories, maybe.\n#### lots",
       "hostile power": " He ate <<9**9**9=1>>1 calories.\n#### 1",
       "hostile import": " <<__import__('os').system('ls')=0>>0\n#### 0",
       "wrong step": " There were 3*120=<<3*120=300>>300 calories\nSo he ate 300/2=<<300/2=150>>150\n#### 150"}


@pytest.fixture(scope="module")
def encoder():
    return FrozenTextEncoder()


@pytest.fixture(scope="module")
def lm():
    return tiny_random_llama()


def toy_verifier(encoder):
    """A verifier fitted on the spot: exemplar references (right) against the bad candidates (wrong)."""
    texts = [a for _, a in EXEMPLARS.values()] + list(BAD.values())
    questions = [q for q, _ in EXEMPLARS.values()] + [QUESTION] * len(BAD)
    labels = torch.tensor([1] * len(EXEMPLARS) + [0] * len(BAD))
    features = verifier_features(encoder, questions, texts)
    return SolutionVerifier(encoder, fit_verifier(features.repeat(2, 1), labels.repeat(2), groups=list(range(16)),
                                                  cs=(1.0,)))


def test_the_calculator_energy_weighs_checked_against_failed_steps_and_is_neutral_without_steps():
    e = CalculatorScorer().energy([" " + REFERENCE, BAD["wrong step"], BAD["hostile power"], BAD["empty"]])
    assert e.tolist() == pytest.approx([1 / 4 - 0.5, 2 / 4 - 0.5, 2 / 3 - 0.5, 0.0])  # (wrong + 1) / (steps + 2) - 1/2


def test_agreement_is_self_consistency_and_a_missing_answer_agrees_with_nothing():
    e = AnswerAgreement().energy(["#### 3", "x\n#### 3", "#### 4", "no answer", "#### 3.0"])
    assert e.tolist() == pytest.approx([0.4, 0.4, 0.8, 1.0, 0.4])


def test_the_lm_scorer_uses_recorded_log_probabilities_and_teacher_forces_plain_text(lm):
    model, tok = lm
    scorer = LMLikelihood(model, tok, lambda q: few_shot_prefix() + question_prompt(q))
    recorded = Continuation(" 4", [30], [-0.5, -1.5], True)
    e = scorer.energy([recorded, " 4", ""], question="2+2?")
    assert e[0] == pytest.approx(1.0) and e[2] == EMPTY_LM_ENERGY
    assert 0 < e[1] < EMPTY_LM_ENERGY  # a random tiny model: high but finite
    with pytest.raises(ValueError, match="scorer 'lm' got 1 questions for 3 solutions"):
        scorer.energy([recorded, " 4", ""], question=["2+2?"])


def test_bad_candidates_get_finite_energies_count_as_wrong_and_lose_to_the_reference(lm, encoder):
    model, tok = lm
    energy = gsm8k_energy(model, tok, lambda q: few_shot_prefix() + question_prompt(q), encoder,
                          toy_verifier(encoder).weights)
    pool = list(BAD.values()) + [" " + REFERENCE]
    e = energy(pool, question=QUESTION)  # the composed energy checks every term is finite, one per candidate
    assert int(e.total.argmin()) == len(pool) - 1
    assert not any(is_correct(t, PROBLEM) for t in BAD.values()) and is_correct(REFERENCE, PROBLEM)
    assert float(e.terms["verifier"][-1]) < float(e.terms["verifier"][:-1].min())


def test_the_verifier_reads_question_and_solution_and_refuses_a_missing_question(encoder):
    verifier = toy_verifier(encoder)
    assert verifier.features([QUESTION], [REFERENCE]).shape == (1, 3 * encoder.dim)
    with pytest.raises(ValueError, match="scorer 'verifier' needs the `question`"):
        verifier.energy([REFERENCE])


def test_a_scorer_returning_garbage_is_named_by_the_composed_energy(lm, encoder):
    class Broken(CalculatorScorer):
        name = "broken"

        def energy(self, x, **context):
            return torch.full((len(x),), float("nan"))

    from pic.energy import ComposedEnergy

    with pytest.raises(EnergyError, match="scorer 'broken' returned 2 non-finite energies"):
        ComposedEnergy([Broken(), AnswerAgreement()])(["#### 1", "#### 2"])


def pot(answer, proposer="coder/pot", logprob=-0.5):
    return Candidate(proposer, "    return ...", answer, logprob, 10)


def cot(answer, proposer="writer/cot", logprob=-1.0):
    return Candidate(proposer, f" 1+1=<<1+1=2>>2\n#### {answer}", answer, logprob, 10)


def test_agreement_counts_within_a_proposer_and_cross_agreement_across_models():
    pool = [pot(3.0), pot(3.0), pot(5.0), cot(5.0), cot(7.0)]
    assert AnswerAgreement().energy(pool).tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 0.5, 0.5])
    assert CrossAgreement().energy(pool).tolist() == pytest.approx([1.0, 1.0, 0.5, 2 / 3, 1.0])
    assert CrossAgreement().energy([pot(3.0), pot(None)]).tolist() == [1.0, 1.0]  # no other model: no evidence


def test_the_execution_check_prefers_programs_that_run_to_whole_numbers_and_leaves_text_neutral():
    assert ExecutionCheck().energy([pot(4.0), pot(4.5), pot(None), cot(None)]).tolist() == [0.0, 0.5, 1.0, 0.0]


def test_each_model_s_likelihood_is_standardised_per_proposer():
    scorer = OwnLikelihood({"coder/pot": (0.5, 0.25), "writer/cot": (1.0, 0.5)})
    e = scorer.energy([pot(1.0, logprob=-0.25), cot(1.0, logprob=-1.5), pot(1.0, logprob=None)])
    assert e.tolist() == pytest.approx([-1.0, 1.0, 3.0])


def test_the_cross_model_energy_keeps_only_scorers_with_weight():
    energy = across_models_energy({"agreement": 1.0, "cross_agreement": 2.0, "lm": 0.0}, {})
    assert energy.names == ["agreement", "cross_agreement"]
    pool = [pot(3.0), pot(5.0), pot(5.0), cot(3.0), cot(7.0)]
    assert energy(pool).argmin() == 0  # the other model's agreement outweighs the programs' majority (5)...
    light = across_models_energy({"agreement": 1.0, "cross_agreement": 0.25}, {})
    assert light(pool).argmin() == 1  # ...unless its weight is small
    with pytest.raises(ValueError, match="every consensus weight is 0"):
        across_models_energy({"lm": 0.0}, {})
