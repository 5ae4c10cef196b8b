"""Random scenes, episodes and candidate actions of the robot task, each drawn from its own seeded generator.

- `sample_layout`: 2-4 cubes at free places of the workspace (optionally one resting on another).
- `make_episode(seed)`: a scene, a text goal that does not hold yet, and an image goal (the scene with one cube
  moved), all fixed by the episode's seed so that every row of the table sees the same episodes.
- `propose_actions`: the planner's proposal distribution (random shooting): every stacking action, random table
  placements, and "leave it" (no-op); `perturb_actions` re-proposes around kept candidates (the CEM-style rounds).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from pic.tasks.robot.goals import RELATIONS, RelationGoal, relation_holds
from pic.tasks.robot.sim import COLOURS, CUBE, NO_OP, WORKSPACE, Placement, Snapshot

CLEARANCE = 0.07  # m between cube centres on the table (a cube is 0.05)
START_REGION = ((-0.18, 0.02), (-0.15, 0.15))  # where episodes start: room around the cubes for every relation


def free_place(rng: np.random.Generator, occupied, tries: int = 200, region=WORKSPACE) -> tuple[float, float]:
    """A uniform (x, y) in `region` at least CLEARANCE from every occupied (x, y)."""
    for _ in range(tries):
        x, y = rng.uniform(*region[0]), rng.uniform(*region[1])
        if all(np.hypot(x - a, y - b) >= CLEARANCE for a, b in occupied):
            return float(x), float(y)
    raise RuntimeError(f"no free place for a cube among {len(occupied)} others after {tries} tries")


@dataclass(frozen=True)
class Layout:
    """Cubes on the table, colour -> (x, y, yaw), and an optional stack (upper colour, lower colour)."""

    cubes: dict
    stack: tuple[str, str] | None = None


def place_beside(rng: np.random.Generator, anchor, occupied) -> tuple[float, float] | None:
    """A free place 8-13 cm from `anchor` along one of the table's four directions, give or take 2 cm (where
    people put things next to others); None if the draws keep landing off the table or on another cube."""
    for _ in range(20):
        angle, r = rng.integers(4) * np.pi / 2, rng.uniform(0.08, 0.13)
        x = anchor[0] + r * np.cos(angle) + rng.normal(0, 0.02)
        y = anchor[1] + r * np.sin(angle) + rng.normal(0, 0.02)
        if in_workspace(x, y) and all(np.hypot(x - a, y - b) >= CLEARANCE for a, b in occupied):
            return float(x), float(y)
    return None


def sample_layout(rng: np.random.Generator, n_cubes: int = 3, p_stack: float = 0.0, region=WORKSPACE,
                  p_beside: float = 0.0) -> Layout:
    """Cubes at free places of `region`; each after the first lands beside an earlier one with probability
    `p_beside` (the training scenes need many cubes next to each other: random places rarely are)."""
    if not 2 <= n_cubes <= len(COLOURS):
        raise ValueError(f"a scene holds 2 to {len(COLOURS)} cubes, got {n_cubes}")
    colours = [str(c) for c in rng.choice(list(COLOURS), n_cubes, replace=False)]
    cubes, placed = {}, []
    for c in colours:
        spot = place_beside(rng, placed[rng.integers(len(placed))], placed) \
            if placed and rng.random() < p_beside else None
        x, y = spot or free_place(rng, placed, region=region)
        placed.append((x, y))
        cubes[c] = (x, y, float(rng.uniform(0, np.pi / 2)))
    stack = tuple(str(c) for c in rng.choice(colours, 2, replace=False)) if rng.random() < p_stack else None
    return Layout(cubes, stack)


# ------------------------------------------------------------------------------------------- the planner's actions
def supports(snap: Snapshot) -> dict[str, str]:
    """upper colour -> lower colour for every cube resting on another."""
    pos = snap.positions
    return {a: b for a, b in itertools.permutations(pos, 2) if relation_holds("on", pos[a], pos[b])}


def movable(snap: Snapshot) -> list[str]:
    """Cubes with nothing on top of them (the arm can only pick those)."""
    below = set(supports(snap).values())
    return [c for c in snap.positions if c not in below]


def stack_actions(snap: Snapshot) -> list[Placement]:
    """Every 'put a free cube onto a free cube that rests on the table' (stacks stay at most two high)."""
    on_table = [c for c in movable(snap) if c not in supports(snap)]
    return [Placement(a, onto=b) for a in movable(snap) for b in on_table if a != b]


def random_placement(rng: np.random.Generator, snap: Snapshot, p_beside: float = 0.5) -> Placement:
    """A random free cube to a random free place: with probability `p_beside` beside another cube, else anywhere
    in the workspace."""
    cube = str(rng.choice(movable(snap)))
    occupied = [p[:2] for c, p in snap.positions.items() if c != cube]
    spot = place_beside(rng, occupied[rng.integers(len(occupied))], occupied) if rng.random() < p_beside else None
    x, y = spot or free_place(rng, occupied)
    return Placement(cube, round(x, 4), round(y, 4))


def in_workspace(x: float, y: float) -> bool:
    return WORKSPACE[0][0] <= x <= WORKSPACE[0][1] and WORKSPACE[1][0] <= y <= WORKSPACE[1][1]


def propose_actions(rng: np.random.Generator, snap: Snapshot, n_random: int) -> list[Placement]:
    """Round 0 of the planner: no-op, every stacking action, and `n_random` random table placements."""
    return [NO_OP, *stack_actions(snap), *(random_placement(rng, snap) for _ in range(n_random))]


def perturb_actions(rng: np.random.Generator, snap: Snapshot, kept: list[Placement], n: int,
                    sigma: float) -> list[Placement]:
    """`n` table placements around the kept ones (Gaussian steps of `sigma` m), each staying free and in the
    workspace; kept stacking actions and the no-op have no neighbours and are not perturbed."""
    seeds = [a for a in kept if a != NO_OP and a.onto is None]
    if not seeds:
        return []
    out = []
    for i in range(n):
        a = seeds[i % len(seeds)]
        occupied = [p[:2] for c, p in snap.positions.items() if c != a.cube]
        for _ in range(20):
            x, y = np.array([a.x, a.y]) + rng.normal(0.0, sigma, 2)
            if in_workspace(x, y) and all(np.hypot(x - p, y - q) >= CLEARANCE for p, q in occupied):
                out.append(Placement(a.cube, round(float(x), 4), round(float(y), 4)))
                break
    return out


# ------------------------------------------------------------------------------------------- episodes
@dataclass(frozen=True)
class Episode:
    """One evaluation episode: a scene, a text goal and an image goal's target action (all from `seed`)."""

    seed: int
    layout: Layout
    text_goal: RelationGoal
    target_action: Placement  # applied to the initial scene, it gives the image goal's arrangement


