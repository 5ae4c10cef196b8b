"""Table 1, image generation, in miniature on Fashion-MNIST: a class-conditional diffusion generator refined by a
CLIP-style scorer, a noise-aware classifier (CLS) and classifier-free guidance (CLS-FREE).

Notebooks: 10_train_image_models.ipynb (trains the models, commits their checkpoints; retrain=False loads them),
11_image_generation.ipynb (the table), 60_ablations.ipynb (steps, MCMC steps, scorer subsets and cost: ablations.py).
Optimizer: pic/optim/guided_denoising.py (with pic/optim/mcmc.py for the MCMC row).

`load(profile, notebook)` (pic.tasks.image.loading) gives each notebook what it needs at a profile; checkpoints.py
names, saves and loads the four networks; training.py trains them on pic.train.fit; table.py holds the paper's
numbers, the summaries over seeds and the claims.
"""
from pic.tasks.image.loading import load

__all__ = ["load"]
