"""The merging notebooks' figures: training losses, weight distances against merged accuracy, linear mode
connectivity. Each returns a matplotlib figure for report.save_fig."""
from __future__ import annotations

import matplotlib.pyplot as plt

from pic.stats import mean_sd


def losses(logs: dict[str, dict[str, list[float]]], title: str):
    """One panel per experiment: the logged training loss of every model of the first seed."""
    fig, axes = plt.subplots(1, len(logs), figsize=(4.5 * len(logs), 3.2))
    for ax, (name, curves) in zip(axes if len(logs) > 1 else [axes], logs.items()):
        for label, values in curves.items():
            ax.plot(range(1, len(values) + 1), values, label=label, lw=1)
        ax.set(title=name, xlabel="logging window", ylabel="loss")
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def distances_vs_accuracy(distances: list[dict], rows: list[dict], metrics, method: str = "interpolation"):
    """Each metric (mean over the expert pairs) against the merged model's zero-shot accuracy, one point per
    (seed, seed length), coloured by seed length."""
    merged = {(r["seed"], r["seed_length"]): r["zero_shot"] for r in rows if r["model"] == method}
    configs = sorted(merged)
    lengths = sorted({c[1] for c in configs})
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.0), sharey=True)
    for ax, metric in zip(axes, metrics):
        for length in lengths:
            cs = [c for c in configs if c[1] == length]
            x = [mean_sd([d[metric] for d in distances if (d["seed"], d["seed_length"]) == c]).mean for c in cs]
            ax.scatter(x, [100 * merged[c] for c in cs], label=f"S={length}", s=18)
        ax.set(xlabel=metric)
    axes[0].set_ylabel(f"merged ({method}) accuracy %")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def connectivity(rows: list[dict]):
    """Accuracy along the line between two members, mean ± sd over seeds, one curve per kind of pair."""
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for pair in dict.fromkeys(r["pair"] for r in rows):
        alphas = sorted({r["alpha"] for r in rows if r["pair"] == pair})
        stats = [mean_sd([r["accuracy"] for r in rows if r["pair"] == pair and r["alpha"] == a]) for a in alphas]
        means = [100 * s.mean for s in stats]
        sds = [100 * (s.sd if s.n > 1 else 0.0) for s in stats]
        ax.errorbar(alphas, means, yerr=sds, label=pair, capsize=2, marker="o", ms=3)
    ax.set(xlabel="α  (θ = (1 − α) θ_a + α θ_b)", ylabel="in-domain validation accuracy %",
           title="linear mode connectivity")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
