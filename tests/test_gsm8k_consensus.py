"""PIC rounds per problem share one batched generator call per round, and re-propose from the calculator-accepted
prefix of the kept candidates."""
import threading

import pytest
import torch

from pic import ComposedEnergy
from pic.lm import Continuation
from pic.lm import load_smollm2_tokenizer
from pic.optim.lockstep import lockstep
from pic.tasks.gsm8k.consensus import Request, consensus_rounds, prefix_tokens
from pic.tasks.gsm8k.scorers import AnswerAgreement, CalculatorScorer


def test_per_problem_loops_share_one_batched_call_per_round_in_a_fixed_order():
    calls = []

    def serve(payloads):
        calls.append(list(payloads))
        return [p * 10 for p in payloads]

    def loop(key, request, call):  # problem k runs k + 1 rounds, then stops (like an early stop on agreement)
        return [request(key * 100 + r) for r in range(key + 1)]

    results = lockstep([2, 0, 1], loop, serve)
    assert calls == [[0, 100, 200], [101, 201], [202]]  # round by round, key order, finished loops drop out
    assert results == {0: [0], 1: [1000, 1010], 2: [2000, 2010, 2020]}


def test_a_failing_batch_call_fails_every_loop_instead_of_hanging():
    def serve(payloads):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="consensus loop of 0 failed"):
        lockstep([0, 1, 2], lambda key, request, call: request(key), serve)
    assert threading.active_count() < 10


def test_batched_calls_and_scoring_run_on_the_calling_thread():
    """torch's OpenMP pool belongs to the thread that calls it: torch work on the loop threads would wake a pool
    per thread (twice as slow on 2 cores), so lockstep runs both the batched call and each loop's calls here."""
    threads = set()

    def serve(payloads):
        threads.add(threading.get_ident())
        return payloads

    def score(x):
        threads.add(threading.get_ident())
        if x == 3:
            raise ValueError("NaN energy")
        return -x

    def loop(key, request, call):
        return [call(score, request(key)), call(score, request(key + 1))]

    assert lockstep([0, 1], loop, serve) == {0: [0, -1], 1: [-1, -2]}
    assert threads == {threading.get_ident()}
    with pytest.raises(RuntimeError, match="consensus loop of 2 failed") as err:
        lockstep([2, 5], loop, serve)  # 2 -> score(3) fails; 5 finishes
    assert "NaN energy" in repr(err.value.__cause__.__cause__)


def continuation(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return Continuation(text, ids, [-1.0] * len(ids), True)


def test_re_proposals_continue_the_kept_candidates_from_their_accepted_prefixes():
    tok = load_smollm2_tokenizer()
    right = continuation(tok, " A is 2*3=<<2*3=6>>6.\nB is 6+1=<<6+1=7>>7.\nC is 7*2=<<7*2=14>>14.\n#### 14")
    wrong = continuation(tok, " A is 2*3=<<2*3=5>>5.\nB is 5+1=<<5+1=6>>6.\n#### 6")
    requests = []

    def request(reqs):
        requests.append(reqs)
        kept = [tok.decode(r.seed.tokens[:r.keep_tokens]) for r in reqs]
        return [continuation(tok, k + "C is 7*2=<<7*2=14>>14.\n#### 14") for k in kept]

    energy = ComposedEnergy([CalculatorScorer(), AnswerAgreement()])
    result = consensus_rounds(energy, "q", [wrong, right], [1, 2, 3], tok, request, keep=2, n=2, rounds=2)
    (first,) = requests
    assert [tok.decode(r.seed.tokens[:r.keep_tokens]) for r in first] == [
        " A is 2*3=<<2*3=6>>6.\nB is 6+1=<<6+1=7>>7.\n", ""]  # the right one kept first; the wrong one from scratch
    assert all(isinstance(r, Request) and r.tail == [1, 2, 3] for r in first)
    assert result.rounds.best.text.endswith("#### 14") and len(result.best_after) == 2


def test_the_accepted_prefix_is_cut_on_a_token_boundary():
    tok = load_smollm2_tokenizer()
    c = continuation(tok, " Tom has 3*4=<<3*4=12>>12.\nHe buys 12+5=<<12+5=18>>18.\n#### 18")
    j = prefix_tokens(tok, c)
    assert tok.decode(c.tokens[:j]) == " Tom has 3*4=<<3*4=12>>12.\n"
    assert prefix_tokens(tok, continuation(tok, " 3*4=<<3*4=11>>11\n#### 11")) == 0
