"""A merge described by a mergekit-shaped config: YAML text, a YAML file (a Path), or the already parsed dict.

    merge_method: ties
    base_model: base
    models:
      - model: math
        parameters: {weight: 1.0, density: 0.5}
      - model: code
    parameters: {lambda: 1.0, normalize: true}
    dtype: float32
    include: ['encoder\\.layer\\.']    # ours, as are exclude, seed (DARE's generator) and trim (TIES)

Models are named; merge(config, models) looks each name up in the dict name -> state dict it is given. YAML is
read with yaml.safe_load only (no Python tags). Anything unknown is refused with a MergeConfigError that names it.

Where mergekit has the method, its semantics are followed, so a mergekit config gives mergekit's merge:
- `normalize` divides the weighted sum by the sum of the weights (TIES-style: of the agreeing tasks'); default
  true for linear, ties, dare_ties, breadcrumbs_ties, false for task_arithmetic, dare_linear, breadcrumbs;
- TIES trims within each tensor (trim: tensor), as mergekit does; `trim: model` gives the paper's whole-vector trim;
- `density` is the fraction kept (DARE drops p = 1 − density), default 1 (nothing dropped); `weight` default 1;
- a base_model also listed under models is left out of the task vectors (its own is 0);
- `int8_mask` only changes mergekit's memory use, so it is accepted and has no effect; `epsilon` is della's, and
  della is not implemented here.
Ours: regmean (merge(..., grams=)), emr (returns an EMRMerge, one model per task), interpolation (vl-merging's α
over the models V, L[, VL]), modality_arithmetic, soup_uniform, soup_greedy (merge(..., evaluate=)).

Parameters each method takes (METHODS; * also per model): linear: weight*, normalize; task_arithmetic: lambda,
normalize, weight*; ties: lambda, normalize, density*, weight*, trim, int8_mask; dare_linear / dare_ties: those of
ties but trim, plus rescale; breadcrumbs / breadcrumbs_ties: those of ties but trim, plus gamma; regmean: alpha
(the a of G̃, default 1); interpolation: alpha (default 0.5); modality_arithmetic: lambda; emr, soups: none.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import yaml

from pic.merging.breadcrumbs import breadcrumbs
from pic.merging.dare import dare
from pic.merging.emr import EMRMerge, emr
from pic.merging.interpolation import linear, vl_interpolation
from pic.merging.regmean import regmean
from pic.merging.soups import greedy_soup, uniform_soup
from pic.merging.state import MergeError, StateDict
from pic.merging.task_arithmetic import modality_arithmetic, task_arithmetic
from pic.merging.ties import TRIMS, ties


class MergeConfigError(MergeError):
    """A config that cannot describe a merge; the message names the key, value or model, and the fix."""


TOP_KEYS = ("merge_method", "base_model", "models", "parameters", "dtype", "include", "exclude", "seed")
MODEL_KEYS = ("model", "parameters")
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
# parameter -> (default, accepted types)
GLOBALS = {"lambda": (1.0, (int, float)), "normalize": (None, (bool,)), "rescale": (True, (bool,)),
           "gamma": (0.01, (int, float)), "int8_mask": (False, (bool,)), "weight": (1.0, (int, float)),
           "density": (1.0, (int, float)), "alpha": (None, (int, float)), "trim": ("tensor", (str,))}
SPARSE = ("lambda", "normalize", "density", "weight", "int8_mask")


@dataclass(frozen=True)
class Method:
    """What a merge_method needs: a base model or not, the global and per-model parameters it takes, and its
    default for `normalize` (None where it has none)."""

    needs_base: bool
    parameters: tuple[str, ...] = ()
    per_model: tuple[str, ...] = ()
    normalize: bool | None = None


METHODS = {
    "linear": Method(False, ("weight", "normalize"), ("weight",), True),
    "task_arithmetic": Method(True, ("lambda", "normalize", "weight"), ("weight",), False),
    "ties": Method(True, SPARSE + ("trim",), ("weight", "density"), True),
    "dare_linear": Method(True, SPARSE + ("rescale",), ("weight", "density"), False),
    "dare_ties": Method(True, SPARSE + ("rescale",), ("weight", "density"), True),
    "breadcrumbs": Method(True, SPARSE + ("gamma",), ("weight", "density"), False),
    "breadcrumbs_ties": Method(True, SPARSE + ("gamma",), ("weight", "density"), True),
    "regmean": Method(False, ("alpha",)),
    "emr": Method(True),
    "interpolation": Method(False, ("alpha",)),
    "modality_arithmetic": Method(True, ("lambda",)),
    "soup_uniform": Method(False),
    "soup_greedy": Method(False),
}


def _run(c: MergeConfig, base, states: dict, per: Callable[[str], list], g: dict, grams, evaluate):
    """The library call behind each merge_method, with the config's values."""
    m, keys = c.merge_method, {"include": c.include, "exclude": c.exclude, "dtype": c.dtype}
    if m == "linear":
        return linear(states, per("weight"), normalize=g["normalize"], **keys)
    if m == "task_arithmetic":
        return task_arithmetic(base, states, g["lambda"], per("weight"), normalize=g["normalize"], **keys)
    if m == "ties":
        return ties(base, states, per("density"), g["lambda"], per("weight"), trim=g["trim"],
                    normalize=g["normalize"], **keys)
    if m in ("dare_linear", "dare_ties"):
        return dare(base, states, [1.0 - d for d in per("density")], g["lambda"], per("weight"),
                    combine=m.removeprefix("dare_"), rescale=g["rescale"], normalize=g["normalize"], seed=c.seed,
                    **keys)
    if m in ("breadcrumbs", "breadcrumbs_ties"):
        return breadcrumbs(base, states, per("density"), g["gamma"], g["lambda"], per("weight"),
                           combine="ties" if m == "breadcrumbs_ties" else "linear", normalize=g["normalize"], **keys)
    if m == "regmean":
        if grams is None:
            raise MergeConfigError("merge_method 'regmean' needs Gram matrices: merge(config, models, grams={name: "
                                   "gram_matrices(model, its data)}) for every model")
        return regmean(states, grams, 1.0 if g["alpha"] is None else g["alpha"], **keys)
    if m == "emr":
        return emr(base, states, **keys)
    if m == "interpolation":
        if len(states) not in (2, 3):
            raise MergeConfigError(f"interpolation takes 2 or 3 models (V, L, and optionally VL), got "
                                   f"{list(states)}")
        vision, language, *vision_language = states.values()
        return vl_interpolation(vision, language, 0.5 if g["alpha"] is None else g["alpha"],
                                vision_language[0] if vision_language else None, **keys)
    if m == "modality_arithmetic":
        return modality_arithmetic(base, states, g["lambda"], **keys)
    if m == "soup_uniform":
        return uniform_soup(states, **keys)
    if evaluate is None:
        raise MergeConfigError("merge_method 'soup_greedy' needs merge(config, models, evaluate=fn), fn(state dict) "
                               "-> validation score, higher is better")
    return greedy_soup(states, evaluate, **keys).state


