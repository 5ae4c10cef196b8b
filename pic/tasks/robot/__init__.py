"""Table 4, robot manipulation, in pybullet: a planner with a world model proposes pick-and-place actions, scorers
judge the predicted outcome from several camera views, and the action of least summed energy is executed.

Notebooks: 40_train_relation_scorer.ipynb (a relation CLIP per camera), 41_robot_manipulation.ipynb (the table).
Optimizer: pic/optim/selection.py (the planner's re-proposal round uses pic/optim/rerank_rounds.py).
"""
