"""Figures of the GSM8K training notebook (plotting only; the numbers come from pic.tasks.gsm8k.training)."""
from __future__ import annotations

import numpy as np


def training_figure(adapter, verifier_data, probability):
    """Left: the LoRA's held-out solution loss before and after (and its training loss per window when it was
    trained in this run); right: the verifier's held-out p(correct) by kind of solution."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3))
    if adapter.run is not None:  # trained in this run: its loss log
        steps = adapter.run.window * (np.arange(len(adapter.run.losses)) + 1)
        a1.plot(steps, adapter.run.losses, marker="o", color="C0",
                label=f"training, mean of {adapter.run.window} steps")
    a1.axhline(adapter.heldout_loss_before, color="0.5", ls=":", label="held-out, before")
    a1.axhline(adapter.heldout_loss_after, color="C3", ls="--", label="held-out, after")
    a1.set_xlabel("step"), a1.set_ylabel("token cross-entropy"), a1.set_title("LoRA fine-tuning")
    a1.legend(fontsize=7)
    p, held, kinds = probability.numpy(), verifier_data.held, verifier_data.kinds
    for kind, color in [("reference", "C2"), ("perturbed", "C3"), ("generated", "C0")]:
        m = held & (kinds == kind)
        a2.hist(p[m], bins=20, range=(0, 1), alpha=0.5, color=color, label=f"{kind} ({m.sum()})")
    right = held & (kinds == "generated") & verifier_data.labels.numpy().astype(bool)
    a2.scatter(p[right], np.zeros(right.sum()), marker="^", color="k", zorder=3, label="generated, correct")
    a2.set_xlabel("p(correct)"), a2.set_ylabel("held-out solutions"), a2.set_title("verifier"), a2.legend(fontsize=7)
    return fig