@dataclass(frozen=True)
class ModelEntry:
    name: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class MergeConfig:
    """A validated config: method, models (names and per-model parameters), base model name, global parameters,
    output dtype (None: each key's input dtype), key patterns and the DARE seed."""

    merge_method: str
    models: tuple[ModelEntry, ...]
    base_model: str | None = None
    parameters: dict[str, Any] | None = None
    dtype: torch.dtype | None = None
    include: Any = None
    exclude: Any = None
    seed: int = 0


def load_config(source: str | os.PathLike | Mapping[str, Any]) -> MergeConfig:
    """A MergeConfig from YAML text, a YAML file (a Path) or a parsed dict; refuses anything unknown or missing."""
    raw = _parse(source)
    _known(raw, TOP_KEYS, "the top level of the config")
    method = raw.get("merge_method")
    if method not in METHODS:
        raise MergeConfigError(f"merge_method {method!r} is not one of {sorted(METHODS)}{_close(method, METHODS)}")
    spec = METHODS[method]
    models = raw.get("models")
    if not isinstance(models, list) or not models:
        raise MergeConfigError(f"'models' must be a non-empty list of {{model: name, parameters: {{...}}}}, got "
                               f"{models!r}")
    entries = tuple(_entry(i, m, method, spec) for i, m in enumerate(models))
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MergeConfigError(f"models {dupes} are listed twice: list each model once")
    base = raw.get("base_model")
    if spec.needs_base and base is None:
        raise MergeConfigError(f"merge_method {method!r} needs base_model: its task vectors are θ_t − θ_base; name "
                               "the model the others were fine-tuned from")
    if not spec.needs_base and base is not None:
        raise MergeConfigError(f"merge_method {method!r} takes no base_model (got {base!r}): remove it, or use a "
                               "task-vector method (task_arithmetic, ties, ...)")
    if base is not None and not isinstance(base, str):
        raise MergeConfigError(f"base_model must be a model name, got {base!r}")
    params = raw.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise MergeConfigError(f"'parameters' must be a mapping name -> value, got {params!r}")
    _parameters(params, spec.parameters, method, "parameters")
    dtype = raw.get("dtype")
    if dtype is not None and dtype not in DTYPES:
        raise MergeConfigError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}{_close(dtype, DTYPES)}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise MergeConfigError(f"seed must be an integer, got {seed!r}")
    for key in ("include", "exclude"):
        value = raw.get(key)
        if value is not None and not (isinstance(value, str) or (isinstance(value, list)
                                                                 and all(isinstance(p, str) for p in value))):
            raise MergeConfigError(f"{key} must be a regular expression or a list of them, got {value!r}")
    return MergeConfig(method, entries, base, dict(params), DTYPES.get(dtype), raw.get("include"),
                       raw.get("exclude"), seed)


