"""The simulated tabletop: the arm really picks and places, the world model predicts what the arm does, failed
grasps are reported (not raised), and rendering is deterministic."""
import numpy as np
import pytest
import torch

from pic.tasks.robot.scenes import make_episode, propose_actions, stack_actions
from pic.tasks.robot.sim import CUBE, NO_OP, TABLE_TOP, VIEWS, Placement, TabletopWorld


@pytest.fixture(scope="module")
def world():
    with TabletopWorld(size=64) as w:
        yield w


def test_the_world_model_predicts_where_the_arm_puts_a_cube(world):
    _, snap = make_episode(world, seed=3)
    for action in [propose_actions(np.random.default_rng(0), snap, 4)[-1], stack_actions(snap)[0]]:
        executed = world.execute(snap, action, record=True)
        predicted = world.predict(snap, action)
        assert executed.ok and executed.reason == "placed" and executed.sim_steps > 100
        assert len(executed.trajectory) > 5  # the arm moved through waypoints; the cube was not teleported
        for cube in snap.positions:
            assert np.linalg.norm(executed.snapshot.positions[cube] - predicted.positions[cube]) < 0.01, cube


def test_a_stacked_cube_rests_on_the_other(world):
    _, snap = make_episode(world, seed=5)
    action = stack_actions(snap)[0]
    top, bottom = world.execute(snap, action).snapshot.positions[action.cube], snap.positions[action.onto]
    assert abs(top[2] - (bottom[2] + CUBE)) < 0.005 and np.hypot(*(top[:2] - bottom[:2])) < 0.01


def test_a_failed_grasp_is_detected_and_reported_not_raised(world):
    _, snap = make_episode(world, seed=3)
    lower, upper = stack_actions(snap)[0].onto, stack_actions(snap)[0].cube
    stacked = world.execute(snap, Placement(upper, onto=lower)).snapshot
    # picking the lower cube of a stack: the tool lands on the upper cube, a cube above the one it wants
    result = world.execute(stacked, Placement(lower, 0.0, 0.0))
    assert not result.ok and result.reason == "missed grasp"
    far = world.execute(snap, Placement(upper, 0.9, 0.0))  # beyond the arm's reach
    assert not far.ok and far.reason == "unreachable"
    assert world.execute(snap, NO_OP).reason == "no-op"


def test_renders_are_deterministic_and_differ_between_cameras(world):
    _, snap = make_episode(world, seed=7)
    a = world.render_snapshot(snap)
    other = TabletopWorld(size=64)
    try:
        _, snap2 = make_episode(other, seed=7)
        b = other.render_snapshot(snap2)
    finally:
        other.close()
    assert a.shape == (len(VIEWS), 3, 64, 64) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert all(not torch.equal(a[i], a[j]) for i in range(3) for j in range(i + 1, 3))


def test_cubes_start_on_the_table_in_free_places(world):
    for seed in range(5):
        _, snap = make_episode(world, seed)
        pos = np.array(list(snap.positions.values()))
        assert np.allclose(pos[:, 2], TABLE_TOP + CUBE / 2, atol=2e-3)
        gaps = [np.hypot(*(p - q)[:2]) for i, p in enumerate(pos) for q in pos[i + 1:]]
        assert min(gaps) >= 0.07
