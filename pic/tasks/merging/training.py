"""What 50_train_merging_models trains, per experiment and model seed, as checkpoint groups (checkpoints.py), and
the held-out numbers of every trained model, recomputed from the stored (float16-rounded) weights so that the
training run and a re-execution on the committed checkpoints print the same table.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Callable

import torch

from pic.tasks.merging import checkpoints as ckpt
from pic.tasks.merging import domains as dm
from pic.tasks.merging import multimodal as mm
from pic.tasks.merging import text_tasks as tt
from pic.tasks.merging.settings import Settings

Groups = dict[str, dict[str, torch.Tensor]]


# ------------------------------------------------------------------------------------------------- 1 multimodal

def train_multimodal(s: Settings, data: mm.VQAData, splits: mm.Splits, seed: int) -> tuple[Groups, dict]:
    """Seed pre-training snapshots at each length S (one run to max S), a modality-specific model from each, and
    a modality-agnostic model from scratch trained max(S) + M steps. Groups: seed<S>, specific<S>, scratch."""
    groups, logs = {}, {}
    model = mm.new_model(data, mm.SHARED, seed, d=s.d)
    done = 0
    for length in sorted(s.seed_lengths):
        log = mm.train(model, data, splits.pretrain, length - done, seed, desc=None) if length > done else None
        # a run cut into pieces restarts its schedule: each piece is its own warm-up + cosine, seeded apart
        done = length
        groups[f"seed{length}"] = ckpt.stored(model.state_dict())
        logs[f"seed{length}"] = log.losses if log else []
    for length in s.seed_lengths:
        specific = mm.load_state(data, mm.specific_from_seed(groups[f"seed{length}"]), mm.EXPERTS, d=s.d)
        log = mm.train(specific, data, splits.pretrain, s.specific_steps, seed + 10 + length)
        groups[f"specific{length}"], logs[f"specific{length}"] = ckpt.stored(specific.state_dict()), log.losses
    scratch = mm.new_model(data, mm.SHARED, seed + 1, d=s.d)
    log = mm.train(scratch, data, splits.pretrain, max(s.seed_lengths) + s.specific_steps, seed + 20)
    groups["scratch"], logs["scratch"] = ckpt.stored(scratch.state_dict()), log.losses
    return groups, {"seed_lengths": list(s.seed_lengths), "specific_steps": s.specific_steps, "d": s.d, "logs": logs}


def held_out_multimodal(groups: Groups, meta: dict, data: mm.VQAData, test: mm.VQAData, seed: int) -> list[dict]:
    rows = []
    for length in meta["seed_lengths"]:
        for group, experts in ((f"seed{length}", mm.SHARED), (f"specific{length}", mm.EXPERTS)):
            model = mm.load_state(data, groups[group], experts, d=meta["d"])
            rows.append({"experiment": "multimodal", "model": group, "task": "easy-VQA", "seed": seed, "test_accuracy": mm.accuracy(model, test)})
    model = mm.load_state(data, groups["scratch"], mm.SHARED, d=meta["d"])
    rows.append({"experiment": "multimodal", "model": "scratch", "task": "easy-VQA", "seed": seed, "test_accuracy": mm.accuracy(model, test)})
    return rows


# ------------------------------------------------------------------------------------------------- 2 text

def train_text(s: Settings, base: dict, tasks: dict[str, tt.TaskData], encoded: dict, seed: int) -> tuple[Groups, dict]:
    """One fine-tuning per task and one joint training. Groups: <task> and joint, each the task vector of the
    trained layer weights plus its head(s) (head.<task>.weight / .bias)."""
    names = list(tasks)[:s.text_tasks]
    groups, logs = {}, {}
    for i, group in enumerate(names + ["joint"]):
        model, log = tt.fine_tune(base, tasks, encoded, names if group == "joint" else [group], s.text_steps,
                                  100 * seed + i)
        state = {k: v - base[k] for k, v in model.trained_state().items()}
        state |= {f"head.{k}": v.detach() for k, v in model.heads.state_dict().items()}
        groups[group], logs[group] = state, log.losses
    return groups, {"tasks": names, "steps": s.text_steps, "logs": logs}


def text_model(base: dict, group: dict[str, torch.Tensor], tasks: dict[str, tt.TaskData],
               layer: dict[str, torch.Tensor] | None = None) -> tt.TopLayer:
    """The fine-tuned layer (or `layer`, e.g. a merge) with a group's heads."""
    heads = sorted({k.split(".")[1] for k in group if k.startswith("head.")})
    model = tt.TopLayer(base, {t: tasks[t].classes for t in heads})
    model.heads.load_state_dict({k.removeprefix("head."): v.float() for k, v in group.items() if k.startswith("head.")})
    return model.load_trained(layer if layer is not None else finetuned(base, group)).eval()


