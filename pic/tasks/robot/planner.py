"""The consensus step of Table 4: a planner/world model proposes, scorers from several camera views judge.

Generator: MPC with a world model. At every step the planner proposes candidate pick-and-place actions (random
shooting, then CEM-style rounds around the best ones via pic.optim.rerank_rounds), predicts each outcome with the
world model (the simulator restored from the saved state, the cube placed kinematically, physics settled: the arm
is skipped for prediction only) and renders every predicted scene from the cameras. Scorers: one per camera, each
a pic.energy.Scorer on that camera's predicted image. The action executed by the arm is the argmin of the summed
energies (pic.optim.select_argmin); closed loop for up to `max_steps` steps, and "leave it" is always a candidate.

Rows that reach the same state see the same candidates, so predictions, renders and per-view energies are cached
per (state, action); the cache is what keeps sixteen rows of fifty episodes within minutes on two cores. Running
every row on the same episodes is episodes.run_table.
"""
from __future__ import annotations

import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from pic.energy import ComposedEnergy, Scorer
from pic.optim import rerank_rounds, select_argmin
from pic.tasks.robot.scenes import perturb_actions, propose_actions
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


def view_energy(scorers: dict[str, Scorer]) -> ComposedEnergy:
    """All views summed with equal weights; `.subset([view])` gives a single view's row."""
    return ComposedEnergy([(scorers[v], 1.0) for v in VIEWS if v in scorers])
