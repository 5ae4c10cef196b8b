"""Goals of the robot task: a small grammar for text goals, the spatial relations they name, and ground truth
decided from the simulator's cube poses only (never from a scorer).

Text goals read "put the <colour> cube <relation> the <colour> cube", with five relations: to the left of, to the
right of, in front of, behind, on top of ("on" too). Left, right, front and behind are as a person at the front
camera sees them, and mean *next to*: the centres 6-15 cm apart along the relation's axis and at most 4 cm apart
across it (side by side, as a person asked to put a cup to the left of a plate would). Judging that takes both
directions at once, which no single camera sees equally well. "On top of" holds when a cube rests on the other.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pic.tasks.robot.sim import COLOURS, CUBE

RELATIONS = {  # name -> the phrase of the canonical caption the scorers were trained on
    "left": "to the left of", "right": "to the right of", "front": "in front of", "behind": "behind",
    "on": "on top of",
}
PHRASES = {"to the left of": "left", "left of": "left", "to the right of": "right", "right of": "right",
           "in front of": "front", "behind": "behind", "on top of": "on", "onto": "on", "on": "on"}
GAP = (0.06, 0.15)  # m between the centres along the relation's axis (a cube is 0.05): next to, not touching
ALIGNED = 0.04  # m at most across it: the cubes stand side by side, not diagonally
SUCCESS_DISTANCE = 0.03  # m: an image goal is reached when every cube is this close to its target (xy)

_GOAL = re.compile(r"^\s*(?:put|place|move|stack)\s+the\s+(\w+)\s+(?:cube|block)\s+(.+?)\s+the\s+(\w+)\s+"
                   r"(?:cube|block)\s*\.?\s*$", re.IGNORECASE)
_ITSELF = re.compile(r"^\s*(?:put|place|move|stack)\s+the\s+(\w+)\s+(?:cube|block)\s+(.+?)\s+(?:itself|it)\s*\.?\s*$",
                     re.IGNORECASE)


class GoalError(ValueError):
    """A goal that cannot be parsed, or that no arrangement of this scene can satisfy; raised before an episode."""


@dataclass(frozen=True)
class RelationGoal:
    """`subject` `relation` `obj`, e.g. red left blue: "the red cube is to the left of the blue cube"."""

    subject: str
    relation: str
    obj: str

    @property
    def caption(self) -> str:
        """The canonical sentence the relation scorers read."""
        return f"the {self.subject} cube is {RELATIONS[self.relation]} the {self.obj} cube"

    @property
    def instruction(self) -> str:
        return f"put the {self.subject} cube {RELATIONS[self.relation]} the {self.obj} cube"

    def holds(self, positions: dict[str, np.ndarray]) -> bool:
        return relation_holds(self.relation, positions[self.subject], positions[self.obj])


def relation_holds(relation: str, a, b):
    """Whether cube centre `a` stands in `relation` to cube centre `b` (world frame of robot_sim); arrays of
    centres [..., 3] give an array of answers."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    if relation == "on":
        out = (0.8 * CUBE < dz) & (dz < 1.2 * CUBE) & (np.hypot(dx, dy) < 0.6 * CUBE)
    elif relation in ("left", "right"):
        gap = -dy if relation == "left" else dy
        out = (gap >= GAP[0]) & (gap <= GAP[1]) & (np.abs(dx) <= ALIGNED)
    elif relation in ("front", "behind"):
        gap = dx if relation == "front" else -dx
        out = (gap >= GAP[0]) & (gap <= GAP[1]) & (np.abs(dy) <= ALIGNED)
    else:
        raise GoalError(f"unknown relation {relation!r}; have {list(RELATIONS)}")
    return bool(out) if out.ndim == 0 else out


def parse_goal(text: str, cubes=None) -> RelationGoal:
    """The RelationGoal of an instruction; GoalError naming the culprit if it is unparsable or impossible.

    `cubes`: the colours in the scene, to refuse goals about a cube that is not there.
    """
    if not isinstance(text, str) or not text.strip():
        raise GoalError("empty goal: expected 'put the <colour> cube <relation> the <colour> cube'")
    itself = _ITSELF.match(text)
    if itself:
        raise GoalError(f"impossible goal {text!r}: a cube cannot be {itself.group(2)} itself")
    m = _GOAL.match(text)
    if not m:
        raise GoalError(f"cannot parse goal {text!r}: expected 'put the <colour> cube <relation> the <colour> cube' "
                        f"with a colour in {list(COLOURS)} and a relation in {sorted(PHRASES)}")
    subject, phrase, obj = m.group(1).lower(), " ".join(m.group(2).lower().split()), m.group(3).lower()
    if phrase not in PHRASES:
        raise GoalError(f"unknown relation {phrase!r} in goal {text!r}; use one of {sorted(PHRASES)}")
    for colour in (subject, obj):
        if colour not in COLOURS:
            raise GoalError(f"unknown colour {colour!r} in goal {text!r}; the cubes come in {list(COLOURS)}")
    if subject == obj:
        raise GoalError(f"impossible goal {text!r}: the {subject} cube cannot be {phrase} itself")
    if cubes is not None:
        missing = [c for c in (subject, obj) if c not in cubes]
        if missing:
            raise GoalError(f"goal {text!r} names the {' and '.join(missing)} cube, which is not in the scene "
                            f"(the scene has {', '.join(sorted(cubes))})")
    return RelationGoal(subject, PHRASES[phrase], obj)


def image_goal_reached(positions: dict[str, np.ndarray], target: dict[str, np.ndarray],
                       tolerance: float = SUCCESS_DISTANCE) -> bool:
    """Every cube within `tolerance` of its target position on the table plane and at the same level."""
    return all(np.hypot(*(positions[c][:2] - target[c][:2])) < tolerance
               and abs(positions[c][2] - target[c][2]) < 0.5 * CUBE for c in target)
