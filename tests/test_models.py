"""The model wrappers load real pretrained parts offline and adapt them to the energy contract."""
import time

import pytest
import torch

from pic.models.clip_style import ClipStyleModel, ClipStyleScorer, contrastive_loss
from pic.models.efficientnet import FEATURE_DIM, EfficientNetLite0Features
from pic.models.hub import HubUnavailableError, from_hub
from pic.lm import continuation_logprobs, load_causal_lm, load_smollm2, tiny_random_llama
from pic.models.text_encoder import FrozenTextEncoder


@pytest.fixture(scope="module")
def text_encoder():
    return FrozenTextEncoder()


def test_minilm_embeds_related_captions_closer_than_unrelated_ones(text_encoder):
    e = text_encoder.encode(["a photo of a sneaker", "a picture of a running shoe", "a red circle"])
    assert e.shape == (3, 384) and torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.2
    assert torch.equal(text_encoder.encode("a red circle")[0], e[2])  # cached, identical
    with pytest.raises(ValueError, match="non-empty strings"):
        text_encoder.encode(["ok", "  "])


def test_efficientnet_lite0_loads_imagenet_weights_and_stays_frozen():
    pretrained, random = EfficientNetLite0Features(size=64), EfficientNetLite0Features(size=64, pretrained=False)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    f = pretrained(x)
    assert f.shape == (2, FEATURE_DIM) and not any(p.requires_grad for p in pretrained.parameters())
    assert not torch.allclose(f, random(x))
    assert pretrained(x[:, :1]).shape == (2, FEATURE_DIM)  # grey images are repeated to 3 channels
    with pytest.raises(ValueError, match=r"expected images \[B, 3, H, W\]"):
        pretrained(torch.rand(2, 5, 64, 64))


def test_continuation_logprobs_are_the_same_batched_as_one_by_one():
    model, tok = tiny_random_llama()
    prompts = ["Question: 2 + 2 =", "A much longer question about apples and pears, in total:", "Hi"]
    conts = [" 4", " 12 apples", " there, friend"]
    batched, counts = continuation_logprobs(model, tok, prompts, conts, batch_size=3)
    single = torch.cat([continuation_logprobs(model, tok, [p], [c])[0] for p, c in zip(prompts, conts)])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)
    assert counts.tolist() == [len(tok(c, add_special_tokens=False)["input_ids"]) for c in conts]
    with pytest.raises(ValueError, match="non-empty prompt"):
        continuation_logprobs(model, tok, [""], ["x"])


def test_smollm2_loads_offline_from_its_pypi_gguf_and_knows_a_capital():
    model, tok = load_smollm2()
    start = time.perf_counter()
    model, tok = load_smollm2()  # the second load reads the safetensors cache
    assert time.perf_counter() - start < 5
    assert type(model).__name__ == "LlamaForCausalLM" and tok.padding_side == "left"
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


def test_the_paper_profile_stops_at_once_offline_naming_the_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(HubUnavailableError, match="needs the hub model 'gpt2-medium'.*cannot reach huggingface.co"):
        load_causal_lm("paper")
    assert time.perf_counter() - start < 30


def test_the_paper_profile_wiring_loads_a_gpt2_of_the_papers_class(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=100)).save_pretrained(tmp_path)
    model = from_hub(AutoModelForCausalLM.from_pretrained, str(tmp_path))
    assert type(model).__name__ == "GPT2LMHeadModel"


class MeanTower(torch.nn.Module):
    def forward(self, x, **context):
        return x.flatten(1)


def test_clip_style_scorer_energy_is_minus_scaled_cosine_and_differentiable(text_encoder):
    model = ClipStyleModel(MeanTower(), feature_dim=12, text_dim=384)
    scorer = ClipStyleScorer(model, text_encoder, name="clip")
    x = torch.randn(4, 3, 2, 2)
    e = scorer.energy(x, prompt="a red circle").detach()
    assert e.shape == (4,) and float(e.abs().max()) <= model.scale.item() + 1e-4
    _, grad = scorer.energy_and_grad(x, prompt=["a", "b", "c", "d"])
    assert grad.shape == x.shape and grad.abs().sum() > 0
    with pytest.raises(ValueError, match="got 2 prompts for 4 images"):
        scorer.energy(x, prompt=["a", "b"])


def test_contrastive_loss_prefers_aligned_pairs():
    aligned = torch.eye(4) * 10
    shuffled = aligned[torch.tensor([1, 0, 3, 2])]
    assert contrastive_loss(aligned) < contrastive_loss(shuffled)
    assert contrastive_loss(aligned[:, :2], torch.tensor([0, 1, 0, 1])) > 0


def test_a_damaged_model_cache_is_rebuilt_with_a_warning_naming_it(tmp_path, monkeypatch):
    from pic.lm import load

    built = []

    def fake_build(folder, gguf, cached):  # stands in for the de-quantisation of the GGUF (14 s for SmolLM2)
        model, tokenizer = tiny_random_llama(hidden=16, layers=1)
        model.save_pretrained(cached), tokenizer.save_pretrained(cached)
        built.append(cached)

    monkeypatch.setattr(load, "_write_cache", fake_build)
    cached = tmp_path / "cache"
    load.load_gguf_cached(tmp_path, "model.gguf", cached)
    weights = cached / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated, as an interrupted copy would leave it
    with pytest.warns(UserWarning, match=f"the model cache {cached} cannot be read .* rebuilding it from"):
        model, _ = load.load_gguf_cached(tmp_path, "model.gguf", cached)
    assert len(built) == 2 and model.config.hidden_size == 16
