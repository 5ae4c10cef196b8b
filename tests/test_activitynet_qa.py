"""The ActivityNet-QA loader (the `paper` profile's data) reads the released JSON format and frame folders, and feeds
the same scorers and statements as easy-VQA."""
import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from pic.assets import AssetError
from pic.models.hub import HubUnavailableError
from pic.tasks.vqa import activitynet as anet
from pic.tasks.vqa.data import statement


@pytest.fixture
def root(tmp_path):
    """Two videos (5 and 3 frames) and three questions in ActivityNet-QA's file format."""
    (tmp_path / "test_q.json").write_text(json.dumps([
        {"question": "is the man wearing a hat", "question_id": "v_a_0", "video_name": "a"},
        {"question": "what color is the ball", "question_id": "v_a_1", "video_name": "a"},
        {"question": "what is the woman doing?", "question_id": "v_b_0", "video_name": "b"}]))
    (tmp_path / "test_a.json").write_text(json.dumps([
        {"answer": "Yes", "question_id": "v_a_0", "type": 3}, {"answer": "red", "question_id": "v_a_1", "type": 4},
        {"answer": "dancing", "question_id": "v_b_0", "type": 0}]))
    for video, n in (("a", 5), ("v_b", 3)):
        folder = tmp_path / "frames" / video
        folder.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((20, 30, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i:05d}.jpg")
    return tmp_path


def test_questions_join_their_answers_and_types(root):
    qs = anet.load_activitynet_qa(root, "test")
    assert [(q.text, q.answer, q.video, q.kind) for q in qs] == [
        ("is the man wearing a hat?", "yes", "a", "yes/no"), ("what color is the ball?", "red", "a", "color"),
        ("what is the woman doing?", "dancing", "b", "motion")]
    assert statement(qs[0].text, "yes") == "is the man wearing a hat? yes"


def test_frames_are_sampled_evenly_resized_and_stacked_as_videos(root):
    videos = anet.load_videos(root, ["a", "b"], num_frames=3, size=16)
    assert videos.shape == (2, 3, 3, 16, 16) and videos.dtype == torch.float32
    first, middle, last = videos[0, :, 0, 0, 0] * 255
    assert (round(float(first)), round(float(middle)), round(float(last))) == (0, 80, 160)  # frames 0, 2, 4 of 5


def test_missing_files_and_bad_types_are_named(root):
    with pytest.raises(AssetError, match="val_q.json is missing; ActivityNet-QA is expected as"):
        anet.load_activitynet_qa(root, "val")
    with pytest.raises(AssetError, match="no frames for video 'c'"):
        anet.load_video(root, "c", 2, 16)
    (root / "test_a.json").write_text(json.dumps([{"answer": "x", "question_id": "v_a_0", "type": 12}]))
    with pytest.raises(AssetError, match="has no answer for question_id 'v_a_1'|has type 12"):
        anet.load_activitynet_qa(root, "test")


def test_the_paper_profile_stops_at_once_offline_naming_every_model_id(monkeypatch):
    from pic.tasks.vqa.consensus import load_paper_models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(HubUnavailableError, match=r"needs the hub models \['gpt2-medium', "
                                                   r"'openai/clip-vit-base-patch32', 'openai/clip-vit-large-patch14'\]"):
        load_paper_models()
    assert time.perf_counter() - start < 30
