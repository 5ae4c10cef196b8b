"""Table 1, image generation, in miniature on Fashion-MNIST: a class-conditional diffusion generator refined by a
CLIP-style scorer, a noise-aware classifier (CLS) and classifier-free guidance (CLS-FREE).

Notebooks: 10_train_image_models.ipynb (trains the models, commits their checkpoints), 11_image_generation.ipynb
(the table). Optimizer: pic/optim/guided_denoising.py (with pic/optim/mcmc.py for the MCMC row).
"""
