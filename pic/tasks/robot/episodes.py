"""The episodes behind Table 4: every row of the table run on the same episodes, with the world model's cache
shared between rows (rows that reach the same state see the same candidates), the ground truth of each outcome,
how well each camera judges the first step's candidates, and what the simulator and renderer cost.

The consensus step itself (propose, predict, score every view, select_argmin) is pic.tasks.robot.planner.plan.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from pic.energy import ComposedEnergy, Scorer
from pic.tasks.robot.goals import image_goal_reached, parse_goal
from pic.tasks.robot.planner import (Costs, PlannerSettings, Prediction, ViewScorer, WorldModel, run_episode,
                                     step_rng, view_energy)
from pic.tasks.robot.scenes import make_episode, propose_actions, stack_actions
from pic.tasks.robot.sim import VIEWS, Snapshot, TabletopWorld
from pic.tasks.robot.table import Row


@dataclass
class EpisodeRecord:
    seed: int
    goal: str  # "text" | "image"
    row: str
    views: int
    success: bool
    steps: int
    failed_grasps: int
    goal_text: str
    actions: str
    final: Snapshot | None  # the cubes' final poses, for figures (None in pic.evaluate's records)
    error_cm: float = float("nan")  # image goals: the largest distance of a cube from its target place


def run_table(world: TabletopWorld, seeds, rows: list[Row], text_scorer: Callable[[str], Scorer],
              image_scorer: Callable[[str, torch.Tensor], Scorer], settings: PlannerSettings,
              log: Callable[[str], None] | None = None,
              log_every: int = 10) -> tuple[list[EpisodeRecord], list[dict], list[dict]]:
    """Every row on every episode (run_episode_rows), with one world model whose cache the episodes share.
    Returns the episode records, the simulation/render cost of each episode (all rows together, with the cache)
    and `view_quality` records. log: called with "episode i/n: seconds" after every `log_every`-th episode."""
    model, records, costs, quality = WorldModel(world), [], [], []
    started = time.perf_counter()
    for i, seed in enumerate(seeds, 1):
        episode_records, cost, episode_quality = run_episode_rows(world, model, seed, rows, text_scorer, image_scorer,
                                                                  settings)
        records += episode_records
        costs.append(cost)
        quality += episode_quality
        if log and i % log_every == 0:
            log(f"episode {i}/{len(seeds)}: {time.perf_counter() - started:.0f} s")
    return records, costs, quality


def run_episode_rows(world: TabletopWorld, model: WorldModel, seed: int, rows: list[Row],
                     text_scorer: Callable[[str], Scorer], image_scorer: Callable[[str, torch.Tensor], Scorer],
                     settings: PlannerSettings) -> tuple[list[EpisodeRecord], dict, list[dict]]:
    """Every row on the episode of `seed`: its records (in the order of `rows`), its simulation/render cost and
    its `view_quality` records. `text_scorer(view)` -> a scorer of images given `prompt`; `image_scorer(view,
    goal_image)` -> a scorer of images against that camera's goal image. The unit of work of run_table and of
    `python -m pic.evaluate robot` (everything random derives from `seed`, never from a rank)."""
    before = _cost_snapshot(model.costs)
    world.release_states()
    episode, snap = make_episode(world, seed)
    goal = parse_goal(episode.text_goal.instruction, cubes=snap.positions)  # refused here if bad
    start = model.start(snap)
    target = world.predict(snap, episode.target_action)
    goal_images = world.render_snapshot(target)
    energies = {
        "text": view_energy({v: ViewScorer(v, text_scorer(v), model.costs, prompt=goal.caption) for v in VIEWS}),
        "image": view_energy({v: ViewScorer(v, image_scorer(v, goal_images[i]), model.costs)
                              for i, v in enumerate(VIEWS)}),
    }
    reached = {"text": goal.holds,
               "image": lambda positions: image_goal_reached(positions, target.positions)}
    first = model.predict(start, propose_actions(step_rng(seed, (), 0), snap, settings.n_random))
    records = []
    for row in rows:
        energy = energies[row.goal].subset(row.views) if row.views else None
        if row.weights:
            energy = energy.reweighted(dict(zip(row.views, row.weights)))
        r = run_episode(model, seed, start, reached[row.goal], energy, settings)
        records.append(EpisodeRecord(seed, row.goal, row.name, len(row.views), bool(r.success), r.steps,
                                     r.failed_grasps, goal.instruction if row.goal == "text" else
                                     f"image of: {episode.target_action}", "; ".join(map(str, r.actions)),
                                     r.final, placement_error_cm(r.final, target) if row.goal == "image"
                                     else float("nan")))
    return records, _cost_delta(before, model.costs), view_quality(seed, first, energies, reached, target)


def view_quality(seed: int, first: list[Prediction], energies: dict[str, ComposedEnergy],
                 reached: dict[str, Callable], target: Snapshot) -> list[dict]:
    """How well each camera (and their sum) judges the first step's random-shooting candidates, against the
    ground truth: for text goals the AUC of telling candidates that reach the goal from the rest, for image goals
    the Spearman correlation of the energy with the candidates' distance to the target arrangement; and for both,
    whether the candidate the energy ranks first reaches the goal; and the spread (standard deviation) of each
    energy over the candidates, which sets how much a camera weighs in an equal-weight sum. For the notebook's
    analysis only."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    out = []
    for goal, energy in energies.items():
        e = energy(first)
        hits = np.array([reached[goal](p.snapshot.positions) for p in first])
        distance = np.array([sum(np.linalg.norm(p.snapshot.positions[c] - target.positions[c]) for c in
                                 target.positions) for p in first])
        for name, values in [*e.terms.items(), ("sum", e.total)]:
            v = values.numpy()
            if goal == "text":
                agreement = roc_auc_score(hits, -v) if 0 < hits.sum() < len(hits) else float("nan")
            else:
                agreement = float(spearmanr(v, distance)[0])
            out.append({"seed": seed, "goal": goal, "scorer": name, "agreement": float(agreement),
                        "first_choice_reaches_goal": bool(hits[int(np.argmin(v))]),
                        "energy_spread": float(np.std(v))})
    return out


def placement_error_cm(final: Snapshot, target: Snapshot) -> float:
    """The largest distance (cm, on the table plane) between a cube and its place in the target arrangement."""
    return 100 * max(float(np.hypot(*(final.positions[c][:2] - target.positions[c][:2]))) for c in target.positions)


def _cost_snapshot(c: Costs) -> Costs:
    return Costs(**vars(c))


def _cost_delta(before: Costs, after: Costs) -> dict:
    return {k: getattr(after, k) - getattr(before, k) for k in vars(after)}


def unit_costs(world: TabletopWorld, seed: int, repeats: int = 5) -> dict:
    """Seconds of one render (one camera), one world-model prediction and one executed pick-and-place, measured
    on the episode of `seed` (the median of `repeats`)."""
    episode, snap = make_episode(world, seed)
    action = stack_actions(snap)[0]

    def median_seconds(fn) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return float(np.median(times)), out

    render_s, _ = median_seconds(lambda: world.render_snapshot(snap, (VIEWS[0],)))
    predict_s, _ = median_seconds(lambda: world.predict(snap, action))
    execute_s, result = median_seconds(lambda: world.execute(snap, action))
    return {"render_one_camera_s": render_s, "predict_s": predict_s, "execute_pick_and_place_s": execute_s,
            "physics_steps_per_pick_and_place": result.sim_steps}
