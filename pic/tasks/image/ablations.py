"""Table 1's ablations for 60_ablations: quality against the number of guided-denoising steps and of MCMC steps per
noise level, every subset of the scorers, and what each costs (wall time and model calls per sample); and, on the
validation split, a grid of CLIP's and CLS's weights in the all-scorer row (a heatmap), whose best cell 11 uses.

Reuses 11's sampler, committed models (local) and guidance weights; every run of a seed starts from the same noise
(seed + 1000 i, as 11), so the curves compare like with like. Quality is 11's: class accuracy and KID on the
evaluation net against test images.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from pic.energy import CountingScorer
from pic.report import profile_settings
from pic.stats import beats, fit_line, summarize
from pic.tasks.image import generation as ig
from pic.tasks.image.data import load_split
from pic.tasks.image.loading import Experiment, load as load_experiment

PROFILES = {
    # smoke: 11's tiny random networks; local: the committed ones, 50 samples per seed (11 uses 170)
    "smoke": dict(n_per_class=2, n_seeds=2, num_steps=2, steps=(1, 2), mcmc_steps=(0, 1), reference_images=500,
                  weight_scales=(1.0,)),
    "local": dict(n_per_class=5, n_seeds=3, num_steps=20, steps=(5, 10, 20, 40), mcmc_steps=(0, 1, 2),
                  reference_images=10000, weight_scales=(0.5, 1.0, 2.0)),
}
QUALITY = ("accuracy", "kid")
# the weight sweep runs on the validation split: other starting noise than the test runs (seed + VALIDATION_SEEDS +
# 1000 i) and KID against validation images; CLS-FREE keeps its weight, CLIP's and CLS's are scaled
VALIDATION_SEEDS = 500
SWEPT = ("clip", "cls")
NAMES = [ig.LABELS[n] for n in ig.SCORERS]  # as the tables name the scorers


@dataclass
class Ablation:
    settings: dict
    experiment: Experiment  # 11's models, sampler and guidance weights
    reference: ig.Reference  # test images
    validation: ig.Reference  # validation images, for the weight sweep
    runs: dict = field(default_factory=dict)  # configuration -> its rows, so a configuration shared runs once

    @property
    def all_weights(self) -> dict[str, float]:
        """The all-scorer row's weights before the scales chosen on validation (the weight grid's origin; 11 uses
        the grid's best cell, Experiment.row_weights)."""
        e = self.experiment
        return ig.row_weights(ig.SCORERS, e.weights, e.combination_scale)


def load(profile: str) -> Ablation:
    """The profile's sizes, 11's experiment at that profile, and the test images quality is measured against."""
    settings = profile_settings(profile, PROFILES)
    experiment = load_experiment(profile, "11_image_generation", n_per_class=settings["n_per_class"],
                                 n_seeds=settings["n_seeds"], num_steps=settings["num_steps"])
    keep = slice(None, settings["reference_images"])
    references = [ig.Reference.of(experiment.eval_net, x[keep], y[keep])
                  for x, y in (load_split("test"), load_split("validation"))]
    return Ablation(settings, experiment, *references)


def scorer_subsets() -> list[tuple[str, ...]]:
    """Every subset of Table 1's scorers, the empty one (the generator alone) first, each exactly once."""
    return [c for r in range(len(ig.SCORERS) + 1) for c in itertools.combinations(ig.SCORERS, r)]


def run(ab: Ablation, scorers: tuple[str, ...], seed: int, num_steps: int | None = None, mcmc_steps: int = 0,
        weights: dict[str, float] | None = None, validation: bool = False) -> list[dict]:
    """One configuration on every seed (one batch): per seed the quality, and per sample the wall time and the
    model calls (UNet passes of the generator + scorer evaluations, each on the whole batch). weights: None for
    11's weights of the row; validation: KID against validation images (the seeds are the caller's)."""
    e, s = ab.experiment, ab.settings
    weights = weights or e.row_weights(scorers)
    # the steps, MCMC and subset ablations share one configuration (all scorers, the profile's steps, no MCMC)
    key = (tuple(scorers), seed, num_steps or s["num_steps"], mcmc_steps, tuple(sorted(weights.items())), validation)
    if key not in ab.runs:
        ab.runs[key] = _run(ab, scorers, seed, num_steps, mcmc_steps, weights, validation)
    return [dict(r) for r in ab.runs[key]]


