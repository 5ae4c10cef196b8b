"""Weight-space composition beside output-space consensus (issue 13): the experiments of Sung et al. 2023 ("An
Empirical Study of Multimodal Model Merging") and Ramé et al. 2023 ("Model Ratatouille") in miniature, with the
merge methods of pic.merging, and the same members composed in output space as PIC does.

Notebooks: 50_train_merging_models.ipynb (trains and pins every model), 51_model_merging.ipynb (the experiments).
There is no PIC table for this: the papers' numbers stand beside ours (table.py). The output-space comparison
composes the members through pic.energy.ComposedEnergy and picks each label with pic/optim/selection.py.

Reproduced, in miniature (one file per idea):
    multimodal.py    Sung et al.: V/L/VL experts sharing a seed pre-training of varying length (0 included),
                     merged by interpolation, modality arithmetic and RegMean, against the modality-specific
                     model and a modality-agnostic one from scratch; weight distances against merged accuracy
    text_tasks.py    multi-task merging of fine-tunings of pre-trained MiniLM's top layer on four text tasks,
                     every merge method against the individual fine-tunings and joint training
    domains.py       Ramé et al.: ERM, soups, fusing and ratatouille, leave one rotated-digits domain out, model
                     selection on in-domain validation only
    output_space.py  merged model vs logit ensemble vs PIC consensus on the same members, with their cost; linear
                     mode connectivity
    training.py      what 50 trains per model seed; experiments.py: what 51 runs; table.py: tables and claims;
    checkpoints.py   the checkpoint files (float16, sha256-pinned); settings.py: the profiles; figures.py: plots
"""
from pic.tasks.merging.settings import Settings, load, record

__all__ = ["Settings", "load", "record"]