def sample_text_goal(rng: np.random.Generator, snap: Snapshot, min_room: float = 0.003) -> RelationGoal:
    """A relation (uniform over the five types) between two cubes of the scene that does not hold yet and leaves
    the arm at least `min_room` m^2 of free table to achieve it (a cube near the table's front edge cannot get a
    cube in front of it)."""
    pos = snap.positions
    relation = str(rng.choice(list(RELATIONS)))
    pairs = [(a, b) for a, b in itertools.permutations(sorted(pos), 2)
             if not relation_holds(relation, pos[a], pos[b]) and goal_room(RelationGoal(a, relation, b), pos) >= min_room]
    a, b = pairs[rng.integers(len(pairs))]
    return RelationGoal(a, relation, b)


def goal_room(goal: RelationGoal, positions: dict, step: float = 0.01) -> float:
    """Area (m^2) of free workspace where moving the subject, or the object, makes `goal` hold (on a 1 cm grid);
    a stacking goal counts as room enough."""
    if goal.relation == "on":
        return float("inf")
    xs, ys = np.meshgrid(np.arange(*WORKSPACE[0], step), np.arange(*WORKSPACE[1], step), indexing="ij")
    grid = np.stack([xs.ravel(), ys.ravel()], 1)
    area = 0.0
    for mover, other in ((goal.subject, goal.obj), (goal.obj, goal.subject)):
        blocked = np.zeros(len(grid), dtype=bool)
        for c, p in positions.items():
            if c != mover:
                blocked |= np.hypot(grid[:, 0] - p[0], grid[:, 1] - p[1]) < CLEARANCE
        place = np.column_stack([grid, np.full(len(grid), positions[other][2])])
        pair = (place, positions[other]) if mover == goal.subject else (positions[other], place)
        area += float(np.sum(relation_holds(goal.relation, *pair) & ~blocked)) * step * step
    return area


def sample_target_action(rng: np.random.Generator, snap: Snapshot, p_stack: float = 0.25,
                         min_move: float = 2 * CUBE) -> Placement:
    """The image goal: one cube moved at least `min_move` (to a free place, or onto another cube)."""
    if rng.random() < p_stack:
        options = stack_actions(snap)
        return options[rng.integers(len(options))]
    while True:
        action = random_placement(rng, snap, p_beside=0.0)
        if np.hypot(action.x - snap.positions[action.cube][0], action.y - snap.positions[action.cube][1]) >= min_move:
            return action


def make_episode(world, seed: int, n_cubes: int = 3) -> tuple[Episode, Snapshot]:
    """The episode of `seed` and its initial simulator state (the world is reset to it)."""
    rng = np.random.default_rng([seed, 4])  # 4: Table 4; a stream of its own per episode
    layout = sample_layout(rng, n_cubes, region=START_REGION)
    snap = world.reset_scene(layout.cubes)
    return Episode(seed, layout, sample_text_goal(rng, snap), sample_target_action(rng, snap)), snap
