"""CLIP-style scorers of statements against stacks of frames: frames are pooled, batches and caches change nothing,
bad frames are resized or refused by name, and the paper's CLIP class is wired through the same interface."""
import re
import time

import pytest
import torch

from pic import ComposedEnergy
from pic.models.clip_style import ClipStyleModel
from pic.tasks.vqa.frame_scorer import PAPER_CLIPS, FrameTextScorer, from_clip_style, load_paper_clip
from pic.models.hub import HubUnavailableError


class Flatten(torch.nn.Module):
    def forward(self, x, **context):
        return x.flatten(1)


class FakeTexts:
    """A deterministic text tower: a fixed random vector per string, counting how many strings it embeds."""

    def __init__(self, dim=8):
        self.dim, self.embedded = dim, 0

    def encode(self, texts):
        self.embedded += len(texts)
        return torch.stack([torch.nn.functional.normalize(
            torch.randn(self.dim, generator=torch.Generator().manual_seed(sum(map(ord, t)))), dim=0) for t in texts])


@pytest.fixture
def scorer():
    torch.manual_seed(0)
    return from_clip_style(ClipStyleModel(Flatten(), 3 * 4 * 4, text_dim=8), FakeTexts(), "toy", image_size=4)


def test_a_video_embedding_is_the_renormalised_mean_of_its_frame_embeddings(scorer):
    frames = torch.rand(2, 3, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    video = scorer.embed_videos(frames)
    per_frame = torch.nn.functional.normalize(scorer.embed_images(frames.flatten(0, 1)), dim=-1).view(2, 3, -1)
    torch.testing.assert_close(video, torch.nn.functional.normalize(per_frame.mean(1), dim=-1))
    single = scorer.embed_videos(frames[:, :1])  # an image is a video of one frame
    torch.testing.assert_close(single, scorer.embed_videos(frames[:, 0]))


def test_energies_are_minus_scaled_cosines_and_each_statement_is_embedded_once(scorer):
    videos = scorer.embed_videos(torch.rand(2, 1, 3, 4, 4))
    statements = ["a red circle", "a blue shape", "a red circle", "a red circle"]
    index = torch.tensor([0, 0, 1, 1])
    e = scorer.energy(statements, video_embeddings={"toy": videos}, question_index=index)
    texts = FakeTexts().encode(statements)
    torch.testing.assert_close(e, -scorer.scale * (videos[index] * texts).sum(-1))
    assert scorer.embed_texts.__self__.embedded == 2  # two distinct statements
    composed = ComposedEnergy([scorer])(statements, video_embeddings={"toy": videos}, question_index=index)
    torch.testing.assert_close(composed.total, e)


def test_frames_of_the_wrong_size_are_resized_with_a_warning_and_wrong_channels_refused(scorer):
    with pytest.warns(UserWarning, match=r"frames of \(8, 8\) are resized to 4x4"):
        assert scorer.embed_videos(torch.rand(2, 1, 3, 8, 8)).shape == (2, 8)
    assert scorer.embed_videos(torch.rand(2, 1, 1, 4, 4)).shape == (2, 8)  # grey is repeated to RGB
    with pytest.raises(ValueError, match=r"scorer 'toy' needs frames \[B, F, C, H, W\].*got shape \(2, 1, 4, 4, 4\)"):
        scorer.embed_videos(torch.rand(2, 1, 4, 4, 4))
    with pytest.raises(ValueError, match="float frames in \\[0, 1\\], got torch.uint8"):
        scorer.embed_videos(torch.zeros(2, 1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="needs `video_embeddings`"):
        scorer.energy(["a"])


def tiny_clip(folder):
    """A randomly initialised transformers CLIPModel and CLIPTokenizer of the paper's classes, saved to `folder`."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz?.,' ":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=40, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2), projection_dim=8)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    return folder


def test_the_paper_clip_class_scores_statements_against_frames_through_the_same_interface(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = load_paper_clip(str(tiny_clip(tmp_path)), name="clip-tiny")
    assert isinstance(scorer, FrameTextScorer) and scorer.image_size == 32
    videos = scorer.embed_videos(torch.rand(3, 4, 3, 32, 32))  # 3 videos of 4 frames
    assert videos.shape == (3, 8) and torch.allclose(videos.norm(dim=-1), torch.ones(3))
    e = ComposedEnergy([scorer])(["a red circle", "there is no circle", "yes"], video_embeddings={"clip-tiny": videos})
    assert e.total.shape == (3,) and torch.isfinite(e.total).all()


def test_each_paper_clip_stops_at_once_offline_naming_its_id(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for model_id in PAPER_CLIPS:
        start = time.perf_counter()
        with pytest.raises(HubUnavailableError, match=re.escape(model_id)):
            load_paper_clip(model_id)
        assert time.perf_counter() - start < 30, f"{model_id} did not stop at once"