def _run(ab: Ablation, scorers: tuple[str, ...], seed: int, num_steps: int | None, mcmc_steps: int,
         weights: dict[str, float], validation: bool) -> list[dict]:
    e, s = ab.experiment, ab.settings
    counted = {n: CountingScorer(sc) for n, sc in e.sampler.scorers.items()}
    sampler = ig.ConsensusSampler(e.sampler.denoiser, e.sampler.scheduler, counted, e.sampler.prompt_of)
    labels, noise = e.seed_batch(seed)  # 11's starting noise of every seed, batched
    mcmc = sampler.langevin(mcmc_steps, e.mcmc_step_scale) if mcmc_steps else None
    unet_before = e.sampler.denoiser.unet_calls
    start = time.perf_counter()
    out = sampler.sample(weights, labels, noise, num_steps=num_steps or s["num_steps"], mcmc=mcmc, seed=seed)
    seconds = time.perf_counter() - start
    unet = e.sampler.denoiser.unet_calls - unet_before
    scorer_calls = sum(c.calls for c in counted.values())
    generator_calls = unet - counted["cls_free"].calls  # CLS-FREE's own call is its conditional UNet pass
    reference = ab.validation if validation else ab.reference
    quality = ig.per_seed_quality(e.eval_net, out.samples, e.labels, s["n_seeds"], reference, seed)
    base = {"scorers": " + ".join(ig.LABELS[n] for n in scorers) or "generator alone", "n_scorers": len(scorers),
            "steps": num_steps or s["num_steps"], "mcmc_steps": mcmc_steps,
            "seconds_per_sample": seconds / len(labels), "model_calls": generator_calls + scorer_calls,
            "generator_calls": generator_calls, "scorer_calls": scorer_calls}
    base["expected_calls"] = expected_calls(base)
    return [{**base, "seed": seed + 1000 * i, **{k: q[k] for k in QUALITY}} for i, q in enumerate(quality)]


def steps_rows(ab: Ablation, seed: int) -> list[dict]:
    """Guided denoising with all scorers at each number of steps of the profile."""
    return [r for n in ab.settings["steps"] for r in run(ab, ig.SCORERS, seed, num_steps=n)]


def mcmc_rows(ab: Ablation, seed: int) -> list[dict]:
    """All scorers with 0, 1, ... ULA steps per noise level (11's MCMC row is 1), at the profile's steps."""
    return [r for m in ab.settings["mcmc_steps"] for r in run(ab, ig.SCORERS, seed, mcmc_steps=m)]


def subset_rows(ab: Ablation, seed: int) -> list[dict]:
    """Every subset of the scorers (the generator alone included), at the profile's steps."""
    return [r for subset in scorer_subsets() for r in run(ab, subset, seed)]


def weight_rows(ab: Ablation, seed: int) -> list[dict]:
    """On the validation split: all scorers with CLIP's and CLS's weights each scaled by every pair of the
    profile's factors (CLS-FREE's fixed), and each scorer alone at its own weight, for the heatmap."""
    seed = seed + VALIDATION_SEEDS
    rows = []
    for a, b in itertools.product(ab.settings["weight_scales"], repeat=2):
        weights = dict(ab.all_weights)
        weights[SWEPT[0]] *= a
        weights[SWEPT[1]] *= b
        rows += [{f"{SWEPT[0]}_scale": a, f"{SWEPT[1]}_scale": b, **r}
                 for r in run(ab, ig.SCORERS, seed, weights=weights, validation=True)]
    for n in ig.SCORERS:
        rows += run(ab, (n,), seed, validation=True)
    return rows


