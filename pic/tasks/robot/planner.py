"""Table 4: robot manipulation by consensus of a planner/world model with scorers from several camera views.

Generator: MPC with a world model. At every step the planner proposes candidate pick-and-place actions (random
shooting, then CEM-style rounds around the best ones via pic.optim.rerank_rounds), predicts each outcome with the
world model (the simulator restored from the saved state, the cube placed kinematically, physics settled: the arm
is skipped for prediction only) and renders every predicted scene from the cameras. Scorers: one per camera, each
a pic.energy.Scorer on that camera's predicted image. The action executed by the arm is the argmin of the summed
energies (pic.optim.select_argmin); closed loop for up to `max_steps` steps, and "leave it" is always a candidate.

Rows that reach the same state see the same candidates, so predictions, renders and per-view energies are cached
per (state, action); the cache is what keeps sixteen rows of fifty episodes within minutes on two cores.
"""
from __future__ import annotations

import itertools
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from scipy.stats import binomtest

from pic.energy import ComposedEnergy, Scorer
from pic.optim import rerank_rounds, select_argmin
from pic.tasks.robot.goals import image_goal_reached, parse_goal
from pic.tasks.robot.scenes import make_episode, perturb_actions, propose_actions
from pic.tasks.robot.sim import NO_OP, VIEWS, Placement, Snapshot, TabletopWorld


@dataclass(frozen=True)
class State:
    """A simulator state reached by executing `history` (a tuple of actions) from the episode's start."""

    history: tuple
    snapshot: Snapshot = field(compare=False, hash=False)


@dataclass
class Costs:
    """Seconds and counts spent in the simulator and the renderer (for the cost table)."""

    predictions: int = 0
    renders: int = 0
    executions: int = 0
    scored_images: int = 0
    predict_s: float = 0.0
    render_s: float = 0.0
    execute_s: float = 0.0
    score_s: float = 0.0


@contextmanager
def _adding_seconds(costs: Costs, field_name: str):
    """Adds the wall time of the block to costs.<field_name>."""
    start = time.perf_counter()
    try:
        yield
    finally:
        setattr(costs, field_name, getattr(costs, field_name) + time.perf_counter() - start)


class Prediction:
    """A candidate action and its predicted outcome; `image(view)` renders it (once) from a camera."""

    def __init__(self, model: WorldModel, state: State, action: Placement, snapshot: Snapshot):
        self.model, self.state, self.action, self.snapshot = model, state, action, snapshot
        self.key = (state.history, action)

    def image(self, view: str) -> torch.Tensor:
        return self.model.image(self, view)

    def __repr__(self) -> str:
        return f"Prediction({self.action})"


class WorldModel:
    """Predicts and executes actions in one TabletopWorld, caching every result by (history, action)."""

    def __init__(self, world: TabletopWorld):
        self.world = world
        self.costs = Costs()
        self._predictions: dict[tuple, Prediction] = {}
        self._images: dict[tuple, torch.Tensor] = {}
        self._executed: dict[tuple, tuple[State, str]] = {}

    def start(self, snapshot: Snapshot) -> State:
        """A new episode: forget the previous episode's caches (their states are gone)."""
        self._predictions.clear(), self._images.clear(), self._executed.clear()
        return State((), snapshot)

    def predict(self, state: State, actions: list[Placement]) -> list[Prediction]:
        out = []
        for a in actions:
            key = (state.history, a)
            if key not in self._predictions:
                with _adding_seconds(self.costs, "predict_s"):
                    self._predictions[key] = Prediction(self, state, a, self.world.predict(state.snapshot, a))
                self.costs.predictions += 1
            out.append(self._predictions[key])
        return out

    def image(self, p: Prediction, view: str) -> torch.Tensor:
        key = (*p.key, view)
        if key not in self._images:
            with _adding_seconds(self.costs, "render_s"):
                self._images[key] = self.world.render_snapshot(p.snapshot, (view,))[0]
            self.costs.renders += 1
        return self._images[key]

    def execute(self, state: State, action: Placement) -> tuple[State, str]:
        """(the real next state, "placed" or the failure) of the arm doing `action` from `state`."""
        key = (state.history, action)
        if key not in self._executed:
            with _adding_seconds(self.costs, "execute_s"):
                result = self.world.execute(state.snapshot, action)
            self.costs.executions += 1
            self._executed[key] = (State((*state.history, action), result.snapshot), result.reason)
        return self._executed[key]


class ViewScorer(Scorer):
    """Scores predictions by one camera: renders `view` of each predicted scene and hands the batch of images
    to `image_scorer` (a pic.energy.Scorer on images [B, 3, H, W]); energies cached per prediction."""

    differentiable = False

    def __init__(self, view: str, image_scorer: Scorer, costs: Costs | None = None, **context):
        self.name, self.view, self.image_scorer, self.context = view, view, image_scorer, context
        self.costs = costs or Costs()
        self._cache: dict[tuple, float] = {}

    def energy(self, predictions, **context) -> torch.Tensor:
        by_key = {p.key: p for p in predictions}
        todo = [k for k in by_key if k not in self._cache]
        if todo:  # one batch per call: every new candidate of this round, rendered and scored together
            images = torch.stack([by_key[k].image(self.view) for k in todo])
            with _adding_seconds(self.costs, "score_s"):
                energies = self.image_scorer.energy(images, **self.context)
            self.costs.scored_images += len(todo)
            self._cache.update(zip(todo, energies.tolist()))
        return torch.tensor([self._cache[p.key] for p in predictions], dtype=torch.float32)


