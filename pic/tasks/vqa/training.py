"""What 20_train_vqa_scorers runs: the data (images, scene labels, captions, frozen features), then per model seed
the three scorers and the supervised reference, trained (retrain) or loaded from their committed checkpoints, each
measured on the held-out train images and the test images the same way in both modes."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import torch

from pic.models.text_encoder import FrozenTextEncoder
from pic.tasks.vqa import checkpoints
from pic.tasks.vqa import data as vqa
from pic.tasks.vqa import reference as ref
from pic.tasks.vqa import scorers as vs
from pic.tasks.vqa.settings import TrainingSettings


@dataclass
class Data:
    train_q: list
    test_q: list
    vocabulary: tuple[str, ...]
    train_color: torch.Tensor
    train_shape: torch.Tensor
    test_color: torch.Tensor
    test_shape: torch.Tensor
    fit: torch.Tensor  # train images the models learn from
    hold: torch.Tensor  # train images held out (validation, and 21's step-size choice)
    x_train: torch.Tensor  # images in [0, 1]
    x_test: torch.Tensor
    text_encoder: FrozenTextEncoder
    caps: vs.Captions
    caption_embeddings: torch.Tensor
    train_features: torch.Tensor  # frozen EfficientNet-Lite0 features (the lit tower, the reference's image input)
    test_features: torch.Tensor

    def describe(self) -> str:
        return (f"{len(self.x_train)} train images ({len(self.fit)} for training, {len(self.hold)} held out), "
                f"{len(self.x_test)} test; {len(self.caps.texts) - len(self.caps.distractors)} captions + "
                f"{len(self.caps.distractors)} distractors, e.g. {list(self.caps.distractors[:6])}; train images "
                f"with a known colour {float((self.train_color >= 0).float().mean()):.1%}, "
                f"shape {float((self.train_shape >= 0).float().mean()):.1%}")


def load_data(settings: TrainingSettings) -> Data:
    """Everything the models see; at smoke the first images only. The EfficientNet features are cached on disk.
    When loading (retrain False), model seeds without committed checkpoints are refused first, naming those that
    exist."""
    if not settings.retrain:
        checkpoints.check_seeds(settings.model_seeds)
    train_q, test_q = vqa.load_questions("train"), vqa.load_questions("test")
    vocabulary = vqa.answer_vocabulary()
    train_images, test_images = vqa.load_images("train"), vqa.load_images("test")
    if settings.n_images:
        keep = settings.n_images
        train_images, test_images = train_images[:keep], test_images[:keep // 4]
        train_q = [q for q in train_q if q.video < keep]
        test_q = [q for q in test_q if q.video < keep // 4]
    train_color, train_shape = vqa.scene_labels(train_q, len(train_images))
    test_color, test_shape = vqa.scene_labels(test_q, len(test_images))
    fit_ids, holdout_ids = vqa.holdout_images(len(train_images), min(settings.n_holdout, len(train_images) // 5),
                                              seed=0)
    x_train, x_test = train_images.float() / 255, test_images.float() / 255
    text_encoder = FrozenTextEncoder()
    caps = vs.captions(vs.distractor_words(text_encoder), settings.n_distractors)
    caption_embeddings = text_encoder.encode(caps.texts)
    lit_features = vs.lit_tower()
    train_features, test_features = lit_features(x_train), lit_features(x_test)
    return Data(train_q, test_q, vocabulary, train_color, train_shape, test_color, test_shape,
                torch.tensor(fit_ids), torch.tensor(holdout_ids), x_train, x_test, text_encoder, caps,
                caption_embeddings, train_features, test_features)


@dataclass
class Trained:
    rows: list[dict]  # per model seed and model: what it measures
    logs: dict[tuple[str, int], list[float]]  # (model, seed) -> mean loss per epoch (retrain, or stored with it)
    seconds: dict[tuple[str, int], float]  # training seconds (retrain only)


def scorers(data: Data, settings: TrainingSettings, log: Callable[[str], None] = print) -> Trained:
    """Per model seed and tower: train (retrain; saved and pinned when settings.save) or load the scorer, then its
    image -> caption retrieval accuracy on the held-out train images (val_) and the test images (test_)."""
    out = Trained([], {}, {})
    for s in settings.model_seeds:
        for tower in vs.TOWERS:
            on_features = tower == "lit"
            inputs, val_inputs, test_inputs = (
                (data.train_features[data.fit], data.train_features[data.hold], data.test_features) if on_features
                else (data.x_train[data.fit], data.x_train[data.hold], data.x_test))
            if settings.retrain:
                model = vs.build_model(tower)
                fit_log = vs.train_caption_model(model, inputs, data.train_color[data.fit], data.train_shape[data.fit],
                                                 data.caption_embeddings, data.caps, epochs=settings.epochs[tower],
                                                 seed=s, on_features=on_features)
                out.logs[(tower, s)], out.seconds[(tower, s)] = fit_log.losses, fit_log.seconds
            else:
                model, meta = checkpoints.load_scorer_model(tower, s), checkpoints.scorer_metadata(tower, s)
                out.logs[(tower, s)] = json.loads(meta.get("losses", "[]"))
            val = vs.retrieval_accuracy(vs.embed_all(model, val_inputs, on_features), data.caption_embeddings,
                                        data.train_color[data.hold], data.train_shape[data.hold], data.caps)
            test = vs.retrieval_accuracy(vs.embed_all(model, test_inputs, on_features), data.caption_embeddings,
                                         data.test_color, data.test_shape, data.caps)
            n_params = sum(v.numel() for v in vs.trainable_state(model, tower).values())
            out.rows.append({"tower": tower, "seed": s, "params": n_params, "scale": float(model.scale.detach()),
                             **{f"val_{k}": v for k, v in val.items()}, **{f"test_{k}": v for k, v in test.items()}})
            if settings.retrain and settings.save:
                checkpoints.save_scorer(model, tower, s, {
                    "width": "16", "epochs": str(settings.epochs[tower]), "distractors": str(len(data.caps.distractors)),
                    "losses": json.dumps(out.logs[(tower, s)]), **{f"val_{k}": f"{v:.4f}" for k, v in val.items()}})
            how = (f"{out.seconds[(tower, s)]:.0f} s, final loss {out.logs[(tower, s)][-1]:.3f}" if settings.retrain
                   else "loaded")
            log(f"seed {s} {tower:6s}: {n_params:,} trained parameters, {how}, held-out retrieval "
                f"{({k: round(v, 3) for k, v in val.items()})}")
    return out


def references(data: Data, settings: TrainingSettings, log: Callable[[str], None] = print) -> Trained:
    """Per model seed: train (retrain) or load the supervised reference, then its accuracy on the held-out train
    questions and on the whole test split."""
    question_texts = sorted({q.text for q in data.train_q + data.test_q})
    question_embeddings = dict(zip(question_texts, data.text_encoder.encode(question_texts)))

    def qa_tensors(questions):
        return (torch.stack([question_embeddings[q.text] for q in questions]),
                torch.tensor([q.video for q in questions]),
                torch.tensor([data.vocabulary.index(q.answer) for q in questions]))

    hold_set = set(data.hold.tolist())
    fit_q = [q for q in data.train_q if q.video not in hold_set]
    hold_q = [q for q in data.train_q if q.video in hold_set]
    out = Trained([], {}, {})
    for s in settings.model_seeds:
        if settings.retrain:
            torch.manual_seed(s)
            model = ref.QAClassifier(len(data.vocabulary))
            emb, img, ans = qa_tensors(fit_q)
            fit_log = ref.train_reference(model, data.train_features, emb, img, ans,
                                          epochs=settings.epochs_reference, seed=s)
            out.logs[("reference", s)], out.seconds[("reference", s)] = fit_log.losses, fit_log.seconds
            vocabulary = data.vocabulary
        else:
            model, vocabulary = checkpoints.load_reference(s)
        val_pred = ref.predict(model, data.train_features, *qa_tensors(hold_q)[:2], vocabulary)
        test_pred = ref.predict(model, data.test_features, *qa_tensors(data.test_q)[:2], vocabulary)
        val_acc, test_acc = vqa.accuracy_by_kind(val_pred, hold_q), vqa.accuracy_by_kind(test_pred, data.test_q)
        n_params = sum(p.numel() for p in model.parameters())
        out.rows.append({"seed": s, "params": n_params, "val_overall": val_acc["overall"],
                         **{f"test_{k}": v for k, v in test_acc.items() if k != "unanswerable"}})
        if settings.retrain and settings.save:
            checkpoints.save_reference(model, s, vocabulary, {"epochs": str(settings.epochs_reference),
                                                              "val_accuracy": f"{val_acc['overall']:.4f}"})
        how = f"{out.seconds[('reference', s)]:.0f} s" if settings.retrain else "loaded"
        log(f"seed {s}: {n_params:,} parameters, {how}, held-out accuracy {val_acc['overall']:.3f}")
    return out


def checkpoint_summary(settings: TrainingSettings) -> str:
    if not (settings.retrain and settings.save):
        return "no checkpoint written (retrain = False, or the smoke profile)"
    sizes = checkpoints.sizes()
    return (f"checkpoints: {len(sizes)} files, {sum(sizes.values()) / 1e6:.1f} MB in all: "
            f"{ {k: f'{v / 1e6:.2f} MB' for k, v in sizes.items()} }")
