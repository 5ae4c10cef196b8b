"""Goals are parsed by a small grammar that refuses bad goals before an episode starts, and success is decided from
the simulator's poses by geometry alone."""
import numpy as np
import pytest

from pic.tasks.robot.goals import (RELATIONS, GoalError, RelationGoal, image_goal_reached, parse_goal,
                                   relation_holds)

SCENE = ("red", "green", "blue")


@pytest.mark.parametrize("text, expected", [
    ("put the red cube to the left of the blue cube", RelationGoal("red", "left", "blue")),
    ("Put the green cube right of the red cube.", RelationGoal("green", "right", "red")),
    ("place the blue cube in front of the green cube", RelationGoal("blue", "front", "green")),
    ("move the red block behind the green block", RelationGoal("red", "behind", "green")),
    ("stack the green cube on top of the blue cube", RelationGoal("green", "on", "blue")),
    ("put the green cube on the yellow cube", RelationGoal("green", "on", "yellow")),
])
def test_the_grammar_reads_five_relation_types(text, expected):
    assert parse_goal(text) == expected


def test_the_canonical_caption_round_trips_through_the_grammar():
    for relation in RELATIONS:
        goal = RelationGoal("red", relation, "blue")
        assert parse_goal(goal.instruction) == goal
        assert goal.caption.startswith("the red cube is ") and goal.caption.endswith(" the blue cube")


@pytest.mark.parametrize("text, message", [
    ("put the red cube on itself", "impossible goal .* cannot be on itself"),
    ("put the red cube to the left of the red cube", "impossible goal .* the red cube cannot be to the left of itself"),
    ("put the yellow cube on the red cube", "names the yellow cube, which is not in the scene .*blue, green, red"),
    ("put the purple cube on the red cube", "unknown colour 'purple'"),
    ("put the red cube under the blue cube", "unknown relation 'under'"),
    ("make it nice", "cannot parse goal 'make it nice': expected 'put the <colour> cube <relation> the <colour> cube'"),
    ("", "empty goal"),
])
def test_bad_goals_are_refused_with_a_message_naming_the_culprit(text, message):
    with pytest.raises(GoalError, match=message):
        parse_goal(text, cubes=SCENE)


def test_planar_relations_mean_next_to_side_by_side():
    b = np.array([0.0, 0.0, 0.65])
    assert relation_holds("left", b + [0.0, -0.08, 0], b) and relation_holds("right", b, b + [0.0, -0.08, 0])
    assert relation_holds("front", b + [0.08, 0.0, 0], b) and relation_holds("behind", b + [-0.08, 0.03, 0], b)
    assert not relation_holds("left", b + [0.0, -0.04, 0], b)  # closer than a gap
    assert not relation_holds("left", b + [0.0, -0.20, 0], b)  # too far to be next to it
    assert not relation_holds("left", b + [0.06, -0.08, 0], b)  # diagonal: not side by side
    many = relation_holds("left", np.array([[0.0, -0.08, 0.65], [0.0, 0.08, 0.65]]), b)
    assert many.tolist() == [True, False]  # arrays of centres give arrays of answers


def test_on_top_of_means_resting_on_the_other_cube():
    b = np.array([0.0, 0.0, 0.65])
    assert relation_holds("on", b + [0.01, 0.0, 0.05], b) and not relation_holds("on", b, b + [0.01, 0.0, 0.05])
    assert not relation_holds("on", b + [0.05, 0.0, 0.05], b)  # beside, one level up: not resting on it


def test_an_image_goal_is_reached_only_when_every_cube_is_near_its_target():
    target = {"red": np.array([0.0, 0.0, 0.65]), "blue": np.array([0.1, 0.1, 0.65])}
    near = {"red": np.array([0.01, 0.01, 0.65]), "blue": np.array([0.1, 0.11, 0.65])}
    assert image_goal_reached(near, target)
    assert not image_goal_reached({**near, "blue": np.array([0.1, 0.15, 0.65])}, target)
    assert not image_goal_reached({**near, "red": np.array([0.0, 0.0, 0.70])}, target)  # stacked instead
