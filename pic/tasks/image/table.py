"""Table 1's rows: the per-seed metrics summarised over seeds (pic.stats: mean and sample sd, ddof = 1), the
paper's numbers beside ours, the claims checked, and the trained models as their checkpoints record them."""
from __future__ import annotations

import json

import numpy as np

from pic import stats
from pic.tasks.image import checkpoints
from pic.tasks.image.generation import ImageModels

# GLIDE on ImageNet 64x64 (the paper's Table 1): FID, IS, KID x 1000
PAPER = {"+ CLIP": (30.462, 25.017, 6.174), "+ CLS": (30.871, 22.077, 7.952), "+ CLS-FREE": (29.219, 25.926, 5.325),
         "+ CLIP + CLS + CLS-FREE": (29.184, 34.952, 3.766)}
COLUMNS = ["row", "fid", "fid_sd", "kid_x1000", "kid_x1000_sd", "kid_subset_sd", "class_kid_x1000", "is", "is_sd",
           "accuracy", "accuracy_sd"]
SINGLES = ["+ CLIP", "+ CLS", "+ CLS-FREE"]
MODEL_ROLES = {"generator": "UNet2DModel, class-conditional + null class", "cls": "noise-aware classifier (CLS)",
               "clip": "CLIP-style image tower (+ frozen MiniLM)",
               "eval_net": "evaluation net (clean images, not a scorer)"}


def summarize(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Mean and sd over seeds of each metric (pic.stats.mean_sd); KIDs in thousandths (as the paper prints them);
    the KID's own std over subsets, averaged over seeds, is `kid_subset_sd`."""
    out = {}
    for key, label, scale in [("fid", "fid", 1.0), ("kid", "kid_x1000", 1000.0), ("class_kid", "class_kid_x1000", 1000.0),
                              ("is", "is", 1.0), ("accuracy", "accuracy", 1.0)]:
        m = stats.mean_sd(scale * s[key] for s in per_seed)
        out[label], out[f"{label}_sd"] = m.mean, m.sd
    out["kid_subset_sd"] = 1000.0 * float(np.mean([s["kid_std"] for s in per_seed]))
    return out


def rows(per_seed: dict[str, list[dict[str, float]]]) -> dict[str, dict]:
    """{row name: its summary over seeds}, in the order given."""
    return {row: {"row": row, **summarize(v)} for row, v in per_seed.items()}


def printed(by: dict[str, dict]) -> list[dict]:
    """The columns Table 1 prints."""
    return [{k: r[k] for k in COLUMNS} for r in by.values()]


def beats(a: dict, b: dict, key: str, lower_is_better: bool) -> bool:
    """Whether row `a` beats row `b` on `key` beyond the seed spread (pic.stats.beats)."""
    return stats.beats(a[key], a[f"{key}_sd"], b[key], b[f"{key}_sd"], lower_is_better)


def beside_paper(by: dict[str, dict]) -> list[dict]:
    return [{"row": f"GLIDE {row[2:]}", "paper_FID": p[0], "paper_IS": p[1], "paper_KIDx1000": p[2],
             "ours_FID": by[row]["fid"], "ours_IS": by[row]["is"], "ours_KIDx1000": by[row]["kid_x1000"],
             "ours_accuracy": by[row]["accuracy"]} for row, p in PAPER.items()]


def claims(by: dict[str, dict], per_seed: dict[str, list[dict]]) -> list[dict]:
    """The paper's claim (all three scorers beat each one alone, beyond the seed std of both rows), each with the
    gap and the sd over seeds of the paired gap (the rows of a seed share their starting noise); and the generator's
    two bars."""
    all3 = "+ CLIP + CLS + CLS-FREE"
    out = []
    for key, raw, scale, label, lower in (("kid_x1000", "kid", 1000.0, "KID", True),
                                          ("accuracy", "accuracy", 1.0, "class accuracy", False)):
        for s in SINGLES:
            gaps = [scale * (a[raw] - b[raw]) for a, b in zip(per_seed[all3], per_seed[s], strict=True)]
            out.append({"claim": f"all three beat {s[2:]} on {label} beyond the seed std",
                        "holds": beats(by[all3], by[s], key, lower), "all_three": by[all3][key], "single": by[s][key],
                        "gap": float(np.mean(gaps)), "gap_sd": float(np.std(gaps, ddof=1)) if len(gaps) > 1 else 0.0})
    floor, ceiling = by["reference: train images (floor)"]["fid"], by["reference: per-pixel Gaussian (ceiling)"]["fid"]
    position = (by["generator alone"]["fid"] - floor) / (ceiling - floor)
    out += [{"claim": "generator bar: CLS-FREE samples have class accuracy >= 0.80",
             "holds": by["+ CLS-FREE"]["accuracy"] >= 0.80},
            {"claim": f"generator bar: unconditional FID at most 1/4 of the way from floor to ceiling "
                      f"(at {position:.2f})", "holds": position <= 0.25}]
    return out


def committed_models(models: ImageModels) -> list[dict]:
    """The committed models as their checkpoints record them (held-out test accuracies; CLS and CLIP-style also at
    t = 500)."""
    out = []
    for name, what in MODEL_ROLES.items():
        meta = checkpoints.metadata(name)
        by_t = json.loads(meta.get("test_accuracy_by_t") or meta.get("zero_shot_test_accuracy_by_t") or "{}")
        held_out = (f"{by_t['0']:.3f} (t=0) / {by_t['500']:.3f} (t=500)" if by_t else
                    f"{float(meta['test_accuracy']):.3f}" if "test_accuracy" in meta else "-")
        out.append({"model": what, "parameters": sum(p.numel() for p in getattr(models, name).parameters()),
                    "checkpoint_kB": round(checkpoints.pinned_bytes(name) / 1024),
                    "training_steps": meta["steps"], "held_out_test_accuracy": held_out})
    return out


def trained_models(models: ImageModels, steps: dict[str, int], gen_loss: float, held_out: dict,
                   written: dict[str, int]) -> list[dict]:
    """Notebook 10's table of the four models: sizes, training steps, held-out numbers, checkpoint sizes."""
    sizes = models.sizes()
    cls, clip = held_out["cls"], held_out["clip"]
    out = [
        {"model": "generator (UNet2DModel)", "parameters": sizes["generator"],
         "training_steps": steps["generator"], "held_out": "final eps MSE (training)", "value": gen_loss},
        {"model": "CLS (noise-aware classifier)", "parameters": sizes["cls"], "training_steps": steps["cls"],
         "held_out": "test accuracy, t=0 / 500", "value": f"{cls.get(0, float('nan')):.3f} / {cls.get(500, float('nan')):.3f}"},
        {"model": "CLIP-style tower (+ frozen MiniLM)", "parameters": sizes["clip"],
         "training_steps": steps["clip"], "held_out": "zero-shot test accuracy, t=0 / 500",
         "value": f"{clip.get(0, float('nan')):.3f} / {clip.get(500, float('nan')):.3f}"},
        {"model": "evaluation net", "parameters": sizes["eval_net"], "training_steps": steps["eval_net"],
         "held_out": "test accuracy", "value": held_out["eval_net"]},
    ]
    for row, name in zip(out, ["generator", "cls", "clip", "eval_net"]):
        if name in written:
            row["checkpoint_kB"] = round(written[name] / 1024)
    return out
