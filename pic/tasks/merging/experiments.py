"""The four experiments of 51_model_merging on the committed checkpoints: each returns per-seed rows that
table.py turns into mean ± sd tables beside the papers' numbers and into claims.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from pic import merging
from pic.stats import rank_correlation
from pic.tasks.merging import checkpoints as ckpt
from pic.tasks.merging import domains as dm
from pic.tasks.merging import multimodal as mm
from pic.tasks.merging import output_space as out
from pic.tasks.merging import text_tasks as tt
from pic.tasks.merging.settings import Settings
from pic.tasks.merging.training import domain_runs, finetuned, text_model

METRICS = ("l2", "cosine", "sign_conflict", "soft_sign", "truncated_soft_sign")
PAIRS = (("v", "l"), ("v", "vl"), ("l", "vl"))


# ------------------------------------------------------------------------------------------------- 1 multimodal

@dataclass
class Multimodal:
    """rows: per (seed, seed length, model) zero-shot and fine-tuned test accuracy; distances: per (seed, seed
    length, pair) the five metrics between the experts' blocks (task vectors from the seed's block)."""

    rows: list[dict]
    distances: list[dict]


def distances(specific: dict, seed_state: dict) -> list[dict]:
    """The metrics for every pair of experts (V–L, V–VL, L–VL); cosine and the sign metrics on task vectors from
    the seed's shared block (the random initialisation when S = 0)."""
    base = mm.expert_weights(seed_state, "shared")
    experts = {e: mm.expert_weights(specific, e) for e in mm.EXPERTS}
    rows = []
    for a, b in PAIRS:
        x, y = experts[a], experts[b]
        rows.append({"pair": f"{a}-{b}", "l2": merging.l2_distance(x, y),
                     "cosine": merging.cosine_similarity(x, y, base),
                     "sign_conflict": merging.sign_conflict_rate([x, y], base),
                     "soft_sign": merging.soft_sign_dissimilarity(x, y, base),
                     "truncated_soft_sign": merging.truncated_soft_sign_dissimilarity(x, y, base)})
    return rows


def multimodal(s: Settings, data: mm.VQAData, splits: mm.Splits, test: mm.VQAData) -> Multimodal:
    rows, dist = [], []
    # fixed random subsets (generator seed 0, whatever the experiment seed): the same questions for every model
    test_rows = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:s.test_questions or len(test)]
    val_rows = splits.validation[torch.randperm(len(splits.validation), generator=torch.Generator().manual_seed(0))
                                 [:s.validation_questions or len(splits.validation)]]
    for seed in s.model_seeds:
        groups, meta = ckpt.load("multimodal", seed)
        d = meta["d"]

        def evaluate(state, experts, name, length, extra=None):
            model = mm.load_state(data, state, experts, d=d)
            zero = mm.accuracy(model, test, test_rows)
            mm.train(model, data, splits.downstream, s.downstream_steps, 1000 * seed + s.seed + length)
            rows.append({"seed": seed, "seed_length": length, "model": name, "zero_shot": zero,
                         "finetuned": mm.accuracy(model, test, test_rows), **(extra or {})})

        for length in [n for n in meta["seed_lengths"] if n in s.seed_lengths]:
            seed_state, specific = groups[f"seed{length}"], groups[f"specific{length}"]
            evaluate(specific, mm.EXPERTS, "modality-specific", length)
            grams = mm.expert_grams(mm.load_state(data, specific, mm.EXPERTS, d=d), data,
                                   splits.pretrain[:s.gram_questions])
            merged = {"interpolation": mm.merge_experts("interpolation", specific, seed_state)}
            val = {lam: mm.accuracy(mm.load_state(data, mm.merge_experts("modality_arithmetic", specific, seed_state,
                                                                        lam=lam), mm.SHARED, d=d),
                                    data, val_rows) for lam in s.lambdas}
            best = max(val, key=lambda k: (val[k], -k))  # ties: the smaller λ
            merged["modality_arithmetic"] = mm.merge_experts("modality_arithmetic", specific, seed_state, lam=best)
            merged["regmean"] = mm.merge_experts("regmean", specific, seed_state, grams)
            for method, state in merged.items():
                evaluate(state, mm.SHARED, method, length, {"lambda": best} if method == "modality_arithmetic" else None)
            dist += [{"seed": seed, "seed_length": length, **r} for r in distances(specific, seed_state)]
        evaluate(groups["scratch"], mm.SHARED, "agnostic from scratch", max(meta["seed_lengths"]))
    return Multimodal(rows, dist)


