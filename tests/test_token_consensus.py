"""Token-level consensus (ZeroCap-style): the scorers' preference among the language model's candidates is pulled
into its next-token distribution, balanced by fluency; cached, memoised, batched decoding changes nothing."""
import pytest
import torch

from pic import ComposedEnergy, FunctionScorer
from pic.lm import tiny_random_llama
from pic.optim.token_consensus import ConsensusConfig, consensus_decode, refine_distribution
from pic.lm import PromptedLM

QUESTIONS = ["what color is the shape?", "is there a red shape in the image?", "what shape is present?"]


@pytest.fixture(scope="module")
def llama():
    return tiny_random_llama()


def prompted(model, tokenizer, prefix="Q: what animal is on the sofa?\nA: cat\n"):
    return PromptedLM(model, tokenizer, prefix, lambda q: f"Q: {q}\nA:", batch_size=2)


def likes(word: str, name: str = "likes"):
    """A scorer whose energy is -5 for statements containing `word`, 0 otherwise."""
    return FunctionScorer(lambda x, **_: torch.tensor([-5.0 if word in s else 0.0 for s in x]), name,
                          differentiable=False)


def test_cached_batched_logits_equal_a_plain_forward_of_the_whole_sequence(llama):
    model, tok = llama
    lm = prompted(model, tok)
    prompts = [lm.prompt_ids(q) for q in QUESTIONS]
    for generated in [(), (11,), (11, 12)]:
        got = lm.logits([p + generated for p in prompts], [len(p) for p in prompts])
        ref = torch.stack([model(input_ids=torch.tensor([lm.prefix.ids + list(p + generated)])).logits[0, -1]
                           for p in prompts])
        torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_the_language_model_alone_decodes_greedily_as_a_plain_loop_would(llama):
    model, tok = llama
    lm = prompted(model, tok)
    config = ConsensusConfig(top_k=4, max_new_tokens=3)
    out = consensus_decode(lm, QUESTIONS, lambda b, a: a or "x", None, config)
    for q, tokens in zip(QUESTIONS, out.tokens):
        ids = lm.prefix.ids + list(lm.prompt_ids(q))
        expected = []
        for _ in range(config.max_new_tokens):
            nxt = int(model(input_ids=torch.tensor([ids + expected])).logits[0, -1].argmax())
            if lm.ends_answer(nxt):
                break
            expected.append(nxt)
        assert tokens == expected


def test_refinement_pulls_the_distribution_towards_the_scorers_and_fluency_holds_it_back():
    torch.manual_seed(0)
    log_p = torch.log_softmax(torch.randn(2, 6), -1) - 0.1  # top-6 of a larger vocabulary
    target = torch.softmax(torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 4.0]] * 2), -1)  # scorers want the last one
    config = ConsensusConfig(iterations=6, step_size=0.5, fluency=0.2)  # fixed-size steps: far from the optimum
    fused, history = refine_distribution(log_p, target, config, trace=True)
    wanted = [float(q[0, -1]) for q in history]
    assert all(b > a for a, b in zip(wanted, wanted[1:])), wanted  # each step moves towards the target
    assert int(fused[0].argmax()) == 5
    stiff, _ = refine_distribution(log_p, target, ConsensusConfig(iterations=6, step_size=0.05, fluency=0.2))
    assert int(stiff[0].argmax()) == int(log_p[0].argmax())  # small steps leave the model's choice in place
    alone, _ = refine_distribution(log_p, None, config)
    assert torch.equal(alone, log_p)


def test_consensus_decoding_follows_the_scorers_among_the_models_candidates(llama):
    model, tok = llama
    lm = prompted(model, tok)
    config = ConsensusConfig(top_k=8, step_size=3.0, max_new_tokens=1)
    _, ids = lm.top_k([lm.prompt_ids(QUESTIONS[0])], [len(lm.prompt_ids(QUESTIONS[0]))], 8)
    wanted = tok.decode([int(ids[0, 5])])  # the model's 6th choice
    out = consensus_decode(lm, QUESTIONS[:1], lambda b, a: a, ComposedEnergy([likes(wanted)]), config)
    assert out.texts[0] == wanted.strip()


def test_decoding_a_batch_gives_the_answers_of_one_question_at_a_time(llama):
    model, tok = llama
    energy = ComposedEnergy([likes("e", "a"), (likes("o", "b"), 0.5)])
    config = ConsensusConfig(top_k=6, max_new_tokens=3, step_size=1.0)
    batch = consensus_decode(prompted(model, tok), QUESTIONS, lambda b, a: a or "x", energy, config)
    single = [consensus_decode(prompted(model, tok), [q], lambda b, a: a or "x", energy, config).texts[0]
              for q in QUESTIONS]
    assert batch.texts == single


def test_the_key_value_variant_also_pulls_towards_the_scorers(llama):
    model, tok = llama
    lm = prompted(model, tok)
    config = ConsensusConfig(top_k=6, max_new_tokens=1, step_size=3.0, iterations=3, variant="kv")
    q = QUESTIONS[0]
    _, ids = lm.top_k([lm.prompt_ids(q)], [len(lm.prompt_ids(q))], 6)
    wanted = tok.decode([int(ids[0, 3])])
    out = consensus_decode(lm, [q], lambda b, a: a, ComposedEnergy([likes(wanted)]), config, trace_rows=[0])
    q_wanted = [float(h[3]) for h in out.trace[0]["q"]]
    assert q_wanted[-1] > q_wanted[0], q_wanted
    with pytest.raises(ValueError, match="variant must be"):
        ConsensusConfig(variant="beam")


def test_the_paper_generator_class_gpt2_runs_through_the_same_cached_decoder(llama):
    from transformers import GPT2Config, GPT2LMHeadModel

    _, tok = llama
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=len(tok))).eval()
    lm = prompted(gpt2, tok)
    prompts = [lm.prompt_ids(q) for q in QUESTIONS]
    got = lm.logits([p + (7,) for p in prompts], [len(p) for p in prompts])
    ref = torch.stack([gpt2(input_ids=torch.tensor([lm.prefix.ids + list(p) + [7]])).logits[0, -1] for p in prompts])
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    out = consensus_decode(lm, QUESTIONS, lambda b, a: a or "x", ComposedEnergy([likes("a")]),
                           ConsensusConfig(top_k=4, max_new_tokens=2))
    assert len(out.texts) == 3


def test_no_questions_or_an_empty_prompt_are_refused(llama):
    model, tok = llama
    lm = PromptedLM(model, tok, "", lambda q: q)
    with pytest.raises(ValueError, match="no questions"):
        consensus_decode(lm, [], lambda b, a: a, None)
    with pytest.raises(ValueError, match="has no tokens"):
        lm.prompt_ids("")
