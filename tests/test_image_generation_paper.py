"""The `paper` profile of Table 1 is wired: hub ids offline stop at once naming every id; tiny random models of
the paper's classes (a DiT pipeline, a CLIPModel, a ViT classifier) run through the same scorers and sampler."""
import json
import time

import pytest
import torch

from pic.models.hub import HubUnavailableError
from pic.tasks.image.paper import PAPER_IDS, load_paper_models
from pic.models.text_encoder import minilm_path
from pic.tasks.image import generation as ig


def test_offline_the_paper_profile_stops_at_once_naming_every_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(HubUnavailableError) as err:
        load_paper_models()
    assert time.perf_counter() - start < 30
    for model_id in PAPER_IDS.values():
        assert repr(model_id) in str(err.value)


@pytest.fixture(scope="module")
def tiny_paper_ids(tmp_path_factory):
    """Tiny random models of the paper profile's classes, saved as hub-style folders."""
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel
    from transformers import (AutoTokenizer, CLIPConfig, CLIPModel, ViTConfig, ViTForImageClassification,
                              ViTImageProcessor)

    root = tmp_path_factory.mktemp("hub")
    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                        num_layers=1, sample_size=8, patch_size=2, num_embeds_ada_norm=5)
    vae = AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8, sample_size=16)
    DiTPipeline(transformer, vae, DDIMScheduler()).save_pretrained(root / "dit")
    index = json.loads((root / "dit" / "model_index.json").read_text())  # the hub's DiT lists its labels here
    index["id2label"] = {i: n for i, n in enumerate(["tench", "goldfish", "white shark", "tiger shark", "hammer"])}
    (root / "dit" / "model_index.json").write_text(json.dumps(index))
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())  # any tokenizer will do for wiring
    clip = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, eos_token_id=tokenizer.sep_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2), projection_dim=12))
    clip.save_pretrained(root / "clip")
    tokenizer.save_pretrained(root / "clip")
    ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=32, num_labels=5)
                              ).save_pretrained(root / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "vit")
    return {"generator": str(root / "dit"), "clip": str(root / "clip"), "classifier": str(root / "vit")}


def test_tiny_paper_models_run_through_the_same_scorers_with_clean_or_noised_clip(tiny_paper_ids, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    paper = load_paper_models(tiny_paper_ids)
    for noised_clip in (False, True):
        check_paper_sampler(paper, noised_clip)


def check_paper_sampler(paper, noised_clip):
    assert type(paper["clip"].image_tower.clip.model).__name__ == "CLIPModel"
    assert paper["eps_model"].null_class == 5 and paper["class_names"][1] == "goldfish"
    sampler = ig.paper_sampler(paper, noised_clip=noised_clip)
    assert {type(s.scorer).__name__ for n, s in sampler.scorers.items() if n != "cls_free"} == {
        "ClipStyleScorer", "ClassifierScorer"}
    labels = torch.tensor([0, 1, 2, 3])
    noise = ig.initial_noise(4, 0, (4, 8, 8))
    out = sampler.sample({"clip": 1.0, "cls": 1.0, "cls_free": 2.0}, labels, noise, num_steps=2,
                         mcmc=sampler.langevin(1, 0.05))
    assert out.samples.shape == (4, 4, 8, 8) and torch.isfinite(out.samples).all()
    assert {"energy/clip", "energy/cls", "grad_norm/cls_free"} <= set(out.history[-1])
    assert paper["decoder"](out.samples).shape == (4, 3, 16, 16)
    assert sampler.prompt_of(1) == "a photo of a goldfish"