def metric_correlations(result: Multimodal, s: Settings, method: str = "interpolation") -> list[dict]:
    """Spearman ρ (bootstrap interval over the configurations) between each metric, averaged over the three expert
    pairs of a configuration (seed, seed length), and the merged model's accuracy, zero-shot and fine-tuned."""
    configs = sorted({(r["seed"], r["seed_length"]) for r in result.distances})
    merged = {(r["seed"], r["seed_length"]): r for r in result.rows if r["model"] == method}
    out_rows = []
    for metric in METRICS:
        x = [sum(r[metric] for r in result.distances if (r["seed"], r["seed_length"]) == c) / len(PAIRS)
             for c in configs]
        row = {"metric": metric, "ours": metric in ("soft_sign", "truncated_soft_sign"), "configs": len(configs)}
        for outcome in ("zero_shot", "finetuned"):
            rho, lo, hi = rank_correlation(x, [merged[c][outcome] for c in configs], s.seed, s.bootstrap)
            row |= {f"rho_{outcome}": rho, f"low_{outcome}": lo, f"high_{outcome}": hi}
        out_rows.append(row)
    return out_rows


# ------------------------------------------------------------------------------------------------- 2 text

TEXT_METHODS = {  # the row label -> the merge (merge_text); λ, where a method has one, is chosen on validation
    "weight averaging": "linear",
    "task arithmetic": "task_arithmetic",
    "TIES": "ties",
    "DARE (linear)": "dare_linear",
    "DARE (TIES)": "dare_ties",
    "Breadcrumbs": "breadcrumbs",
    "EMR": "emr",
    "RegMean": "regmean",
}


def merge_text(method: str, base: dict, layers: dict[str, dict], grams: dict | None, lam: float, seed: int):
    """One merge of the fine-tuned models (task -> state dict) against `base` (the pre-trained weights of the same
    keys) with the library's functions: TIES keeps 20%, DARE drops 70%, Breadcrumbs keeps 85% below the top 5%."""
    if method == "linear":
        return merging.linear(layers)
    if method == "task_arithmetic":
        return merging.task_arithmetic(base, layers, lam)
    if method == "ties":
        return merging.ties(base, layers, 0.2, lam)
    if method in ("dare_linear", "dare_ties"):
        return merging.dare(base, layers, 0.7, lam, combine=method.removeprefix("dare_"), seed=seed)
    if method == "breadcrumbs":
        return merging.breadcrumbs(base, layers, 0.85, 0.05, lam)
    if method == "emr":
        return merging.emr(base, layers)
    if method == "regmean":
        return merging.regmean(layers, grams, 0.9)
    raise ValueError(f"unknown text merge {method!r}")


@dataclass
class Text:
    rows: list[dict]  # per (seed, method, task): test accuracy, and the individual fine-tuning's
    times: list[dict]  # per method: seconds to merge the fine-tuned layers and the full MiniLM state dicts


