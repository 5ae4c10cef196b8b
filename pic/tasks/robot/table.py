"""Table 4's rows, the paper's claim, and every table 41 prints from the episode records.

The paper reports no numbers for Table 4 that we could recover, only its claim (PAPER_CLAIM): scoring the predicted
outcome from several camera views improves the success rate over one view. Success rates carry 95% Wilson
intervals and paired rows the exact sign test on the episodes where they differ (pic.stats).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from pic.stats import paired_interval, sign_test, wilson_interval
from pic.tasks.robot.sim import VIEWS

PAPER_CLAIM = "several camera views improve the success rate over one view"
# per goal kind, the view weights of the all-views row, chosen by 60_ablations on validation episodes (its
# robot_weights_validation table: the grid's best cell; a claim there checks that these are the ones it picks)
VIEW_WEIGHTS = {"text": {"front": 2.0, "side": 1.0, "top": 1.0},
                "image": {"front": 1.0, "side": 4.0, "top": 1.0}}


@dataclass(frozen=True)
class Row:
    """A row of Table 4: a goal kind ("text" | "image") and the cameras whose scorers are summed (() = random),
    with equal weights or one weight per camera."""

    goal: str
    views: tuple[str, ...]
    weights: tuple[float, ...] = ()  # one per view; () = equal weights

    def __post_init__(self):
        if self.weights and (len(self.weights) != len(self.views)
                             or not all(math.isfinite(w) and w >= 0 for w in self.weights)):
            raise ValueError(f"row {self.views} has weights {self.weights}: give one finite weight >= 0 per view, "
                             "or none for equal weights")

    @property
    def name(self) -> str:
        if not self.views:
            return "random action"
        if not self.weights:
            return " + ".join(self.views)
        return " + ".join(f"{w:g}·{v}" for v, w in zip(self.views, self.weights))


def table_rows(goal: str, pairs: bool = True, validation_weights: bool = True) -> list[Row]:
    """random action, each view alone, (each pair of views), all views summed with equal weights, (all views with
    the weights chosen on validation)."""
    combos = [(), *((v,) for v in VIEWS)]
    if pairs:
        combos += [tuple(p) for p in itertools.combinations(VIEWS, 2)]
    rows = [Row(goal, c) for c in [*combos, VIEWS]]
    return rows + [weighted_row(goal)] if validation_weights else rows


def weighted_row(goal: str) -> Row:
    """All views with the weights chosen on validation (VIEW_WEIGHTS)."""
    return Row(goal, VIEWS, tuple(VIEW_WEIGHTS[goal][v] for v in VIEWS))


def all_rows(pairs: bool = True, validation_weights: bool = True) -> list[Row]:
    """Every row of the table: text goals, then image goals."""
    return table_rows("text", pairs, validation_weights) + table_rows("image", pairs, validation_weights)


def success_rows(records: list, rows: list[Row]) -> list[dict]:
    """Success rate per row with its 95% Wilson interval and the failed grasps counted (records: EpisodeRecord)."""
    out = []
    for row in rows:
        mine = [r for r in records if r.goal == row.goal and r.row == row.name]
        wins = sum(r.success for r in mine)
        low, high = wilson_interval(wins, len(mine))
        errors = [r.error_cm for r in mine if np.isfinite(r.error_cm)]
        out.append({"goal": row.goal, "scorers": row.name, "views": len(row.views),
                    "weights": "validation" if row.weights else "equal", "episodes": len(mine),
                    "success": wins / len(mine) if mine else float("nan"), "ci95_low": low, "ci95_high": high,
                    "mean_steps": float(np.mean([r.steps for r in mine])) if mine else float("nan"),
                    "failed_grasps": sum(r.failed_grasps for r in mine),
                    "median_error_cm": float(np.median(errors)) if errors else float("nan")})
    return out


def paired_comparison(records: list, goal: str, a: str, b: str) -> dict:
    """The success difference of row `a` over row `b` with its paired bootstrap 95% interval over episodes, the
    episodes only one of them solves, and the exact two-sided sign test on those (the rows see the same episodes,
    so paired statistics are the right ones)."""
    by = {(r.row, r.seed): r.success for r in records if r.goal == goal}
    seeds = sorted({seed for _, seed in by})
    only_a = sum(by[(a, s)] and not by[(b, s)] for s in seeds)
    only_b = sum(by[(b, s)] and not by[(a, s)] for s in seeds)
    first, second = [float(by[(a, s)]) for s in seeds], [float(by[(b, s)]) for s in seeds]
    low, high = paired_interval(first, second) if len(seeds) > 1 else (float("nan"), float("nan"))
    return {"goal": goal, "first": a, "second": b, "difference": float(np.mean(first) - np.mean(second)),
            "diff_ci95_low": low, "diff_ci95_high": high, "only_first_succeeds": only_a,
            "only_second_succeeds": only_b, "sign_test_p": sign_test(only_a, only_b)}


def best_row(table: list[dict], goal: str, n_views: int) -> dict:
    """The equal-weight row of `goal` with `n_views` cameras and the highest success (the first of equals)."""
    return max((r for r in table if r["goal"] == goal and r["views"] == n_views and r["weights"] == "equal"),
               key=lambda r: r["success"])


def claims(table: list[dict], records: list) -> tuple[dict[str, bool], list[dict]]:
    """The paper's claim per goal kind (all views beat the best single view: summed with equal weights, and with
    the weights chosen on validation), all views against the random action, and the paired comparison of each
    all-view row with the best single view: ({claim: holds}, paired rows)."""
    out, paired = {}, []
    for goal in ("text", "image"):
        single = best_row(table, goal, 1)
        weighted = next(r for r in table if r["goal"] == goal and r["scorers"] == weighted_row(goal).name)
        for every, how in ((best_row(table, goal, len(VIEWS)), "summed with equal weights"),
                           (weighted, f"with the validation weights ({weighted['scorers']})")):
            out[f"{goal} goals: all views {how} beat the best single view ({single['scorers']})"] = \
                every["success"] > single["success"]
            paired.append(paired_comparison(records, goal, every["scorers"], single["scorers"]))
        out[f"{goal} goals: all views beat the random action"] = \
            weighted["success"] > best_row(table, goal, 0)["success"]
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
    """For the figure: per number of cameras summed with equal weights (1..3), the mean, lowest and highest success
    of those rows; the random action's success; all views with the validation weights' success (None: no row)."""
    weighted = [r for r in table if r["goal"] == goal and r["weights"] == "validation"]
    out = {"views": [], "mean": [], "low": [], "high": [], "random": best_row(table, goal, 0)["success"],
           "validation_weights": weighted[0]["success"] if weighted else None}
    for k in range(1, len(VIEWS) + 1):
        rates = [r["success"] for r in table if r["goal"] == goal and r["views"] == k and r["weights"] == "equal"]
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
