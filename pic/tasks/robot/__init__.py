"""Table 4, robot manipulation, in pybullet: a planner with a world model proposes pick-and-place actions, scorers
judge the predicted outcome from several camera views, and the action of least summed energy is executed.

Notebooks: 40_train_relation_scorer.ipynb (a relation CLIP per camera), 41_robot_manipulation.ipynb (the table),
60_ablations.ipynb (planner rounds and view subsets: ablations.py).
Optimizer: pic/optim/selection.py (select_argmin of the summed per-camera energies picks the executed action; the
planner's re-proposal round around the kept candidates is pic/optim/rerank_rounds.py).

    settings.py          load(profile, ...): the sizes of 40 and 41 per profile
    sim.py               the pybullet tabletop, its cameras and the arm; scenes.py: episodes and candidate actions
    goals.py             the goal grammar and the ground truth of relations and image goals
    planner.py           the consensus step: world model, per-camera ViewScorer, plan (rerank_rounds + select_argmin),
                         run_episode (closed loop)
    episodes.py          every row of the table on the same episodes (run_table), view quality, costs
    table.py             the rows of Table 4, the paper's claim, success rates with Wilson intervals (pic.stats)
    relation_clip.py     the per-camera relation CLIP; training.py: its data and training (pic.train.fit)
    checkpoints.py       the relation CLIPs' checkpoint names, save and load
    scorers.py           the per-camera scorers per profile; feature_distance.py: the image-goal distance
"""
from pic.tasks.robot.settings import load

__all__ = ["load"]