def weight_summary(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the grid: mean and sd over seeds per pair of scales; each single scorer's summary) of weight_rows."""
    grid = [r for r in rows if f"{SWEPT[0]}_scale" in r]
    return (summarize(grid, [f"{SWEPT[0]}_scale", f"{SWEPT[1]}_scale"], QUALITY),
            summarize([r for r in rows if f"{SWEPT[0]}_scale" not in r], ["scorers", "n_scorers"], QUALITY))


def chosen_scales(grid: list[dict], key: str = "accuracy") -> dict[str, float]:
    """The scales of the grid's best cell on validation by `key` (accuracy: highest; kid: lowest)."""
    best = (min if key == "kid" else max)(grid, key=lambda r: r[key])
    return {n: best[f"{n}_scale"] for n in SWEPT}


def weight_claims(grid: list[dict], singles: list[dict], used: dict[str, float]) -> list[dict]:
    """Whether, on validation, some weighting of the grid beats the best single scorer beyond the spread, on
    accuracy (higher is better) and on KID (lower is better); and whether 11's all-scorer row uses (`used`: its
    all_scorer_scales) the cell chosen by accuracy."""
    chosen = chosen_scales(grid)
    out = [{"claim": f"11's all-scorer rows use the scales the grid picks on validation by accuracy {chosen}",
            "holds": {n: used.get(n, 1.0) for n in SWEPT} == chosen}]
    for key, lower in (("accuracy", False), ("kid", True)):
        pick = min if lower else max
        best = pick(grid, key=lambda r: r[key])
        single = pick(singles, key=lambda r: r[key])
        scales = {k: best[k] for k in best if k.endswith("_scale")}  # the grid point, by its column names
        out.append({"claim": f"validation {key}: the best weighting of the grid {scales} beats the best single scorer "
                             f"({single['scorers']}) beyond the spread",
                    "holds": beats(best[key], best[key + "_sd"], single[key], single[key + "_sd"], lower),
                    "grid_best": best[key], "single_best": single[key]})
    return out


def summary(rows: list[dict], by: str | list[str]) -> list[dict]:
    """Mean and sd over seeds of the quality, per configuration, with its model calls per sample (the same on every
    seed; wall times are in cost_fits, kept out of the tables nbval compares)."""
    calls = ("model_calls", "expected_calls")
    out = summarize(rows, [by] if isinstance(by, str) else by, QUALITY + calls)
    return [{k: v for k, v in r.items() if k not in [c + "_sd" for c in calls]} for r in out]


def expected_calls(row: dict) -> int:
    """T * (G + sum_n S_n) model calls per sample without MCMC: one generator pass and one call per scorer per step;
    each ULA step per noise level (all but the first) calls the generator and every scorer once more."""
    per_level = 1 + row["n_scorers"]
    return row["steps"] * per_level + (row["steps"] - 1) * row["mcmc_steps"] * per_level


def cost_fits(rows: list[dict], against: str) -> list[dict]:
    """Lines through wall time and model calls per sample against `against` (one point per configuration)."""
    configs = {r[against]: r for r in rows}  # the per-seed rows of a configuration share its costs
    x = list(configs)
    out = []
    for measure in ("seconds_per_sample", "model_calls"):
        f = fit_line(x, [configs[v][measure] for v in x])
        out.append({"against": against, "measure": measure, "slope": f.slope, "intercept": f.intercept, "r2": f.r2,
                    "points": f.n})
    return out


def cost_claims(fits: list[dict]) -> list[dict]:
    """The wall-time claim, apart from claims(): it depends on what else the machine runs, so the notebook prints
    it in a cell nbval does not compare."""
    time_fit = next(f for f in fits if f["against"] == "steps" and f["measure"] == "seconds_per_sample")
    return [{"claim": "wall time per sample is linear in the number of steps (R^2 >= 0.95)",
             "holds": time_fit["r2"] >= 0.95, "r2": time_fit["r2"]}]


def claims(steps: list[dict], mcmc: list[dict], subsets: list[dict]) -> list[dict]:
    """What the Table 1 ablations check; `steps`, `mcmc`, `subsets` are summaries (mean, sd over seeds)."""
    few, most = steps[0], steps[-1]
    full = next(r for r in subsets if r["n_scorers"] == len(ig.SCORERS))
    singles = [r for r in subsets if r["n_scorers"] == 1]
    best_single = max(singles, key=lambda r: r["accuracy"])
    all_rows = steps + mcmc + subsets
    exact = all(r["model_calls"] == r["expected_calls"] for r in all_rows)
    return [
        {"claim": f"all scorers: class accuracy at {most['steps']} steps beats {few['steps']} steps beyond the spread",
         "holds": beats(most["accuracy"], most["accuracy_sd"], few["accuracy"], few["accuracy_sd"]),
         "fewest": few["accuracy"], "most": most["accuracy"]},
        {"claim": f"all three scorers beat the best single one ({best_single['scorers']}) on class accuracy beyond "
                  "the spread", "holds": beats(full["accuracy"], full["accuracy_sd"], best_single["accuracy"],
                                               best_single["accuracy_sd"]),
         "all": full["accuracy"], "best_single": best_single["accuracy"]},
        {"claim": "model calls per sample are T * (G + sum S_n) (+ the MCMC steps') for every configuration",
         "holds": exact, "configurations": len(all_rows)},
    ]
