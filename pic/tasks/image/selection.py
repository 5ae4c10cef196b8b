"""The guidance weights of Table 1, chosen on the validation split (never the test split) by notebook 10: each
scorer's weight swept alone, then one scale for the combinations (applied to every scorer's own weight when
several are summed), then the MCMC step size. The criterion is the class-conditional KID on the evaluation net's
features (low only when samples are both of the asked class and realistic); a weight that makes the samples
diverge is never chosen."""
from __future__ import annotations

import torch

from pic.optim import GuidanceDivergedError
from pic.tasks.image import generation as ig

SWEEP = {"clip": [1.0, 3.0, 10.0], "cls": [1.0, 3.0, 10.0], "cls_free": [1.0, 1.5, 2.0, 3.0]}
COMBINATION_SCALES = [0.5, 0.75, 1.0]
MCMC_SCALES = [0.05, 0.1, 0.2]
METRICS = ("fid", "kid", "kid_std", "class_kid", "is", "accuracy")


def choose_guidance(models: ig.ImageModels, val_x: torch.Tensor, val_y: torch.Tensor, *, per_class: int,
                    num_steps: int, seed: int = 0) -> tuple[list[dict], dict[str, float]]:
    """(one row per setting tried: sweep, value and its metrics, KIDs in thousandths; the chosen values)."""
    sampler = ig.local_sampler(models)
    val_ref = ig.Reference.of(models.eval_net, val_x, val_y)
    labels = ig.labels_for(None, per_class)
    noise = ig.initial_noise(len(labels), seed + 500)

    def criterion(weights, mcmc=None):
        try:
            out = sampler.sample(weights, labels, noise, num_steps=num_steps, mcmc=mcmc, seed=seed + 500)
        except GuidanceDivergedError:  # a weight too large for this generator: never chosen
            return {k: float("inf") for k in METRICS}
        return ig.quality(models.eval_net, out.samples, labels, val_ref, kid_subsets=20, seed=seed)

    def best(sweep):
        return min((r for r in rows if r["sweep"] == sweep), key=lambda r: r["class_kid"])["value"]

    rows, chosen = [], {}
    for name, grid in SWEEP.items():
        rows += [{"sweep": name, "value": w, **criterion({name: w})} for w in grid]
        chosen[name] = best(name)
    rows += [{"sweep": "combination_scale", "value": s, **criterion(ig.row_weights(ig.SCORERS, chosen, s))}
             for s in COMBINATION_SCALES]
    chosen["combination_scale"] = best("combination_scale")
    all_three = ig.row_weights(ig.SCORERS, chosen, chosen["combination_scale"])
    rows += [{"sweep": "mcmc_step_scale", "value": c, **criterion(all_three, mcmc=sampler.langevin(1, c))}
             for c in MCMC_SCALES]
    chosen["mcmc_step_scale"] = best("mcmc_step_scale")
    for r in rows:
        r["kid_x1000"], r["class_kid_x1000"] = 1000 * r.pop("kid"), 1000 * r.pop("class_kid")
        r.pop("kid_std")
    return rows, chosen
