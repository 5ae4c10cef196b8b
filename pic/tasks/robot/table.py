"""Table 4's rows, the paper's claim, and every table 41 prints from the episode records.

The paper reports no numbers for Table 4 that we could recover, only its claim (PAPER_CLAIM): scoring the predicted
outcome from several camera views improves the success rate over one view. Success rates carry 95% Wilson
intervals and paired rows the exact sign test on the episodes where they differ (pic.stats).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from pic.stats import sign_test, wilson_interval
from pic.tasks.robot.sim import VIEWS

PAPER_CLAIM = "several camera views improve the success rate over one view"


@dataclass(frozen=True)
class Row:
    """A row of Table 4: a goal kind ("text" | "image") and the cameras whose scorers are summed (() = random)."""

    goal: str
    views: tuple[str, ...]

    @property
    def name(self) -> str:
        return " + ".join(self.views) if self.views else "random action"


def table_rows(goal: str, pairs: bool = True) -> list[Row]:
    """random action, each view alone, (each pair of views), all views summed."""
    combos = [(), *((v,) for v in VIEWS)]
    if pairs:
        combos += [tuple(p) for p in itertools.combinations(VIEWS, 2)]
    return [Row(goal, c) for c in [*combos, VIEWS]]


def all_rows(pairs: bool = True) -> list[Row]:
    """Every row of the table: text goals, then image goals."""
    return table_rows("text", pairs) + table_rows("image", pairs)


def success_rows(records: list, rows: list[Row]) -> list[dict]:
    """Success rate per row with its 95% Wilson interval and the failed grasps counted (records: EpisodeRecord)."""
    out = []
    for row in rows:
        mine = [r for r in records if r.goal == row.goal and r.row == row.name]
        wins = sum(r.success for r in mine)
        low, high = wilson_interval(wins, len(mine))
        errors = [r.error_cm for r in mine if np.isfinite(r.error_cm)]
        out.append({"goal": row.goal, "scorers": row.name, "views": len(row.views), "episodes": len(mine),
                    "success": wins / len(mine) if mine else float("nan"), "ci95_low": low, "ci95_high": high,
                    "mean_steps": float(np.mean([r.steps for r in mine])) if mine else float("nan"),
                    "failed_grasps": sum(r.failed_grasps for r in mine),
                    "median_error_cm": float(np.median(errors)) if errors else float("nan")})
    return out


def paired_comparison(records: list, goal: str, a: str, b: str) -> dict:
    """Episodes only row `a` solves, only row `b` solves, and the exact two-sided sign test on them (the rows
    see the same episodes, so the paired test is the right one)."""
    by = {(r.row, r.seed): r.success for r in records if r.goal == goal}
    seeds = sorted({seed for _, seed in by})
    only_a = sum(by[(a, s)] and not by[(b, s)] for s in seeds)
    only_b = sum(by[(b, s)] and not by[(a, s)] for s in seeds)
    return {"goal": goal, "first": a, "second": b, "only_first_succeeds": only_a, "only_second_succeeds": only_b,
            "sign_test_p": sign_test(only_a, only_b)}


def best_row(table: list[dict], goal: str, n_views: int) -> dict:
    """The row of `goal` with `n_views` cameras and the highest success (the first of equals)."""
    return max((r for r in table if r["goal"] == goal and r["views"] == n_views), key=lambda r: r["success"])


def claims(table: list[dict], records: list) -> tuple[dict[str, bool], list[dict]]:
    """The paper's claim per goal kind (all views summed beat the best single view), all views against the random
    action, and the paired comparison of all views with the best single view: ({claim: holds}, paired rows)."""
    out, paired = {}, []
    for goal in ("text", "image"):
        every = best_row(table, goal, len(VIEWS))
        single = best_row(table, goal, 1)
        out[f"{goal} goals: all views summed beat the best single view ({single['scorers']})"] = \
            every["success"] > single["success"]
        out[f"{goal} goals: all views summed beat the random action"] = \
            every["success"] > best_row(table, goal, 0)["success"]
        paired.append(paired_comparison(records, goal, every["scorers"], single["scorers"]))
    return out, paired


def view_quality_rows(quality: list[dict]) -> list[dict]:
    """Per goal kind and scorer (each camera and the sum), the means over episodes of episodes.view_quality's
    records (agreement: NaN episodes, where every or no candidate reaches the goal, left out)."""
    out = []
    for goal in ("text", "image"):
        for name in [*VIEWS, "sum"]:
            mine = [q for q in quality if q["goal"] == goal and q["scorer"] == name]
            out.append({"goal": goal, "scorer": name if name != "sum" else "sum of all three",
                        "agreement": float(np.nanmean([q["agreement"] for q in mine])),
                        "first_choice_reaches_goal": float(np.mean([q["first_choice_reaches_goal"] for q in mine])),
                        "energy_spread": float(np.mean([q["energy_spread"] for q in mine]))})
    return out


def success_by_views(table: list[dict], goal: str) -> dict:
    """For the figure: per number of cameras summed (1..3), the mean, lowest and highest success of those rows,
    and the random action's success."""
    out = {"views": [], "mean": [], "low": [], "high": [], "random": best_row(table, goal, 0)["success"]}
    for k in range(1, len(VIEWS) + 1):
        rates = [r["success"] for r in table if r["goal"] == goal and r["views"] == k]
        if rates:
            out["views"].append(k), out["mean"].append(np.mean(rates))
            out["low"].append(min(rates)), out["high"].append(max(rates))
    return out


def cost_rows(unit: dict, episode_costs: list[dict], table_seconds: float, n_episodes: int) -> list[dict]:
    """The cost table: episodes.unit_costs, the mean per episode of run_table's costs, and the table's seconds."""
    mean = {k: float(np.mean([c[k] for c in episode_costs])) for k in episode_costs[0]}
    return [
        {"quantity": "one render, one camera (ms)", "value": 1000 * unit["render_one_camera_s"]},
        {"quantity": "one world-model prediction (ms)", "value": 1000 * unit["predict_s"]},
        {"quantity": "one executed pick-and-place (ms)", "value": 1000 * unit["execute_pick_and_place_s"]},
        {"quantity": "physics steps per pick-and-place", "value": float(unit["physics_steps_per_pick_and_place"])},
        {"quantity": "renders per episode", "value": mean["renders"]},
        {"quantity": "render seconds per episode", "value": mean["render_s"]},
        {"quantity": "predictions per episode", "value": mean["predictions"]},
        {"quantity": "executed pick-and-places per episode", "value": mean["executions"]},
        {"quantity": "simulation seconds per episode (predict + execute)",
         "value": mean["predict_s"] + mean["execute_s"]},
        {"quantity": "scorer seconds per episode", "value": mean["score_s"]},
        {"quantity": "seconds per episode, everything", "value": table_seconds / n_episodes},
        {"quantity": "seconds for the table", "value": table_seconds},
    ]