def finetuned(base: dict, group: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fine-tuned layer weights θ_0 + τ of a stored group."""
    return {k: base[k] + group[k].float() for k in tt.TRAINED}


def held_out_text(groups: Groups, meta: dict, base: dict, tasks: dict, encoded: dict, seed: int) -> list[dict]:
    rows = []
    for group in meta["tasks"] + ["joint"]:
        model = text_model(base, groups[group], tasks)
        for task in (meta["tasks"] if group == "joint" else [group]):
            rows.append({"experiment": "text", "model": group if group == "joint" else "individual", "task": task,
                         "seed": seed, "test_accuracy": tt.accuracy(model, task, tasks[task], encoded[task])})
    return rows


# ------------------------------------------------------------------------------------------------- 3 domains

def train_domains(s: Settings, domains: dm.Domains, seed: int) -> tuple[Groups, dict]:
    steps = s.domain_steps
    foundation = dm.pretrain_foundation(domains, steps.foundation, seed)
    aux = {task: dm.auxiliary(foundation, domains, task, steps, 10 * seed + i) for i, task in enumerate(dm.AUX_TASKS)}
    groups = {"foundation": foundation} | {f"aux/{t}": a for t, a in aux.items()}
    for angle in domains.angles:
        runs = dm.train_domain(foundation, aux, dm.leave_one_out(domains, angle), steps, s.runs, seed)
        for kind, states in runs.items():
            for i, state in enumerate(states):
                groups[f"d{angle}/{kind}/{i}"] = state
    return {k: ckpt.stored(v) for k, v in groups.items()}, {"angles": domains.angles, "runs": s.runs,
                                                           "steps": asdict(steps), "aux": list(aux)}


def domain_runs(groups: Groups, angle: int, kind: str) -> list[dict[str, torch.Tensor]]:
    """The stored target runs of one test domain and kind, in run order."""
    found = sorted((int(g.rsplit("/", 1)[1]), st) for g, st in groups.items() if g.startswith(f"d{angle}/{kind}/"))
    if not found:
        raise KeyError(f"no {kind} runs for test domain {angle} in this checkpoint")
    return [st for _, st in found]


def held_out_domains(groups: Groups, meta: dict, domains: dm.Domains, seed: int) -> list[dict]:
    rows = []
    for angle in meta["angles"]:
        split = dm.leave_one_out(domains, angle)
        for kind in ("soup", "ratatouille", "fusing", "scratch"):
            accs = [dm.accuracy(st, split.test_x, split.test_y) for st in domain_runs(groups, angle, kind)]
            rows.append({"experiment": "domains", "model": f"{kind} runs (mean)", "task": f"test domain {angle}",
                         "seed": seed, "test_accuracy": sum(accs) / len(accs)})
    return rows


def train_or_load(kind: str, seed: int, retrain: bool, save: bool,
                  train: Callable[[], tuple[Groups, dict]]) -> tuple[Groups, dict]:
    """retrain: train (and, when `save`, write and pin the checkpoint); else load the committed one."""
    if not retrain:
        return ckpt.load(kind, seed)
    groups, meta = train()
    if save:
        ckpt.save(kind, seed, groups, meta)
        return ckpt.load(kind, seed)
    return {g: ckpt.stored(st) for g, st in groups.items()}, meta
