"""Weight-space composition: merge several models' weights into one model.

PIC composes pre-trained models in output space: every model keeps its own weights, and at inference their
energies are summed and optimized towards a consensus output (pic.energy, pic.optim). Weight-space composition
instead combines the parameters once, before inference, into a single network of the same architecture; it only
works for models that share an architecture and, in practice, an initialisation (a base model θ_0 they were
fine-tuned from, or a shared seed pre-training), and it costs nothing at inference.

Every function works on plain state dicts ({key: Tensor}, as module.state_dict() gives), one idea per file:
    state.py             checks (keys, shapes, dtypes, NaN), key selection, task vectors τ_t = θ_t − θ_0, apply
    interpolation.py     linear / weighted average, α-interpolation, vl-merging's 2α/3, 2(1−α)/3, 1/3 rule
    task_arithmetic.py   θ_0 + λ Σ τ_t, and vl-merging's modality arithmetic from the seed
    ties.py              TIES: trim, elect sign, disjoint mean
    dare.py              DARE: drop with probability p, rescale by 1/(1 − p), then linear or TIES
    breadcrumbs.py       Model Breadcrumbs: keep the middle band of magnitudes per tensor
    emr.py               EMR: one unified task vector, a mask and a scale per task
    regmean.py           RegMean per linear layer from Gram matrices of its inputs (and their collection)
    soups.py             uniform and greedy soups (Model Ratatouille's averaging)
    distances.py         pre-merge checks: L2, cosine, sign conflicts, sign dissimilarities
    config.py            a merge described by a mergekit-shaped YAML config
Each file cites the paper it restates. Nothing here imports the rest of pic.
"""
from pic.merging.breadcrumbs import breadcrumbs
from pic.merging.config import MergeConfig, MergeConfigError, load_config, merge
from pic.merging.dare import dare, drop_and_rescale
from pic.merging.distances import (cosine_similarity, l2_distance, sign_conflict_rate, soft_sign_dissimilarity,
                                   truncated_soft_sign_dissimilarity)
from pic.merging.emr import EMRMerge, emr
from pic.merging.interpolation import interpolate, linear, vl_expert_weights, vl_interpolation
from pic.merging.regmean import gram_matrices, regmean
from pic.merging.soups import GreedySoup, greedy_soup, uniform_soup
from pic.merging.state import MergeError, apply, check_compatible, select_keys, task_vectors
from pic.merging.task_arithmetic import modality_arithmetic, task_arithmetic
from pic.merging.ties import ties

__all__ = ["EMRMerge", "GreedySoup", "MergeConfig", "MergeConfigError", "MergeError", "apply", "breadcrumbs",
           "check_compatible", "cosine_similarity", "dare", "drop_and_rescale", "emr", "gram_matrices",
           "greedy_soup", "interpolate", "l2_distance", "linear", "load_config", "merge", "modality_arithmetic",
           "regmean", "select_keys", "sign_conflict_rate", "soft_sign_dissimilarity", "task_arithmetic",
           "task_vectors", "ties", "truncated_soft_sign_dissimilarity", "uniform_soup", "vl_expert_weights",
           "vl_interpolation"]
