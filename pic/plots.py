"""Plot helpers shared by the notebooks' figures."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np


def grid_heatmap(ax: plt.Axes, values: np.ndarray, labels: Sequence[Sequence[str]], rows: Sequence, columns: Sequence,
                 lower_is_better: bool = False):
    """A weight grid as a heatmap, each cell written out (rows bottom to top, brighter = better); returns the image
    for a colorbar."""
    shown = ax.imshow(values, cmap="viridis_r" if lower_is_better else "viridis", origin="lower", aspect="auto")
    for i in range(len(rows)):
        for j in range(len(columns)):
            ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(len(columns)), [f"{c:g}" for c in columns])
    ax.set_yticks(range(len(rows)), [f"{r:g}" for r in rows])
    return shown
