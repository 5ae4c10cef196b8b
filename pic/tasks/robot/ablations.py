"""Table 4's ablations for 60_ablations: success against the planner's rerank rounds per step (all views), every
subset of the camera views (text and image goals), and the views' disagreement per episode, on 41's episodes with
its committed scorers.

Each configuration runs through 41's run_table (the world model's cache shared between the rows of an episode), so
rows that reach the same state see the same candidates. Success rates carry Wilson intervals over episodes.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

from pic.report import profile_settings
from pic.stats import disagreement, wilson_interval
from pic.tasks.robot.episodes import run_table
from pic.tasks.robot.goals import parse_goal
from pic.tasks.robot.planner import ViewScorer, WorldModel, step_rng
from pic.tasks.robot.scenes import make_episode, propose_actions
from pic.tasks.robot.scorers import image_scorers, text_scorers
from pic.tasks.robot.settings import ExperimentSettings, load as load_settings
from pic.tasks.robot.sim import VIEWS, TabletopWorld
from pic.tasks.robot.table import VIEW_WEIGHTS, Row, all_rows

PROFILES = {
    "smoke": dict(n_episodes=1, rounds=(1, 2), validation_episodes=1, weight_scales=(1.0,)),
    "local": dict(n_episodes=30, rounds=(1, 2, 3), validation_episodes=40, weight_scales=(0.25, 0.5, 1.0, 2.0, 4.0)),
}
# the view-weight sweep: the top camera's weight stays 1, the front's and the side's are scaled (every view keeps a
# weight > 0, so each cell is an all-view row); it runs on validation episodes, never 41's evaluation episodes
FIXED, SWEPT = "top", ("front", "side")


@dataclass
class Ablation:
    settings: dict
    experiment: ExperimentSettings  # 41's planner at the profile (its rounds are swept here)
    world: TabletopWorld
    text_scorers: dict
    image_scorer: object
    seeds: list[int]
    records: dict = field(default_factory=dict)  # (goal, row, rounds, seed) -> its record, so no row runs twice

    def run(self, rows: list[Row], rounds: int | None = None, seeds: list[int] | None = None) -> list:
        """The episode records of `rows` on every episode (or on `seeds`), with `rounds` planner rounds (None:
        41's); rows already run with those rounds on those episodes are not run again (a row's outcome does not
        depend on the rows beside it)."""
        planner = self.experiment.planner if rounds is None else replace(self.experiment.planner, rounds=rounds)
        seeds = self.seeds if seeds is None else seeds
        todo = [r for r in rows if any((r.goal, r.name, planner.rounds, s) not in self.records for s in seeds)]
        if todo:
            records, _, _ = run_table(self.world, seeds, todo, lambda v: self.text_scorers[v], self.image_scorer,
                                      planner)
            self.records.update({(r.goal, r.row, planner.rounds, r.seed): r for r in records})
        return [self.records[(r.goal, r.name, planner.rounds, s)] for s in seeds for r in rows]

    def validation_seeds(self, seed: int) -> list[int]:
        return self.experiment.validation_seeds(seed, self.settings["validation_episodes"])


def load(profile: str, seed: int = 0) -> Ablation:
    """41's settings, world and scorers at the profile, on its first n_episodes evaluation episodes."""
    settings = profile_settings(profile, PROFILES)
    experiment = load_settings(profile, n_episodes=settings["n_episodes"])
    return Ablation(settings, experiment, TabletopWorld(size=64), text_scorers(profile, seed=seed),
                    image_scorers(profile), experiment.episode_seeds(seed))


def success(records: list, goal: str, row: str) -> dict:
    """The success rate of a row's episodes with its 95% Wilson interval."""
    mine = [r for r in records if r.goal == goal and r.row == row]
    if not mine:
        raise ValueError(f"no episodes of row {row!r} with {goal} goals")
    wins = sum(r.success for r in mine)
    low, high = wilson_interval(wins, len(mine))
    return {"episodes": len(mine), "success": wins / len(mine), "ci95_low": low, "ci95_high": high}


def rounds_rows(ab: Ablation) -> list[dict]:
    """All views summed, text and image goals, at each number of planner rounds (1: random shooting)."""
    rows = [Row("text", VIEWS), Row("image", VIEWS)]
    out = []
    for rounds in ab.settings["rounds"]:
        records = ab.run(rows, rounds)
        out += [{"goal": r.goal, "rounds": rounds, **success(records, r.goal, r.name)} for r in rows]
    return out


def subset_records(ab: Ablation) -> list:
    """The episode records of the random action and of every non-empty subset of the views with equal weights,
    text and image goals."""
    return ab.run(all_rows(pairs=True, validation_weights=False))


def subset_rows(records: list) -> list[dict]:
    """The success rate of each row of subset_records, with its Wilson interval."""
    return [{"goal": r.goal, "scorers": r.name, "n_scorers": len(r.views), **success(records, r.goal, r.name)}
            for r in all_rows(pairs=True, validation_weights=False)]


def grid_weights(ab: Ablation) -> list[dict[str, float]]:
    """The view weights of each cell of the sweep: FIXED at 1, each SWEPT view at every scale of the profile."""
    scales = ab.settings["weight_scales"]
    return [{FIXED: 1.0, SWEPT[0]: a, SWEPT[1]: b} for a, b in itertools.product(scales, repeat=2)]


