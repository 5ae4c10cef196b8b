"""Table 2: visual question answering by consensus of a language model and CLIP-style scorers, on easy-VQA.

easy-VQA (PyPI `easy-vqa`, MIT) holds 64x64 images of one coloured shape and template questions with 13 answers.
This module reads it from the installed package, sorts questions into kinds (shape, color, yes/no), turns a
question plus a (partial) answer into the statement the scorers judge, maps generated text onto the answer
vocabulary (exact normalised match, nothing else), draws stratified evaluation subsets and scores predictions.
The language model only ever sees the question (`prompt`); only the scorers see the image.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pic.assets import AssetError

SHAPES = ("circle", "rectangle", "triangle")
COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
YES_NO = ("yes", "no")
KINDS = ("shape", "color", "yes/no")
IMAGE_SIZE = 64
_PROVIDER = "`pip install easy-vqa==1.0` (`make install` does it)"


class UnanswerableError(ValueError):
    """A gold answer outside the answer vocabulary: no prediction could ever be scored right."""


@dataclass(frozen=True)
class Question:
    """One question about one video (a stack of frames; easy-VQA: one image). `kind` groups the accuracy."""

    text: str
    answer: str
    video: int | str
    kind: str


# ---------------------------------------------------------------------------------------------- data

def easy_vqa_dir() -> Path:
    try:
        import easy_vqa
    except ImportError as err:
        raise AssetError(f"easy-VQA is missing: {_PROVIDER}") from err
    return Path(easy_vqa.__file__).parent / "data"


def answer_vocabulary() -> tuple[str, ...]:
    """The 13 answers, as the package lists them; checked against the kinds this module knows."""
    answers = tuple(a.strip() for a in (easy_vqa_dir() / "answers.txt").read_text().splitlines() if a.strip())
    if set(answers) != set(SHAPES + COLORS + YES_NO):
        raise AssetError(f"easy-VQA's answers.txt lists {sorted(answers)}, not the 13 answers this module knows")
    return answers


def question_kind(text: str) -> str:
    """'yes/no' (is/does ...?), 'color' (what color ...), or 'shape' (what shape / what is the <color> shape)."""
    words = _check_question(text).lower().split()
    if words[0] in ("is", "does", "are", "do", "can", "was"):
        return "yes/no"
    if "color" in words or "colour" in words:
        return "color"
    return "shape"


def load_questions(split: str) -> list[Question]:
    """Every question of easy-VQA's `train` or `test` split, in the package's order."""
    import json

    if split not in ("train", "test"):
        raise ValueError(f"easy-VQA has splits 'train' and 'test', not {split!r}")
    rows = json.loads((easy_vqa_dir() / split / "questions.json").read_text())
    vocab = set(answer_vocabulary())
    questions = [Question(text, answer, int(image), question_kind(text)) for text, answer, image in rows]
    check_answers(questions, vocab)
    return questions


def check_answers(questions: Sequence[Question], vocabulary) -> None:
    """Refuse gold answers the vocabulary cannot express, naming the first one."""
    bad = [q for q in questions if q.answer not in vocabulary]
    if bad:
        raise UnanswerableError(f"{len(bad)} gold answer(s) are outside the {len(vocabulary)}-answer vocabulary, "
                                f"first {bad[0].answer!r} for {bad[0].text!r}: such a question can never be "
                                "scored right; drop it or extend the vocabulary")


def image_count(split: str) -> int:
    return len(list((easy_vqa_dir() / split / "images").glob("*.png")))


def load_images(split: str, ids: Sequence[int] | None = None) -> torch.Tensor:
    """Images of a split as uint8 [N, 3, 64, 64] (all of them when `ids` is None, else in the order of `ids`)."""
    from PIL import Image

    folder = easy_vqa_dir() / split / "images"
    if ids is None:
        ids = sorted(int(p.stem) for p in folder.glob("*.png"))
    out = np.empty((len(ids), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for row, i in enumerate(ids):
        path = folder / f"{int(i)}.png"
        if not path.exists():
            raise AssetError(f"easy-VQA image {path} is missing; reinstall with {_PROVIDER}")
        out[row] = np.asarray(Image.open(path).convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def as_frames(images: torch.Tensor) -> torch.Tensor:
    """uint8 images [N, 3, H, W] -> float videos of one frame [N, 1, 3, H, W] in [0, 1]."""
    return (images.float() / 255.0).unsqueeze(1)


def scene_labels(questions: Sequence[Question], n_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(color index [N], shape index [N]) of each image, -1 where the dataset does not pin it down.

    easy-VQA ships no captions, so each image's colour and shape are read off what its questions state about it:
    wh-answers, true yes/no claims, and the exclusion of all but one value. Used to write training captions and
    to measure retrieval; the scorers never see a question.
    """
    found = [[set(), set()] for _ in range(n_images)]  # per image: {colours}, {shapes} that hold
    excluded = [[set(), set()] for _ in range(n_images)]
    for q in questions:
        if q.kind != "yes/no":
            found[q.video][0 if q.kind == "color" else 1].add(q.answer)
            continue
        claim = parse_claim(q.text)
        holds = (q.answer == "yes") == claim.positive
        (found if holds else excluded)[q.video][0 if claim.value in COLORS else 1].add(claim.value)
    labels = []
    for group, values in ((0, COLORS), (1, SHAPES)):
        out = []
        for i in range(n_images):
            known = found[i][group] or set(values) - excluded[i][group]
            out.append(values.index(next(iter(known))) if len(known) == 1 else -1)
        labels.append(torch.tensor(out))
    return labels[0], labels[1]


