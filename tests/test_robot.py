"""The closed loop of Table 4: per-camera scorers render and score each prediction once, a perfect scorer lets the
planner reach its goals, failed grasps are counted without stopping the run, and reruns give the same records."""
import numpy as np
import pytest
import torch

from pic import ComposedEnergy, FunctionScorer, Scorer
from pic.stats import wilson_interval
from pic.tasks.robot.episodes import run_table
from pic.tasks.robot.planner import PlannerSettings, ViewScorer, WorldModel, run_episode
from pic.tasks.robot.table import VIEW_WEIGHTS, Row, success_rows, table_rows
from pic.tasks.robot.scenes import make_episode, propose_actions
from pic.tasks.robot.sim import NO_OP, VIEWS, ExecutionResult, TabletopWorld

SMALL = PlannerSettings(n_random=6, rounds=2, keep=2, n_refine=4, max_steps=2)


@pytest.fixture(scope="module")
def world():
    with TabletopWorld(size=64) as w:
        yield w


class CountingScorer(Scorer):
    """Mean brightness as an energy; records the batch sizes it was asked for."""

    differentiable = False

    def __init__(self):
        self.name, self.batches = "count", []

    def energy(self, images, **context):
        self.batches.append(images.shape[0])
        return images.mean(dim=(1, 2, 3))


def test_a_view_scorer_renders_and_scores_each_prediction_once_in_one_batch(world):
    _, snap = make_episode(world, 10001)
    model = WorldModel(world)
    state = model.start(snap)
    preds = model.predict(state, propose_actions(np.random.default_rng(0), snap, 5))
    inner = CountingScorer()
    scorer = ViewScorer("top", inner, model.costs)
    first = scorer.energy(preds)
    again = scorer.energy(preds + preds[:2])
    assert inner.batches == [len(preds)]  # one batch, and nothing scored twice
    assert torch.equal(again[:len(preds)], first) and model.costs.renders == len(preds)


def oracle_text(goal):
    return ComposedEnergy([FunctionScorer(lambda preds, **c: torch.tensor(
        [0.0 if goal.holds(p.snapshot.positions) else 1.0 for p in preds]), "oracle", differentiable=False)])


def test_with_a_perfect_scorer_the_planner_reaches_most_text_goals(world):
    model, wins = WorldModel(world), 0
    for seed in range(10100, 10104):  # development episodes, not the notebook's
        world.release_states()
        episode, snap = make_episode(world, seed)
        result = run_episode(model, seed, model.start(snap), episode.text_goal.holds, oracle_text(episode.text_goal),
                             PlannerSettings(n_random=24, rounds=1, max_steps=2))
        wins += result.success
        assert result.failed_grasps == 0 and result.steps <= SMALL.max_steps
    assert wins >= 3


def test_a_failed_grasp_is_counted_and_the_episode_goes_on(world, monkeypatch):
    world.release_states()
    episode, snap = make_episode(world, 10200)
    real, calls = world.execute, []

    def clumsy(snapshot, action, record=False):
        calls.append(action)
        if len(calls) == 1:  # the first grasp slips: nothing moves
            return ExecutionResult(False, "missed grasp", snapshot)
        return real(snapshot, action, record)

    monkeypatch.setattr(world, "execute", clumsy)
    model = WorldModel(world)
    restless = ComposedEnergy([FunctionScorer(lambda preds, **c: torch.tensor(  # never "leave it"
        [1.0 if p.action == NO_OP else 0.0 for p in preds]), "restless", differentiable=False)])
    result = run_episode(model, 10200, model.start(snap), episode.text_goal.holds, restless, SMALL)
    assert result.failed_grasps == 1 and result.steps == 2 and len(calls) == 2


def test_wilson_intervals_match_known_values():
    assert wilson_interval(0, 50) == pytest.approx((0.0, 0.0713), abs=1e-4)
    assert wilson_interval(25, 50) == pytest.approx((0.3664, 0.6336), abs=1e-4)
    assert wilson_interval(50, 50) == pytest.approx((0.9287, 1.0), abs=1e-4)


def test_the_table_has_random_single_pair_all_view_and_weighted_rows():
    names = [r.name for r in table_rows("text")]
    assert names[0] == "random action" and names[1:4] == list(VIEWS) and names[-2] == " + ".join(VIEWS)
    assert names[-1] == " + ".join(f"{VIEW_WEIGHTS['text'][v]:g}·{v}" for v in VIEWS)
    assert len(table_rows("image", pairs=False)) == 6
    assert len(table_rows("image", pairs=False, validation_weights=False)) == 5


@pytest.mark.parametrize("weights", [(1.0, 2.0), (1.0, -1.0, 1.0), (1.0, float("nan"), 1.0)])
def test_a_row_refuses_weights_that_do_not_fit_its_views(weights):
    with pytest.raises(ValueError, match="one finite weight >= 0 per view"):
        Row("text", VIEWS, weights)


def test_a_weighted_row_changes_the_summed_energy_only_by_its_weights():
    class Constant(Scorer):
        def __init__(self, name, value):
            self.name, self.value = name, value

        def energy(self, x, **context):
            return torch.full((len(x),), self.value)

    energy = ComposedEnergy([Constant(v, float(i + 1)) for i, v in enumerate(VIEWS)])
    weights = dict(zip(VIEWS, (2.0, 0.5, 4.0)))
    total = energy.reweighted(weights)([0, 1]).total
    assert total.tolist() == [sum(w * (i + 1) for i, w in enumerate(weights.values()))] * 2
    assert energy([0]).total.item() == 6.0  # the original keeps its weights
    with pytest.raises(Exception, match="unknown scorer"):
        energy.reweighted({"back": 1.0})


def test_two_runs_give_identical_records():
    from pic.tasks.robot.scorers import image_scorers, text_scorers

    outs = []
    for _ in range(2):
        w = TabletopWorld(size=64)
        try:
            text = text_scorers("smoke", seed=0)
            rows = [Row("text", ()), Row("text", ("top",)), Row("image", VIEWS)]
            records, _, _ = run_table(w, [3], rows, lambda v: text[v], image_scorers("smoke"),
                                   PlannerSettings(n_random=4, rounds=2, keep=2, n_refine=3, max_steps=2))
        finally:
            w.close()
        outs.append([(r.row, r.success, r.actions, {c: p.tolist() for c, p in r.final.positions.items()})
                     for r in records])
    assert outs[0] == outs[1]
    table = success_rows(records, rows)
    assert [r["episodes"] for r in table] == [1, 1, 1]
