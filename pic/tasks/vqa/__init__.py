"""Table 2, video question answering, on easy-VQA still images: a language model proposes answer tokens and
CLIP-style scorers judge the statements they make about the image, refined token by token (ZeroCap-style).

Notebooks: 20_train_vqa_scorers.ipynb (trains the scorers and a supervised reference, or loads the committed ones),
21_visual_qa.ipynb (the table), 60_ablations.ipynb (iterations, scorer subsets, disagreement: ablations.py).
Optimizer: pic/optim/token_consensus.py (the answer-level rerank row uses pic/optim/selection.py).

Modules: settings (each profile's sizes: `training(profile, ...)` for 20, `load(profile, ...)` for 21), data
(easy-VQA questions, images, statements), scorers and reference (the models and their training on pic.train.fit),
checkpoints (the only place the checkpoint names appear; model seeds checked before any work), training (20's
runs), consensus (the generator and the rows of Table 2), experiment (21's runs), table (rows, the paper's numbers,
claims), figures; frame_scorer, feature_cache and activitynet adapt models and data (the paper profile).
"""
