"""The papers' numbers, the tables 51 prints (mean ± sd over model seeds, pic.stats) beside them, and the claims.

A claim "A > B" holds only when A's mean beats B's by more than the sum of their sds (pic.stats.beats); each claim
row also says whether the direction alone holds, so a reader sees both.
"""
from __future__ import annotations

from pic.stats import SD_NOTE, beats, mean_sd, summarize

# Sung et al. 2023 (arXiv 2304.14933): gains of their merging recipe over naive merging, after fine-tuning, in points
SUNG_GAINS = {"VQA": 3, "COCO retrieval": 7, "NLVR2": 25, "Flickr30k": 14, "ADE20k": 3}
# Ramé et al. 2023, DomainBed averages over PACS, VLCS, OfficeHome, TerraIncognita, DomainNet (out-of-domain, %)
DOMAINBED = {"ERM": 65.6, "uniform soup": 67.6, "greedy soup": 67.5, "fusing": 65.8, "ratatouille (uniform)": 68.1,
             "ratatouille (greedy)": 67.9}
# what each multi-task merging paper reports about its method (their settings: 8 ViT or 7-11 NLP tasks, not ours)
TEXT_PAPERS = {
    "individual": "the reference (normalised accuracy 1)",
    "joint training": "multi-task learning: the usual upper bound of merging",
    "weight averaging": "the baseline every paper beats",
    "task arithmetic": "Ilharco et al. 2023: beats weight averaging (λ chosen on validation)",
    "TIES": "Yadav et al. 2023: beats task arithmetic (trim 20%, elect, disjoint mean)",
    "DARE (linear)": "Yu et al. 2024: drop most of τ, rescale, little loss",
    "DARE (TIES)": "Yu et al. 2024: DARE before TIES's election",
    "Breadcrumbs": "Davari & Belilovsky 2023: beats TIES with both tails masked",
    "EMR": "Huang et al. 2024: closest to individual (a mask and scale per task)",
    "RegMean": "Jin et al. 2023: beats task arithmetic (needs each task's Gram matrices)",
}


def _pm(row: dict, key: str, scale: float = 100.0, digits: int = 1) -> str:
    return f"{scale * row[key]:.{digits}f} ± {scale * row[key + '_sd']:.{digits}f}"


# ------------------------------------------------------------------------------------------------- 1 multimodal

def multimodal_table(rows: list[dict]) -> list[dict]:
    """Per (model, seed length): zero-shot and fine-tuned test accuracy (%), mean ± sd over model seeds."""
    out = []
    for r in summarize(rows, ["model", "seed_length"], ["zero_shot", "finetuned"]):
        out.append({"model": r["model"], "seed pre-training": r["seed_length"], "seeds": r["seeds"],
                    "zero-shot %": _pm(r, "zero_shot"), "after fine-tune %": _pm(r, "finetuned")})
    return out


def _merged(rows, method, length, key):
    values = [r[key] for r in rows if r["model"] == method and r["seed_length"] == length]
    return mean_sd(values)


def multimodal_claims(rows: list[dict], correlations: list[dict]) -> list[dict]:
    """Merge > naive merge (the best method after the longest seed pre-training against interpolation without
    seed pre-training, after fine-tuning as the paper reports); seed pre-training helps interpolation; each
    metric's ρ with the merged accuracy has the sign of a predictor and an interval that excludes 0."""
    lengths = sorted({r["seed_length"] for r in rows})
    methods = ("interpolation", "modality_arithmetic", "regmean")
    naive = _merged(rows, "interpolation", lengths[0], "finetuned")
    best_method = max(methods, key=lambda m: _merged(rows, m, lengths[-1], "finetuned").mean)
    best = _merged(rows, best_method, lengths[-1], "finetuned")
    out = [{"claim": f"merge ({best_method}, seed pre-training {lengths[-1]}) > naive merge (interpolation, no seed "
                     "pre-training), after fine-tuning",
            "holds": beats(best.mean, best.sd, naive.mean, naive.sd), "direction": best.mean > naive.mean,
            "merge %": 100 * best.mean, "naive %": 100 * naive.mean, "gain points": 100 * (best.mean - naive.mean),
            "paper gain (VQA) points": SUNG_GAINS["VQA"]}]
    for key in ("zero_shot", "finetuned"):
        a, b = _merged(rows, "interpolation", lengths[-1], key), _merged(rows, "interpolation", lengths[0], key)
        out.append({"claim": f"longer seed pre-training merges better (interpolation, {key.replace('_', '-')})",
                    "holds": beats(a.mean, a.sd, b.mean, b.sd), "direction": a.mean > b.mean,
                    f"S={lengths[-1]} %": 100 * a.mean, f"S={lengths[0]} %": 100 * b.mean})
    for c in correlations:
        similarity = c["metric"] == "cosine"  # a similarity predicts a better merge with ρ > 0, a distance with ρ < 0
        rho, lo, hi = c["rho_zero_shot"], c["low_zero_shot"], c["high_zero_shot"]
        sign_ok = rho > 0 if similarity else rho < 0
        out.append({"claim": f"{c['metric']}{' (ours)' if c['ours'] else ''} predicts the merged accuracy "
                             f"(Spearman ρ {'> 0' if similarity else '< 0'}, 95% interval excludes 0)",
                    "holds": sign_ok and (lo > 0 if similarity else hi < 0), "direction": sign_ok,
                    "rho": rho, "low": lo, "high": hi})
    return out


