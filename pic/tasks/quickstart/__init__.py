"""Quickstart: consensus where the answer is known (no paper table; checks the optimizers themselves).

Notebook: 00_quickstart.ipynb. A Gaussian-mixture diffusion generator with an exact denoiser and quadratic
scorers, whose product of experts has a closed form (world.py). Optimizers: pic/optim/guided_denoising.py (+
pic/optim/mcmc.py for the MALA/ULA correction) and pic/optim/rerank_rounds.py.
"""
