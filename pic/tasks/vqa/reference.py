"""The supervised reference of Table 2 (the paper's "JustAsk (FT)" row, analog): a small classifier trained on
easy-VQA's question-answer pairs. Image: frozen EfficientNet-Lite0 features (the LiT scorer's tower, cached);
question: its frozen MiniLM sentence embedding; their projections multiplied element-wise, then an MLP over the
13 answers. It is what the zero-shot consensus is up against.
"""
from __future__ import annotations

from typing import Sequence

import torch

from pic.models.efficientnet import FEATURE_DIM
from pic.tasks.vqa.scorers import minibatch_training
from pic.train import FitLog


class QAClassifier(torch.nn.Module):
    """logits [B, n_answers] from image features [B, feature_dim] and question embeddings [B, text_dim], fused by
    an element-wise product of their projections (the classic VQA baseline's fusion)."""

    def __init__(self, n_answers: int, feature_dim: int = FEATURE_DIM, text_dim: int = 384, hidden: int = 256):
        super().__init__()
        self.image = torch.nn.Linear(feature_dim, hidden)
        self.question = torch.nn.Linear(text_dim, hidden)
        self.head = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(hidden, n_answers))

    def forward(self, features: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.image(features)) * torch.tanh(self.question(questions)))


def train_reference(model: QAClassifier, features: torch.Tensor, questions: torch.Tensor, image_index: torch.Tensor,
                    answers: torch.Tensor, *, epochs: int, seed: int, lr: float = 3e-3,
                    batch_size: int = 256) -> FitLog:
    """Cross-entropy training on (image_index -> image features, question embedding, answer index) triples."""
    def batch_loss(idx):
        return torch.nn.functional.cross_entropy(model(features[image_index[idx]], questions[idx]), answers[idx])

    model.train()
    log = minibatch_training(list(model.parameters()), len(answers), batch_loss, epochs=epochs, seed=seed, lr=lr,
                             batch_size=batch_size)
    model.eval()
    return log


@torch.no_grad()
def predict(model: QAClassifier, features: torch.Tensor, questions: torch.Tensor, image_index: torch.Tensor,
            vocabulary: Sequence[str], batch_size: int = 1024) -> list[str]:
    model.eval()
    out = []
    for i in range(0, len(image_index), batch_size):
        sl = slice(i, i + batch_size)
        out += model(features[image_index[sl]], questions[sl]).argmax(-1).tolist()
    return [vocabulary[a] for a in out]