@dataclass(frozen=True)
class PlannerSettings:
    n_random: int = 24  # random table placements per step (plus every stacking action and the no-op)
    rounds: int = 2  # 1 = random shooting; more = CEM-style re-proposals around the kept candidates
    keep: int = 4
    n_refine: int = 16  # new candidates per later round
    sigma: float = 0.03  # m, step of the re-proposals
    max_steps: int = 2


def step_rng(seed: int, history: tuple, step: int) -> np.random.Generator:
    """The proposal stream of a state: rows in the same state get the same candidates (and share the cache)."""
    return np.random.default_rng([seed, step, zlib.crc32(repr(history).encode())])


def plan(model: WorldModel, state: State, energy: ComposedEnergy, rng: np.random.Generator,
         settings: PlannerSettings):
    """The consensus step: propose, predict, score with every view, refine, return select_argmin's Selection."""
    snap = state.snapshot

    def propose(kept, n):
        if kept is None:
            return model.predict(state, propose_actions(rng, snap, settings.n_random))
        actions = perturb_actions(rng, snap, [p.action for p in kept], n, settings.sigma)
        return model.predict(state, actions) if actions else kept[:1]

    pool = rerank_rounds(propose, energy, n=settings.n_refine, keep=settings.keep, rounds=settings.rounds,
                         stop_on_agreement=False).candidates
    return select_argmin(pool, energy)


@dataclass
class EpisodeResult:
    success: bool
    steps: int  # pick-and-place actions executed
    failed_grasps: int
    actions: list
    final: Snapshot


def run_episode(model: WorldModel, seed: int, start: State, reached: Callable[[dict], bool],
                energy: ComposedEnergy | None, settings: PlannerSettings) -> EpisodeResult:
    """One closed-loop episode; `energy=None` is the random-action baseline (one random proposal executed)."""
    state, actions, failures = start, [], 0
    for step in range(1 if energy is None else settings.max_steps):
        rng = step_rng(seed, state.history, step)
        if energy is None:
            options = propose_actions(rng, state.snapshot, settings.n_random)[1:]  # anything but the no-op
            action = options[rng.integers(len(options))]
        else:
            action = plan(model, state, energy, rng, settings).candidate.action
        if action == NO_OP:
            break
        state, outcome = model.execute(state, action)
        actions.append(action)
        failures += outcome != "placed"
    return EpisodeResult(reached(state.snapshot.positions), len(actions), failures, actions, state.snapshot)


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (scipy's); NaN for no episodes."""
    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def view_energy(scorers: dict[str, Scorer]) -> ComposedEnergy:
    """All views summed with equal weights; `.subset([view])` gives a single view's row."""
    return ComposedEnergy([(scorers[v], 1.0) for v in VIEWS if v in scorers])


# ------------------------------------------------------------------------------------------------- the experiment
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
    final: Snapshot  # the cubes' final poses, for figures
    error_cm: float = float("nan")  # image goals: the largest distance of a cube from its target place


def run_table(world: TabletopWorld, seeds, rows: list[Row], text_scorer: Callable[[str], Scorer],
              image_scorer: Callable[[str, torch.Tensor], Scorer], settings: PlannerSettings,
              progress: Callable[[int], None] | None = None) -> tuple[list[EpisodeRecord], list[dict], list[dict]]:
    """Every row on every episode. `text_scorer(view)` -> a scorer of images given `prompt`; `image_scorer(view,
    goal_image)` -> a scorer of images against that camera's goal image. Returns the episode records, the
    simulation/render cost of each episode (all rows together, with the cache) and `view_quality` records."""
    model, records, costs, quality = WorldModel(world), [], [], []
    for seed in seeds:
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
        for row in rows:
            energy = energies[row.goal].subset(row.views) if row.views else None
            r = run_episode(model, seed, start, reached[row.goal], energy, settings)
            records.append(EpisodeRecord(seed, row.goal, row.name, len(row.views), bool(r.success), r.steps,
                                         r.failed_grasps, goal.instruction if row.goal == "text" else
                                         f"image of: {episode.target_action}", "; ".join(map(str, r.actions)),
                                         r.final, placement_error_cm(r.final, target) if row.goal == "image"
                                         else float("nan")))
        costs.append(_cost_delta(before, model.costs))
        quality.extend(view_quality(seed, first, energies, reached, target))
        if progress:
            progress(seed)
    return records, costs, quality


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


def success_rows(records: list[EpisodeRecord], rows: list[Row]) -> list[dict]:
    """Success rate per row with its 95% Wilson interval and the failed grasps counted."""
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


def paired_comparison(records: list[EpisodeRecord], goal: str, a: str, b: str) -> dict:
    """Episodes only row `a` solves, only row `b` solves, and the exact two-sided sign test on them (the rows
    see the same episodes, so the paired test is the right one)."""
    by = {(r.row, r.seed): r.success for r in records if r.goal == goal}
    seeds = sorted({seed for _, seed in by})
    only_a = sum(by[(a, s)] and not by[(b, s)] for s in seeds)
    only_b = sum(by[(b, s)] and not by[(a, s)] for s in seeds)
    p = binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
    return {"goal": goal, "first": a, "second": b, "only_first_succeeds": only_a, "only_second_succeeds": only_b,
            "sign_test_p": float(p)}


def unit_costs(world: TabletopWorld, seed: int, repeats: int = 5) -> dict:
    """Seconds of one render (one camera), one world-model prediction and one executed pick-and-place, measured
    on the episode of `seed` (the median of `repeats`)."""
    from pic.tasks.robot.scenes import stack_actions

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
