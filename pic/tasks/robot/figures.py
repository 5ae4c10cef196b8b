"""The figures of notebook 41 (each returns a matplotlib figure; the notebook saves it through its Report)."""
from __future__ import annotations

import matplotlib.pyplot as plt

from pic.tasks.robot.scenes import make_episode
from pic.tasks.robot.sim import VIEWS
from pic.tasks.robot.table import best_row

ALL_VIEWS = " + ".join(VIEWS)


def views_before_after(world, table: list[dict], records: list, seeds: list[int]) -> plt.Figure:
    """Per episode (three rows each): the scene before, after the best single view's plan and after all views' plan,
    as every camera sees it; text goals on the left half, image goals on the right, ✓/✗ for success."""
    fig, axes = plt.subplots(3 * len(seeds), len(VIEWS) * 2, figsize=(2.0 * 2 * len(VIEWS), 2.1 * 3 * len(seeds)),
                             gridspec_kw={"hspace": 0.3})
    goal_rows = {goal: best_row(table, goal, 1)["scorers"] for goal in ("text", "image")}
    for b, s in enumerate(seeds):
        episode, snap = make_episode(world, s)
        for g, goal in enumerate(("text", "image")):
            mine = {r.row: r for r in records if r.seed == s and r.goal == goal}
            panels = [("before", world.render_snapshot(snap), None)] + [
                (row, world.render_snapshot(mine[row].final), mine[row]) for row in (goal_rows[goal], ALL_VIEWS)]
            for p, (label, images, rec) in enumerate(panels):
                for col, view in enumerate(VIEWS):
                    ax = axes[3 * b + p, g * len(VIEWS) + col]
                    ax.imshow(images[col].permute(1, 2, 0).numpy())
                    ax.set_xticks([]), ax.set_yticks([])
                    if col == 0:
                        verdict = "" if rec is None else (" ✓" if rec.success else " ✗")
                        ax.set_ylabel(f"{goal}: {label}{verdict}", fontsize=7)
                    if 3 * b + p == 0:
                        ax.set_title(f"{goal} · {view}")
        # above the column titles on the first episode, in the gap between panel rows on the others
        axes[3 * b, 0].annotate(f"episode {s}: {episode.text_goal.instruction}", (0, 1.25 if b == 0 else 1.04),
                                xycoords="axes fraction", fontsize=7)
    return fig
