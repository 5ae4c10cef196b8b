"""Batched decoding from a shared cached prefix gives exactly what plain `generate` gives, one prompt at a time,
and records the model's own token log-probabilities; LoRA adapters round-trip through safetensors."""
import copy

import pytest
import torch

from pic.lm import SharedPrefix, beam_search, fast_cpu_inference, sample
from pic.lm import tiny_random_llama
from pic.lm.lora import adapter_tensors, add_lora, merged_with_adapter

PREFIX = "Question: one plus one?\nAnswer: two.\n\n"
TAILS = ["Question: what is two plus three, in words?\nAnswer:", "Question: hi?\nAnswer:",
         "Question: a much longer question, with many more words in it than the other two?\nAnswer:"]


def lively_tiny_llama():
    """The smoke profile's tiny random Llama with larger random weights, so that greedy outputs vary by prompt
    (the default initialisation repeats one token)."""
    model, tok = tiny_random_llama(seed=0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model, tok


def teacher_forced(model, prompt_ids, tokens):
    """log p(token | all before) of each generated token, from one plain forward pass."""
    full = torch.tensor([prompt_ids + tokens])
    logp = torch.log_softmax(model(full).logits[0, :-1].float(), -1)
    return logp[torch.arange(len(prompt_ids) - 1, full.shape[1] - 1), torch.tensor(tokens)]


@pytest.fixture(scope="module")
def lm():
    return lively_tiny_llama()


def plain_generate(model, ids, **kwargs):
    ids = torch.tensor([ids])
    return model.generate(input_ids=ids, do_sample=False, **kwargs)[0, ids.shape[1]:].tolist()


def test_greedy_from_a_shared_prefix_equals_plain_generate_one_prompt_at_a_time(lm):
    model, tok = lm
    prefix = SharedPrefix(model, tok, PREFIX)
    tails = [prefix.tail_ids(t) for t in TAILS]
    out = sample(prefix, tails, n=1, temperature=0.0, max_new_tokens=12)
    for tail, (c,) in zip(tails, out):
        assert c.tokens == plain_generate(model, prefix.ids + tail, max_new_tokens=12)
    assert len({tuple(c.tokens) for (c,) in out}) == 3  # the prompts really differ


@pytest.mark.parametrize("shared", [False, True], ids=["prefix copied per beam", "prefix shared by all beams"])
def test_beam_search_from_a_shared_prefix_equals_plain_generate(lm, shared):
    model, tok = lm
    prefix = SharedPrefix(fast_cpu_inference(copy.deepcopy(model), dtype="float32") if shared else model, tok, PREFIX)
    assert prefix.shared == shared
    tails = [prefix.tail_ids(t) for t in TAILS]
    for tail, c in zip(tails, beam_search(prefix, tails, num_beams=3, max_new_tokens=10)):
        assert c.tokens == plain_generate(model, prefix.ids + tail, max_new_tokens=10, num_beams=3,
                                          early_stopping=True)
        assert c.logprobs == []  # beam search records no per-token log-probabilities


@pytest.mark.parametrize("shared", [False, True], ids=["prefix copied per row", "prefix shared by all rows"])
def test_rows_joining_a_running_batch_decode_as_if_alone(lm, shared):
    """Continuous batching: a batch of 3 rows, prompts with 1 to 3 samples finishing at different lengths, later
    prompts joining mid-way (their cache padded to the running one), sampled rows next to greedy ones."""
    reference, tok = lm
    model = fast_cpu_inference(copy.deepcopy(reference), dtype="float32") if shared else reference
    prefix = SharedPrefix(model, tok, PREFIX)
    assert prefix.shared == shared
    tails = [prefix.tail_ids(t) for t in TAILS + ["Question: why?\nAnswer:", "Question: five?\nAnswer:"]]
    lengths = [3, 11, 6, 9, 4]
    stops = [lambda text, k=k: k if len(text) >= k else None for k in lengths]
    temps = [0.0, 1.0, 0.0, 0.0, 1.0]
    counts = [1, 2, 1, 1, 3]
    out = sample(prefix, tails, n=counts, temperature=temps, max_new_tokens=12, stop=stops, batch_size=3,
                 generator=torch.Generator().manual_seed(0))
    assert [len(row) for row in out] == counts
    for tail, row, k, t in zip(tails, out, lengths, temps):
        for c in row:
            assert c.stopped and len(c.text) == k
            if t == 0:
                assert c.tokens == plain_generate(reference, prefix.ids + tail, max_new_tokens=12)[:len(c.tokens)]
            torch.testing.assert_close(torch.tensor(c.logprobs),
                                       teacher_forced(reference, prefix.ids + tail, c.tokens), atol=1e-4, rtol=1e-4)


def test_sampled_log_probabilities_are_the_models_own_untempered_ones(lm):
    model, tok = lm
    prefix = SharedPrefix(model, tok, PREFIX)
    tails = [prefix.tail_ids(t) for t in TAILS]
    out = sample(prefix, tails, n=2, temperature=0.7, max_new_tokens=8, generator=torch.Generator().manual_seed(0))
    for tail, pair in zip(tails, out):
        for c in pair:
            torch.testing.assert_close(torch.tensor(c.logprobs), teacher_forced(model, prefix.ids + tail, c.tokens),
                                       atol=1e-4, rtol=1e-4)


def test_sampling_is_reproducible_with_a_seeded_generator_and_stops_where_the_rule_says(lm):
    model, tok = lm
    prefix = SharedPrefix(model, tok, PREFIX)
    tails = [prefix.tail_ids(t) for t in TAILS]
    run = lambda: sample(prefix, tails, n=3, temperature=1.0, max_new_tokens=10,
                         generator=torch.Generator().manual_seed(5))
    first, again = run(), run()
    assert [[c.tokens for c in r] for r in first] == [[c.tokens for c in r] for r in again]
    stop_at_5 = lambda text: 5 if len(text) >= 5 else None
    for row in sample(prefix, tails, n=2, temperature=1.0, max_new_tokens=30, stop=stop_at_5,
                      generator=torch.Generator().manual_seed(5)):
        assert all(c.stopped and len(c.text) == 5 for c in row)
    with pytest.raises(ValueError, match="2 stop rules for 3 prompt tails"):
        sample(prefix, tails, stop=[stop_at_5, stop_at_5])


def test_the_decoding_attention_matches_the_librarys_sdpa(lm):
    reference, tok = lm
    fast = fast_cpu_inference(copy.deepcopy(reference), dtype="float32")
    tails = [[10, 11, 12, 13], [20, 21]]
    a = sample(SharedPrefix(reference, tok, PREFIX), tails, temperature=0.0, max_new_tokens=10)
    b = sample(SharedPrefix(fast, tok, PREFIX), tails, temperature=0.0, max_new_tokens=10)
    for (x,), (y,) in zip(a, b):
        assert x.tokens == y.tokens
        torch.testing.assert_close(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-4, rtol=1e-4)


def test_the_bfloat16_models_float32_head_gives_float32_logits_of_the_same_products(lm):
    """The head computes bfloat16 values with oneDNN's bfloat16 matmul: the logits must still be float32 (not
    rounded to bfloat16) and equal the float32 product, and the global matmul setting must be left as it was."""
    model = fast_cpu_inference(copy.deepcopy(lm[0]), dtype="bfloat16")
    head = model.get_output_embeddings()
    hidden = torch.randn(7, head.weight.shape[1]).bfloat16()
    before = torch.backends.mkldnn.matmul.fp32_precision
    logits = head(hidden)
    assert logits.dtype == torch.float32 and torch.backends.mkldnn.matmul.fp32_precision == before
    exact = hidden.double() @ head.weight.double().T
    torch.testing.assert_close(logits.double(), exact, atol=1e-4, rtol=1e-5)
    assert (logits.double() - exact).abs().max() < (hidden @ head.weight.bfloat16().T).double().sub(exact).abs().max()


def test_a_lora_adapter_round_trips_through_safetensors_without_pickle(lm, tmp_path):
    from safetensors.torch import load_file, save_file

    peft_model = add_lora(copy.deepcopy(lm[0]), rank=4, alpha=8.0, targets=("q_proj", "v_proj"))
    with torch.no_grad():  # a trained-looking adapter (peft starts with B = 0, i.e. no change)
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.eval()  # no LoRA dropout in the reference output
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    want = peft_model(input_ids=ids).logits
    tensors, meta = adapter_tensors(peft_model, dtype=torch.float32)
    save_file(tensors, tmp_path / "adapter.safetensors", metadata=meta)
    merged = merged_with_adapter(copy.deepcopy(lm[0]), load_file(tmp_path / "adapter.safetensors"), meta)
    torch.testing.assert_close(merged(input_ids=ids).logits, want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="no LoRA config"):
        merged_with_adapter(copy.deepcopy(lm[0]), tensors, {})


def test_the_papers_model_class_gpt2_decodes_from_a_shared_prefix_like_plain_generate(lm):
    """The `paper` profile's generator is GPT-2-Medium: a tiny random GPT-2 (same class) through the same paths."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = lm[1]
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=len(tok), n_positions=512,
                                      initializer_range=0.3)).eval()
    fast_cpu_inference(gpt2, dtype="float32")
    prefix = SharedPrefix(gpt2, tok, PREFIX)
    tails = [prefix.tail_ids(t) for t in TAILS]
    for tail, (c,) in zip(tails, sample(prefix, tails, temperature=0.0, max_new_tokens=8)):
        assert c.tokens == plain_generate(gpt2, prefix.ids + tail, max_new_tokens=8)
    for tail, c in zip(tails, beam_search(prefix, tails, num_beams=2, max_new_tokens=6)):
        assert c.tokens == plain_generate(gpt2, prefix.ids + tail, max_new_tokens=6, num_beams=2, early_stopping=True)
