"""ActivityNet-QA in its released format, for the `paper` profile: questions and answers as JSON, videos as
folders of extracted frames (the scorers pool over frames, so the consensus code is the one easy-VQA uses).

Layout under `root` (https://github.com/MILVLG/activitynet-qa; frames extracted beforehand, e.g.
`ffmpeg -i v_<id>.mp4 -vf fps=1 frames/<video_name>/%05d.jpg`):
    <split>_q.json   [{"question": ..., "question_id": ..., "video_name": ...}, ...]
    <split>_a.json   [{"answer": ..., "question_id": ..., "type": 0-8}, ...]
    frames/<video_name>/*.jpg|png   (or frames/v_<video_name>/)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pic.assets import AssetError
from pic.tasks.vqa.data import Question

QUESTION_TYPES = ("motion", "spatial relation", "temporal relation", "yes/no", "color", "object", "location",
                  "number", "other")
_LAYOUT = ("<root>/<split>_q.json, <root>/<split>_a.json and <root>/frames/<video_name>/*.jpg "
           "(questions and answers from https://github.com/MILVLG/activitynet-qa, frames extracted from the videos)")


def load_activitynet_qa(root: str | Path, split: str) -> list[Question]:
    """The split's questions joined with their answers on question_id, in the question file's order."""
    root = Path(root)
    q_path, a_path = root / f"{split}_q.json", root / f"{split}_a.json"
    for path in (q_path, a_path):
        if not path.exists():
            raise AssetError(f"{path} is missing; ActivityNet-QA is expected as {_LAYOUT}")
    questions, answers = json.loads(q_path.read_text()), json.loads(a_path.read_text())
    by_id = {a["question_id"]: a for a in answers}
    out = []
    for q in questions:
        a = by_id.get(q["question_id"])
        if a is None:
            raise AssetError(f"{a_path.name} has no answer for question_id {q['question_id']!r}")
        kind = a.get("type")
        if not isinstance(kind, int) or not 0 <= kind < len(QUESTION_TYPES):
            raise AssetError(f"question {q['question_id']!r} has type {kind!r}; ActivityNet-QA types are 0-8")
        text = q["question"].strip()
        out.append(Question(text if text.endswith("?") else text + "?", a["answer"].strip().lower(),
                            q["video_name"], QUESTION_TYPES[kind]))
    return out


def frame_folder(root: str | Path, video: str) -> Path:
    frames = Path(root) / "frames"
    for name in (video, f"v_{video}"):
        if (frames / name).is_dir():
            return frames / name
    raise AssetError(f"no frames for video {video!r} under {frames}; expected {_LAYOUT}")


def load_video(root: str | Path, video: str, num_frames: int, size: int) -> torch.Tensor:
    """`num_frames` frames spread evenly over the video, as floats [F, 3, size, size] in [0, 1]."""
    from PIL import Image

    paths = sorted(p for p in frame_folder(root, video).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise AssetError(f"{frame_folder(root, video)} holds no .jpg/.png frames")
    picks = np.linspace(0, len(paths) - 1, num_frames).round().astype(int)
    frames = [np.asarray(Image.open(paths[i]).convert("RGB").resize((size, size), Image.BICUBIC)) for i in picks]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0


def load_videos(root: str | Path, videos: Sequence[str], num_frames: int, size: int) -> torch.Tensor:
    """[V, F, 3, size, size] for the given videos, in order."""
    return torch.stack([load_video(root, v, num_frames, size) for v in videos])