def stratified_subset(questions: Sequence[Question], per_kind: int, seed: int) -> list[int]:
    """Indices of `per_kind` questions of each kind, drawn without replacement with `seed`, sorted."""
    rng = np.random.default_rng(seed)
    chosen = []
    for kind in sorted({q.kind for q in questions}):
        pool = [i for i, q in enumerate(questions) if q.kind == kind]
        if len(pool) < per_kind:
            raise ValueError(f"only {len(pool)} {kind!r} questions, asked for {per_kind}")
        chosen += rng.choice(pool, size=per_kind, replace=False).tolist()
    return sorted(chosen)


def holdout_images(n_images: int, n_holdout: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """(training ids, held-out ids) of a split's images: the held-out train images validate and tune, never test."""
    order = np.random.default_rng(seed).permutation(n_images)
    return sorted(order[n_holdout:].tolist()), sorted(order[:n_holdout].tolist())


# ---------------------------------------------------------------------------------------------- statements

@dataclass(frozen=True)
class Claim:
    """What a yes/no question asks: 'is there a <value ...>?' (positive) or 'is there not ...?' (negative)."""

    thing: str  # "red shape", "circle"
    value: str  # the colour or shape named
    positive: bool


_NEGATED = re.compile(r"^(is there not|does the image not contain|is no)\b")
_THING = re.compile(r"\b(?:a|no)\s+((?:\w+ )?(?:shape|circle|rectangle|triangle))\b")


def parse_claim(text: str) -> Claim:
    """The thing a yes/no question asks about, and whether 'yes' affirms it."""
    t = _check_question(text).lower()
    m = _THING.search(t)
    if m is None:
        raise ValueError(f"cannot find what the yes/no question {text!r} asks about")
    thing = m.group(1)
    value = thing.split()[0] if thing.endswith(" shape") else thing
    return Claim(thing, value, positive=_NEGATED.match(t) is None)


def claim_statement(thing: str, holds: bool) -> str:
    return f"there is a {thing}" if holds else f"there is no {thing}"


@lru_cache(maxsize=200_000)  # candidates repeat across questions, positions and scorer subsets
def statement(question: str, partial_answer: str) -> str:
    """The sentence the scorers judge for `question` answered (so far) by `partial_answer`.

    wh-questions fill their slot ("what color is the circle?" + "red" -> "a red circle"); a yes/no question
    becomes its claim or the claim's negation ("is there not a circle?" + "yes" -> "there is no circle").
    A partial answer that is no answer yet ("The", a word piece) is scored as it reads, as ZeroCap scores text.
    Questions of other forms (ActivityNet-QA) are scored as "question answer".
    """
    q = _check_question(question).lower().rstrip("?").strip()
    a = normalise_answer(partial_answer)
    kind = question_kind(question)
    if kind == "yes/no" and _THING.search(q):
        if a in YES_NO:
            claim = parse_claim(question)
            return claim_statement(claim.thing, (a == "yes") == claim.positive)
        return a or q
    if kind == "color":
        m = re.search(r"(?:the color of|color is) the (\w+)$", q)
        if m:
            return f"a {a} {m.group(1)}" if a else f"a {m.group(1)}"
    elif kind == "shape":
        m = re.fullmatch(r"what is the (\w+) shape", q)
        if m:
            return f"a {m.group(1)} {a}" if a else f"a {m.group(1)} shape"
        if re.fullmatch(r"what shape (is in the image|is present|does the image contain)", q):
            return f"a {a}" if a else "a shape"
    return f"{q}? {a}".strip()


# ---------------------------------------------------------------------------------------------- answers

_CUT = re.compile(r"[.,;:!?\n]")


def normalise_answer(text: str) -> str:
    """Lower case, cut at the first punctuation or line break, trimmed: "Yes, it is." -> "yes"."""
    return _CUT.split(text.strip().lower(), maxsplit=1)[0].strip(" \"'`*")


def map_answer(text: str, vocabulary: Sequence[str]) -> str | None:
    """The vocabulary answer `text` states exactly (after normalising), or None: not expressible, counted wrong."""
    a = normalise_answer(text)
    return a if a in vocabulary else None


def accuracy_by_kind(predictions: Sequence[str | None], questions: Sequence[Question]) -> dict[str, float]:
    """Accuracy overall (mean over the subset) and per kind; `unanswerable` is the share mapped to None."""
    if len(predictions) != len(questions):
        raise ValueError(f"{len(predictions)} predictions for {len(questions)} questions")
    right = np.array([p == q.answer for p, q in zip(predictions, questions)], dtype=float)
    out = {"overall": float(right.mean())}
    for kind in sorted({q.kind for q in questions}, key=lambda k: (KINDS + (k,)).index(k)):
        mask = np.array([q.kind == kind for q in questions])
        out[kind] = float(right[mask].mean())
    out["unanswerable"] = float(np.mean([p is None for p in predictions]))
    return out


def _check_question(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a question must be a non-empty string, got {text!r}")
    return text.strip()