def merge(config: MergeConfig | str | os.PathLike | Mapping[str, Any], models: Mapping[str, StateDict], *,
          grams: Mapping[str, Any] | None = None,
          evaluate: Callable[[dict[str, torch.Tensor]], float] | None = None) -> dict[str, torch.Tensor] | EMRMerge:
    """Runs the merge the config describes on the state dicts named in it (models: name -> state dict). Returns the
    merged state dict; for emr, an EMRMerge. grams: regmean's Gram matrices by model name; evaluate: soup_greedy's
    validation score (state dict -> float, higher is better)."""
    cfg = config if isinstance(config, MergeConfig) else load_config(config)
    if not isinstance(models, Mapping) or any(isinstance(v, torch.Tensor) for v in models.values()):
        raise MergeConfigError("models must be a dict name -> state dict, the names those of the config")
    wanted = [e.name for e in cfg.models] + ([cfg.base_model] if cfg.base_model else [])
    missing = [n for n in wanted if n not in models]
    if missing:
        raise MergeConfigError(f"the config names models {missing} that are not among the state dicts passed "
                               f"({sorted(models)}): pass them in merge(config, models={{name: state_dict}})")
    spec = METHODS[cfg.merge_method]
    entries = [e for e in cfg.models if e.name != cfg.base_model]
    if not entries:
        raise MergeConfigError(f"the only model listed is the base model {cfg.base_model!r}: list the models to merge")
    defaults = {k: GLOBALS[k][0] for k in spec.parameters}
    if "normalize" in spec.parameters:
        defaults["normalize"] = spec.normalize
    g = {**defaults, **(cfg.parameters or {})}

    def per(name):
        return [e.parameters.get(name, g.get(name, GLOBALS[name][0])) for e in entries]

    base = models[cfg.base_model] if cfg.base_model else None
    return _run(cfg, base, {e.name: models[e.name] for e in entries}, per, g, grams, evaluate)


def _parse(source) -> dict:
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, os.PathLike):
        source = open(source, encoding="utf-8").read()
    if not isinstance(source, str):
        raise MergeConfigError(f"a config is YAML text, a path to a YAML file or a dict, got {type(source).__name__}")
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError as e:
        raise MergeConfigError(f"the config is not valid YAML (read with yaml.safe_load, which refuses Python "
                               f"tags): {e}") from None
    if not isinstance(raw, dict):
        raise MergeConfigError(f"the config must be a YAML mapping (merge_method: ..., models: ...), got "
                               f"{type(raw).__name__}")
    return raw


def _entry(i: int, m: Any, method: str, spec: Method) -> ModelEntry:
    if not isinstance(m, Mapping):
        raise MergeConfigError(f"models[{i}] must be {{model: name, parameters: {{...}}}}, got {m!r}")
    _known(m, MODEL_KEYS, f"models[{i}]")
    name = m.get("model")
    if not isinstance(name, str):
        raise MergeConfigError(f"models[{i}] needs `model: <name>` (a string naming a state dict), got {name!r}")
    params = m.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise MergeConfigError(f"models[{i}] ({name!r}) parameters must be a mapping, got {params!r}")
    _parameters(params, spec.per_model, method, f"models[{i}] ({name!r}) parameters")
    return ModelEntry(name, dict(params))


def _parameters(params: Mapping, allowed: tuple[str, ...], method: str, where: str) -> None:
    for key, value in params.items():
        if key == "epsilon":
            raise MergeConfigError(f"{where}: epsilon is della's parameter, and della is not implemented here: remove "
                                   "it or pick another merge_method")
        if key not in allowed:
            known = f" (merge_method {method!r} takes {list(allowed)})" if key in GLOBALS else ""
            raise MergeConfigError(f"{where}: unknown parameter {key!r}{known}{_close(key, allowed)}")
        if key == "trim" and value not in TRIMS:
            raise MergeConfigError(f"{where}: trim {value!r} is not one of {TRIMS} ('tensor': mergekit's per-tensor "
                                   "trim, 'model': the TIES paper's whole-vector trim)")
        types = GLOBALS[key][1]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise MergeConfigError(f"{where}: {key} must be {' or '.join(t.__name__ for t in types)}, got {value!r}"
                                   + (" (mergekit's gradients and per-tensor filters are not supported)"
                                      if isinstance(value, (list, dict)) else ""))


def _known(raw: Mapping, allowed: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in allowed:
            hint = (": mergekit's slices (layer ranges) are not supported; merge whole models and choose keys with "
                    "include/exclude") if key == "slices" else _close(key, allowed)
            raise MergeConfigError(f"unknown key {key!r} in {where} (known: {list(allowed)}){hint}")


def _close(word: Any, options) -> str:
    match = difflib.get_close_matches(str(word), list(options), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""
