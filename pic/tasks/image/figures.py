"""The figures of notebook 11 (each returns a matplotlib figure; the notebook saves it through its Report), and the
energy traces that one of them shows."""
from __future__ import annotations

from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

from pic.tasks.image.generation import LABELS, ROWS, initial_noise

WATCHED_ROWS = ("generator alone", "+ CLIP", "+ CLS", "+ CLS-FREE", "+ CLIP + CLS + CLS-FREE")


def samples(runs: dict, to_pixels, labels: torch.Tensor, class_names: list[str], n_show: int) -> plt.Figure:
    """One strip per row of Table 1: the first n_show samples of every class, from the first seed."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 1.25 * len(runs)))
    for ax, (row, r) in zip(np.atleast_1d(axes), runs.items()):
        x = to_pixels(r.samples[:len(labels)])
        picked = torch.cat([x[labels == c][:n_show] for c in labels.unique()])
        grid = picked.reshape(-1, n_show, *picked.shape[1:]).transpose(0, 1)  # [n_show, classes, C, H, W]
        img = grid.permute(0, 3, 1, 4, 2).reshape(n_show * picked.shape[-2], -1, picked.shape[1]).numpy()
        ax.imshow(img.squeeze(-1), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([]), ax.set_ylabel(row, rotation=0, ha="right", va="center")
    top = np.atleast_1d(axes)[0]
    top.xaxis.tick_top()
    top.set_xticks([(i + 0.5) * picked.shape[-1] for i in range(len(class_names))], class_names, fontsize=7)
    return fig


def watch_energies(sampler, row_weights: Callable[[tuple], dict], labels: torch.Tensor, n_per_class: int, shape,
                   num_steps: int, seed: int) -> dict[str, list[dict]]:
    """Row -> the sampler's per-step history (mean energy of each scorer) on every (n_per_class // 5)-th label,
    the same noise for every row; row_weights(scorer names) -> the row's weights (Experiment.row_weights)."""
    labels = labels[torch.arange(len(labels)) % max(1, n_per_class // 5) == 0]
    noise = initial_noise(len(labels), seed + 7, shape)
    watched = {}
    for row in WATCHED_ROWS:
        w = {"clip": 0.0, "cls": 0.0, **row_weights(ROWS[row][0])}
        watched[row] = sampler.sample(w, labels, noise, num_steps=num_steps, seed=seed).history
    return watched


def energy_per_step(watched: dict[str, list[dict]]) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for ax, name in zip(axes, ["clip", "cls"]):
        for row, hist in watched.items():
            ax.plot([h["step"] for h in hist], [h[f"energy/{name}"] for h in hist], label=row)
        ax.set_title(f"E_{LABELS[name]} along the denoising steps"), ax.set_xlabel("DDIM step")
    axes[0].set_ylabel("mean energy (lower = better)"), axes[1].legend(fontsize=7)
    return fig


def metric_vs_scorers(by: dict[str, dict]) -> plt.Figure:
    """Each metric (mean ± sd over seeds) against the number of scorers; squares are the MCMC rows."""
    fig, axes = plt.subplots(1, 4, figsize=(12, 2.8))
    for ax, (key, label) in zip(axes, [("kid_x1000", "KID x 1000 (lower = better)"), ("fid", "FID (lower = better)"),
                                       ("accuracy", "class accuracy"), ("is", "IS")]):
        for row, (names, mcmc) in ROWS.items():
            group = [k for k, (n, _) in ROWS.items() if len(n) == len(names)]  # rows with as many scorers
            x_pos = len(names) + 0.12 * (group.index(row) - (len(group) - 1) / 2)
            ax.errorbar(x_pos, by[row][key], yerr=by[row][f"{key}_sd"], fmt="s" if mcmc else "o", ms=4, capsize=2,
                        label=row)
        ax.set_xlabel("number of scorers"), ax.set_title(label), ax.set_xticks(range(4))
    axes[-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    return fig