def correlation_table(correlations: list[dict]) -> list[dict]:
    return [{"metric": c["metric"] + (" (ours)" if c["ours"] else ""), "configurations": c["configs"],
             "ρ zero-shot [95% CI]": f"{c['rho_zero_shot']:.2f} [{c['low_zero_shot']:.2f}, {c['high_zero_shot']:.2f}]",
             "ρ fine-tuned [95% CI]": f"{c['rho_finetuned']:.2f} [{c['low_finetuned']:.2f}, {c['high_finetuned']:.2f}]"}
            for c in correlations]


# ------------------------------------------------------------------------------------------------- 2 text

def text_table(rows: list[dict]) -> list[dict]:
    """Per method: mean accuracy over tasks and normalised accuracy (%), mean ± sd over model seeds, and each task's
    accuracy; beside what the method's paper reports."""
    per_seed = {}
    for r in rows:
        per_seed.setdefault((r["method"], r["seed"]), []).append(r)
    flat = [{"method": m, "seed": s, "accuracy": sum(x["accuracy"] for x in rs) / len(rs),
             "normalized": sum(x["normalized"] for x in rs) / len(rs), **{x["task"]: x["accuracy"] for x in rs}}
            for (m, s), rs in per_seed.items()]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    out = []
    for r in summarize(flat, "method", ["accuracy", "normalized"] + tasks):
        out.append({"method": r["method"], "seeds": r["seeds"], "avg accuracy %": _pm(r, "accuracy"),
                    "normalised %": _pm(r, "normalized"), **{t: f"{100 * r[t]:.1f}" for t in tasks},
                    "paper": TEXT_PAPERS.get(r["method"], "")})
    return out


def text_claims(rows: list[dict]) -> list[dict]:
    """Merges beat weight averaging (the naive merge), and joint training beats every merge, beyond the spread."""
    norm = {m: mean_sd(_per_seed_mean(rows, m)) for m in dict.fromkeys(r["method"] for r in rows)}
    merges = [m for m in norm if m not in ("individual", "joint training", "weight averaging")]
    best = max(merges, key=lambda m: norm[m].mean)
    avg, joint = norm["weight averaging"], norm["joint training"]
    return [{"claim": f"best merge ({best}) > naive merge (weight averaging), normalised accuracy",
             "holds": beats(norm[best].mean, norm[best].sd, avg.mean, avg.sd), "direction": norm[best].mean > avg.mean,
             "merge %": 100 * norm[best].mean, "naive %": 100 * avg.mean},
            {"claim": f"TIES > task arithmetic, normalised accuracy",
             "holds": beats(norm["TIES"].mean, norm["TIES"].sd, norm["task arithmetic"].mean, norm["task arithmetic"].sd),
             "direction": norm["TIES"].mean > norm["task arithmetic"].mean, "TIES %": 100 * norm["TIES"].mean,
             "task arithmetic %": 100 * norm["task arithmetic"].mean},
            {"claim": f"joint training > best merge ({best}), normalised accuracy",
             "holds": beats(joint.mean, joint.sd, norm[best].mean, norm[best].sd), "direction": joint.mean > norm[best].mean,
             "joint %": 100 * joint.mean, "merge %": 100 * norm[best].mean}]


def _per_seed_mean(rows, method):
    seeds = sorted({r["seed"] for r in rows if r["method"] == method})
    return [sum(r["normalized"] for r in rows if r["method"] == method and r["seed"] == s) /
            sum(1 for r in rows if r["method"] == method and r["seed"] == s) for s in seeds]


def timing_table(times: list[dict]) -> list[dict]:
    return [{"method": t["method"], "trained weights (s)": t["seconds_trained_weights"],
             "whole MiniLM (s)": t["seconds_full_model"]} for t in times]