@dataclass
class TextMembers:
    """One model seed's text fine-tunings, ready to be merged and scored: `base` the pre-trained top layer (trained
    and frozen keys), `layers` the fine-tuned trained weights per task, `groups` the stored checkpoint (the heads,
    the joint model), `individual` each fine-tuning's own test accuracy."""

    seed: int
    base: dict[str, torch.Tensor]
    layers: dict[str, dict[str, torch.Tensor]]
    groups: dict
    individual: dict[str, float]
    tasks: dict[str, tt.TaskData]
    encoded: dict

    def merge(self, method: str, lam: float = 1.0, seed: int = 0, tasks=None, grams: dict | None = None):
        """merge_text over the fine-tunings of `tasks` (default: every task), against the pre-trained weights."""
        layers = {t: self.layers[t] for t in (tasks if tasks is not None else self.layers)}
        return merge_text(method, {k: self.base[k] for k in tt.TRAINED}, layers,
                          grams and {t: grams[t] for t in layers}, lam, seed)

    def accuracy(self, merged, split: str = "test") -> dict[str, float]:
        """Per task (all of them, merged or not): accuracy of its own head reading the merged layer (an EMR merge
        gives each task its own weights)."""
        per, pooled = {}, {}
        emr = isinstance(merged, merging.EMRMerge)
        for t in self.layers:
            key = (id(self.encoded[t]), t if emr else None)  # tasks sharing texts share one forward of the layer
            rows = self.tasks[t].rows(split)
            if key not in pooled:
                layer = tt.TopLayer(self.base, {}).load_trained(merged.weights(t) if emr else merged).eval()
                with torch.no_grad():
                    pooled[key] = layer(*self.encoded[t].take(rows))
            per[t] = tt.head_accuracy(pooled[key], self.groups[t], t, self.tasks[t].labels[rows])
        return per

    def normalised(self, merged, split: str = "test") -> float:
        """The mean over tasks of accuracy / the individual fine-tuning's test accuracy (1: nothing lost)."""
        acc = self.accuracy(merged, split)
        return sum(acc[t] / self.individual[t] for t in acc) / len(acc)


def text_members(base: dict, tasks: dict[str, tt.TaskData], encoded: dict, model_seed: int) -> TextMembers:
    """The committed text fine-tunings of one model seed (50_train_merging_models)."""
    groups, meta = ckpt.load("text", model_seed)
    names = meta["tasks"]
    individual = {t: tt.accuracy(text_model(base, groups[t], tasks), t, tasks[t], encoded[t]) for t in names}
    return TextMembers(model_seed, base, {t: finetuned(base, groups[t]) for t in names}, groups, individual, tasks,
                       encoded)


def text(s: Settings, base: dict, full_state: dict, tasks: dict[str, tt.TaskData], encoded: dict) -> Text:
    rows, times = [], []
    for seed in s.model_seeds:
        members = text_members(base, tasks, encoded, seed)
        names, groups = list(members.layers), members.groups
        joint = text_model(base, groups["joint"], tasks)

        def add(method, accs, lam=None):
            for t in names:
                rows.append({"seed": seed, "method": method, "task": t, "accuracy": accs[t],
                             "normalized": accs[t] / members.individual[t], "lambda": lam})

        add("individual", members.individual)
        add("joint training", {t: tt.accuracy(joint, t, tasks[t], encoded[t]) for t in names})
        grams = {t: tt.layer_grams(text_model(base, groups[t], tasks), encoded[t], tasks[t].rows("train"))
                 for t in names}
        for label, method in TEXT_METHODS.items():
            lams = s.text_lambdas if method in ("task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs") else (None,)
            candidates = {lam: members.merge(method, lam, s.seed, grams=grams) for lam in lams}
            val = {lam: members.normalised(m, "validation") for lam, m in candidates.items()}
            lam = max(val, key=lambda k: (val[k], -(k or 0)))
            add(label, members.accuracy(candidates[lam], "test"), lam)
        if seed == s.model_seeds[0]:
            times = merge_times({k: base[k] for k in tt.TRAINED}, full_state if s.time_full_model else None,
                                members.layers, grams, s.seed)
    return Text(rows, times)