def weight_rows(ab: Ablation, seed: int) -> tuple[list[dict], list[dict]]:
    """On validation episodes (experiment seed `seed`): (every cell of the view-weight grid, text and image goals;
    each view alone), each a success rate with its Wilson interval."""
    cells = [(goal, w) for goal in ("text", "image") for w in grid_weights(ab)]
    grid_rows = [Row(goal, VIEWS, tuple(w[v] for v in VIEWS)) for goal, w in cells]
    singles = [Row(goal, (v,)) for goal in ("text", "image") for v in VIEWS]
    records = ab.run(grid_rows + singles, seeds=ab.validation_seeds(seed))
    grid = [{"goal": goal, **{f"{v}_weight": w[v] for v in (FIXED, *SWEPT)}, **success(records, goal, row.name)}
            for (goal, w), row in zip(cells, grid_rows)]
    return grid, [{"goal": r.goal, "scorers": r.name, **success(records, r.goal, r.name)} for r in singles]


def choose_weights(grid: list[dict], goal: str) -> dict[str, float]:
    """The view weights of the grid's best cell for `goal` on validation: the highest success; among equals, the
    cell nearest equal weights (the smallest sum of |log2 w|), then the first in the grid's order."""
    mine = [r for r in grid if r["goal"] == goal]
    best = max(mine, key=lambda r: (r["success"], -sum(abs(math.log2(r[f"{v}_weight"])) for v in VIEWS)))
    return {v: best[f"{v}_weight"] for v in VIEWS}


def weight_claims(grid: list[dict], singles: list[dict]) -> list[dict]:
    """Per goal kind, on validation: whether the grid's best cell beats the best single view beyond the Wilson
    intervals; and whether 41 uses the weights choose_weights picks (table.VIEW_WEIGHTS)."""
    out = []
    for goal in ("text", "image"):
        chosen = choose_weights(grid, goal)
        best = next(r for r in grid if r["goal"] == goal and all(r[f"{v}_weight"] == w for v, w in chosen.items()))
        single = max((r for r in singles if r["goal"] == goal), key=lambda r: r["success"])
        named = Row(goal, VIEWS, tuple(chosen[v] for v in VIEWS)).name
        out += [{"claim": f"validation, {goal} goals: the grid's best weighting ({named}) beats the best single view "
                          f"({single['scorers']}), intervals apart", "holds": best["ci95_low"] > single["ci95_high"],
                 "grid_best": best["success"], "single_best": single["success"]},
                {"claim": f"41 sums the views of {goal} goals with the weights chosen here",
                 "holds": VIEW_WEIGHTS[goal] == chosen}]
    return out


def view_disagreement(ab: Ablation, seed: int) -> dict[str, float]:
    """Per goal kind, pic.stats.disagreement of the views' energies of the first step's random-shooting candidates
    in the episode of `seed` (the candidates every row's planner starts from)."""
    world = ab.world
    world.release_states()
    episode, snap = make_episode(world, seed)
    goal = parse_goal(episode.text_goal.instruction, cubes=snap.positions)
    model = WorldModel(world)
    goal_images = world.render_snapshot(world.predict(snap, episode.target_action))
    first = model.predict(model.start(snap), propose_actions(step_rng(seed, (), 0), snap, ab.experiment.n_random))
    scorers = {"text": {v: ViewScorer(v, ab.text_scorers[v], prompt=goal.caption) for v in VIEWS},
               "image": {v: ViewScorer(v, ab.image_scorer(v, goal_images[i])) for i, v in enumerate(VIEWS)}}
    return {kind: disagreement({v: s.energy(first).numpy() for v, s in views.items()})
            for kind, views in scorers.items()}


def disagreement_rows(ab: Ablation, records: list) -> list[dict]:
    """Per episode and goal kind: the views' disagreement, and whether all views together and each view alone
    reach the goal (the rows pic.stats.by_disagreement bins)."""
    outcome = {(r.seed, r.goal, r.row): r.success for r in records}
    everything = Row("text", VIEWS).name
    rows = []
    for seed in ab.seeds:
        for goal, d in view_disagreement(ab, seed).items():
            rows.append({"seed": seed, "goal": goal, "disagreement": d,
                         "consensus_right": outcome[(seed, goal, everything)],
                         **{f"{v}_right": outcome[(seed, goal, v)] for v in VIEWS}})
    return rows


def claims(rounds: list[dict], subsets: list[dict], correlations: dict[str, dict]) -> list[dict]:
    """What the Table 4 ablations check, per goal kind: more planner rounds and all views against the best single
    view, each beyond the Wilson intervals (the intervals do not overlap); and whether all views gain more where
    the views disagree (correlations: goal -> pic.stats.by_disagreement's correlation)."""
    out = []
    for goal in ("text", "image"):
        by_rounds = [r for r in rounds if r["goal"] == goal]
        first, last = by_rounds[0], by_rounds[-1]
        mine = [r for r in subsets if r["goal"] == goal]
        full = max(mine, key=lambda r: r["n_scorers"])
        best_single = max((r for r in mine if r["n_scorers"] == 1), key=lambda r: r["success"])
        out += [
            {"claim": f"{goal} goals: {last['rounds']} planner rounds beat {first['rounds']} (intervals apart)",
             "holds": last["ci95_low"] > first["ci95_high"], "fewest": first["success"], "most": last["success"]},
            {"claim": f"{goal} goals: all views beat the best single view ({best_single['scorers']}), intervals apart",
             "holds": full["ci95_low"] > best_single["ci95_high"], "all": full["success"],
             "best_single": best_single["success"]},
            {"claim": f"{goal} goals: all views gain more over a single view where the views disagree (rank "
                      "correlation's 95% interval above 0)", "holds": correlations[goal]["low"] > 0,
             "rho": correlations[goal]["rho"], "low": correlations[goal]["low"], "high": correlations[goal]["high"]},
        ]
    return out