# ------------------------------------------------------------------------------------------------- 3 domains

def _domain_average(rows: list[dict], key: str = "ood") -> list[dict]:
    """Per (method, seed): the average over test domains (DomainBed's number for one run of the benchmark)."""
    acc: dict = {}
    for r in rows:
        acc.setdefault((r["method"], r["seed"]), []).append(r)
    return [{"method": m, "seed": s, "ood": sum(x["ood"] for x in rs) / len(rs),
             "in_domain": sum(x["in_domain"] for x in rs) / len(rs), **{f"d{x['test_domain']}": x["ood"] for x in rs}}
            for (m, s), rs in acc.items()]


def domain_table(rows: list[dict]) -> list[dict]:
    flat = _domain_average(rows)
    domains = [k for k in flat[0] if k.startswith("d")]
    out = []
    for r in summarize(flat, "method", ["ood", "in_domain"] + domains):
        out.append({"method": r["method"], "seeds": r["seeds"], "out-of-domain %": _pm(r, "ood"),
                    **{f"test {d[1:]}°": f"{100 * r[d]:.1f}" for d in domains},
                    "in-domain val %": _pm(r, "in_domain"), "DomainBed (paper) %": DOMAINBED.get(r["method"])})
    return out


def domain_claims(rows: list[dict]) -> list[dict]:
    stats = {m: mean_sd([r["ood"] for r in _domain_average(rows) if r["method"] == m])
             for m in dict.fromkeys(r["method"] for r in rows)}
    out = []
    for a, b in (("ratatouille (uniform)", "uniform soup"), ("ratatouille (greedy)", "greedy soup"),
                 ("uniform soup", "ERM"), ("greedy soup", "ERM"), ("ratatouille (uniform)", "fusing")):
        out.append({"claim": f"{a} > {b} out of domain", "holds": beats(stats[a].mean, stats[a].sd, stats[b].mean,
                                                                         stats[b].sd),
                    "direction": stats[a].mean >= stats[b].mean, f"{a} %": 100 * stats[a].mean,
                    f"{b} %": 100 * stats[b].mean, "paper gap points": DOMAINBED[a] - DOMAINBED[b]})
    return out


# ------------------------------------------------------------------------------------------------- 4 output space

def output_table(rows: list[dict]) -> list[dict]:
    """Accuracy (averaged over test domains, mean ± sd over model seeds) with the cost of each composition."""
    acc: dict = {}
    for r in rows:
        acc.setdefault((r["method"], r["seed"]), []).append(r)
    flat = [{"method": m, "seed": s, "accuracy": sum(x["accuracy"] for x in rs) / len(rs),
             "parameters": rs[0]["parameters"], "forward_passes": rs[0]["forward_passes"]}
            for (m, s), rs in acc.items()]
    return [{"composition": r["method"], "seeds": r["seeds"], "out-of-domain %": _pm(r, "accuracy"),
             "parameters stored": int(r["parameters"]), "forward passes / example": round(r["forward_passes"], 2)}
            for r in summarize(flat, "method", ["accuracy", "parameters", "forward_passes"])]


def wall_time_table(rows: list[dict]) -> list[dict]:
    """Milliseconds per 1,000 test images (the models already built), mean over seeds and domains."""
    acc: dict = {}
    for r in rows:
        acc.setdefault(r["method"], []).append(1000 * 1000 * r["seconds"] / r["examples"])
    return [{"composition": m, "ms per 1000 images": round(sum(v) / len(v), 1)} for m, v in acc.items()]


def output_claims(rows: list[dict]) -> list[dict]:
    acc: dict = {}
    for r in rows:
        acc.setdefault((r["method"], r["seed"]), []).append(r["accuracy"])
    stats = {m: mean_sd([sum(v) / len(v) for (mm, _), v in acc.items() if mm == m]) for m in dict.fromkeys(k[0] for k in acc)}
    merged = stats["merged (uniform soup)"]
    passes = {r["method"]: r["forward_passes"] for r in rows}
    out = []
    for m in ("logit ensemble", "PIC consensus"):
        out.append({"claim": f"output space ({m}) buys accuracy over the merged model, with {passes[m]:.0f}x the "
                             "forward passes", "holds": beats(stats[m].mean, stats[m].sd, merged.mean, merged.sd),
                    "direction": stats[m].mean > merged.mean, f"{m} %": 100 * stats[m].mean,
                    "merged %": 100 * merged.mean, "forward passes": passes[m]})
    return out


NOTE = SD_NOTE