def merge_times(base: dict, full_state: dict | None, layers: dict[str, dict], grams: dict, seed: int) -> list[dict]:
    """Seconds per merge, with the λ = 1 setting of each method: of the fine-tuned weights only, and (unless
    full_state is None) of whole MiniLM state dicts, every model a full copy with its fine-tuned top layer."""
    rows = []
    for label, method in TEXT_METHODS.items():
        start = time.perf_counter()
        merge_text(method, base, layers, grams, 1.0, seed)
        rows.append({"method": label, "seconds_trained_weights": time.perf_counter() - start,
                     "seconds_full_model": None})
    if full_state is None:
        return rows
    fulls = {t: dict(full_state) | {tt.PREFIX + k: v for k, v in layer.items()} for t, layer in layers.items()}
    full_grams = {t: {tt.PREFIX + k: g for k, g in gr.items()} for t, gr in grams.items()}
    for row, method in zip(rows, TEXT_METHODS.values()):
        start = time.perf_counter()
        merge_text(method, dict(full_state), fulls, full_grams, 1.0, seed)
        row["seconds_full_model"] = time.perf_counter() - start
    return rows


# ------------------------------------------------------------------------------------------------- 3 domains

def domain_rows(s: Settings, domains: dm.Domains) -> list[dict]:
    """Per (seed, test domain, method): out-of-domain test accuracy and in-domain validation accuracy. ERM and
    fusing: the mean over their runs; soups and ratatouille: the averaged weights (greedy: ranked and kept on
    in-domain validation only)."""
    rows = []
    for seed in s.model_seeds:
        groups, meta = ckpt.load("domains", seed)
        for angle in meta["angles"]:
            split = dm.leave_one_out(domains, angle)

            def val(state):
                return dm.accuracy(state, split.val_x, split.val_y)

            def add(method, states):
                test = [dm.accuracy(st, split.test_x, split.test_y) for st in states]
                rows.append({"seed": seed, "test_domain": angle, "method": method, "ood": sum(test) / len(test),
                             "in_domain": sum(val(st) for st in states) / len(states)})

            soup, rat, fus = (domain_runs(groups, angle, k) for k in ("soup", "ratatouille", "fusing"))
            add("ERM", soup)
            add("uniform soup", [merging.uniform_soup(soup)])
            add("greedy soup", [merging.greedy_soup(soup, val).state])
            add("fusing", fus)
            add("ratatouille (uniform)", [merging.uniform_soup(rat)])
            add("ratatouille (greedy)", [merging.greedy_soup(rat, val).state])
    return rows


# ------------------------------------------------------------------------------------------------- 4 output space

def output_space_rows(s: Settings, domains: dm.Domains) -> list[dict]:
    """Per (seed, test domain, composition): accuracy and cost on the soup members (shared initialisation)."""
    rows = []
    for seed in s.model_seeds:
        groups, meta = ckpt.load("domains", seed)
        for angle in meta["angles"]:
            split = dm.leave_one_out(domains, angle)
            for c in out.compare(domain_runs(groups, angle, "soup"), split.test_x, split.test_y):
                rows.append({"seed": seed, "test_domain": angle, **asdict(c)})
    return rows


def connectivity_rows(s: Settings, domains: dm.Domains, angle: int | None = None) -> list[dict]:
    """Per (seed, pair, α): in-domain validation accuracy of the interpolation of two target runs that share the
    foundation's initialisation, start from different auxiliary models (ratatouille runs 0 and 1), or start from
    independent random initialisations."""
    rows = []
    for seed in s.model_seeds:
        groups, meta = ckpt.load("domains", seed)
        a = angle if angle is not None else meta["angles"][0]
        split = dm.leave_one_out(domains, a)
        pairs = {"shared initialisation": domain_runs(groups, a, "soup")[:2],
                 "auxiliary initialisations": domain_runs(groups, a, "ratatouille")[:2],
                 "independent initialisations": domain_runs(groups, a, "scratch")[:2]}
        for pair, (x, y) in pairs.items():
            for alpha, acc in zip(s.alphas, out.connectivity(x, y, split.val_x, split.val_y, s.alphas)):
                rows.append({"seed": seed, "pair": pair, "alpha": alpha, "accuracy": acc})
    return rows
