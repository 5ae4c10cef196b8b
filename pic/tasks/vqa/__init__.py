"""Table 2, video question answering, on easy-VQA still images: a language model proposes answer tokens and
CLIP-style scorers judge the statements they make about the image, refined token by token (ZeroCap-style).

Notebooks: 20_train_vqa_scorers.ipynb (trains the scorers and a supervised reference), 21_visual_qa.ipynb (the
table). Optimizer: pic/optim/token_consensus.py (the answer-level rerank row uses pic/optim/selection.py).
"""
