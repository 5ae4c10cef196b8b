"""State dicts as merge inputs: the checks every merge runs first, task vectors, and which keys are merged.

A model is a state dict {key: Tensor}; a merge takes several that share keys, shapes, dtypes and devices, all
finite. Models come as a list (named "model 0", "model 1", ...) or a dict name -> state dict; errors use the names.
A key is merged when it is floating point and passes the `include` / `exclude` patterns (regular expressions,
matched anywhere in the key with re.search, or a predicate key -> bool); every other key is copied unchanged from
the base model, or from the first model where a method has no base (vl-merging merges only the transformer blocks
and copies the embeddings: include=r"encoder\\.layer\\.").

Arithmetic runs in float32 (float64 inputs stay float64); results are cast back to each key's input dtype unless a
`dtype` is asked for.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, Union

import torch

StateDict = Mapping[str, torch.Tensor]
Models = Union[Mapping[str, StateDict], Sequence[StateDict]]
Patterns = Union[str, Sequence[str], Callable[[str], bool], None]
PerModel = Union[float, Sequence[float], Mapping[str, float]]  # one value for all, one per model, or by name


class MergeError(ValueError):
    """Models that cannot be merged as asked; the message names the model, key or parameter, and the fix."""


def named(models: Models, what: str = "models") -> dict[str, StateDict]:
    """{name: state dict} from a list (names "model 0", ...) or a dict; refuses a single state dict or modules."""
    if isinstance(models, Mapping):
        if models and all(isinstance(v, torch.Tensor) for v in models.values()):
            raise MergeError(f"{what} is a single state dict: pass several, as a list or a dict name -> state dict")
        out = dict(models)
    elif isinstance(models, (str, bytes, torch.Tensor)) or not isinstance(models, Sequence):
        raise MergeError(f"{what} must be a list of state dicts or a dict name -> state dict, got "
                         f"{type(models).__name__}")
    else:
        out = {f"model {i}": m for i, m in enumerate(models)}
    if not out:
        raise MergeError(f"no {what} to merge: pass at least one state dict")
    for name, state in out.items():
        if not isinstance(state, Mapping):
            raise MergeError(f"{what}[{name!r}] is a {type(state).__name__}, not a state dict: pass "
                             "module.state_dict()")
    return out


def check_compatible(models: Models) -> list[str]:
    """The shared keys, in the first model's order, after checking that every model has the same keys, shapes,
    dtypes and devices, and only finite floating-point values. Raises MergeError naming the model and key."""
    return _check(list(named(models).items()))


def _check(pairs: list[tuple[str, StateDict]]) -> list[str]:
    ref_name, ref = pairs[0]
    for name, state in pairs[1:]:
        missing, extra = [k for k in ref if k not in state], [k for k in state if k not in ref]
        if missing or extra:
            raise MergeError(f"{name!r} and {ref_name!r} have different keys ({name!r} lacks {missing[:3]}, has "
                             f"extra {extra[:3]}): merge models of one architecture, or drop the extra keys")
        for key, t in ref.items():
            u = state[key]
            if u.shape != t.shape:
                raise MergeError(f"key {key!r} has shape {tuple(t.shape)} in {ref_name!r} but {tuple(u.shape)} in "
                                 f"{name!r}: only models of one architecture (same sizes) can be merged")
            if u.dtype != t.dtype:
                raise MergeError(f"key {key!r} is {t.dtype} in {ref_name!r} but {u.dtype} in {name!r}: cast every "
                                 "model to one dtype first")
            if u.device != t.device:
                raise MergeError(f"key {key!r} is on {t.device} in {ref_name!r} but on {u.device} in {name!r}: move "
                                 "every model to one device first")
    for name, state in pairs:
        check_finite(name, state)
    return list(ref)


def check_finite(name: str, state: StateDict) -> None:
    """Refuses NaN/inf in any floating-point tensor of `state`, naming the model and the key."""
    for key, t in state.items():
        # a finite sum proves every entry finite in one cheap reduction; only a non-finite one is looked into
        if t.is_floating_point() and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise MergeError(f"model {name!r} has {bad} non-finite (NaN/inf) values in {key!r}: it diverged or was "
                             "saved broken; merge a finite checkpoint")


def select_keys(keys: Sequence[str], include: Patterns = None, exclude: Patterns = None) -> list[str]:
    """The keys that pass `include` (all when None) and not `exclude`, in order. A pattern is a regular expression
    searched anywhere in the key, a list of them (any matches), or a predicate key -> bool."""
    inc, exc = _matcher(include, "include"), _matcher(exclude, "exclude")
    chosen = [k for k in keys if (inc is None or inc(k)) and not (exc is not None and exc(k))]
    if include is not None and not chosen:
        raise MergeError(f"include={include!r} (less exclude={exclude!r}) matches no key; keys look like "
                         f"{list(keys)[:3]}")
    return chosen


def _matcher(patterns: Patterns, what: str) -> Callable[[str], bool] | None:
    if patterns is None or callable(patterns):
        return patterns
    if isinstance(patterns, str):
        patterns = [patterns]
    try:
        compiled = [re.compile(p) for p in patterns]
    except (re.error, TypeError) as e:
        raise MergeError(f"{what} pattern {patterns!r} is not a list of regular expressions: {e}") from None
    return lambda key: any(p.search(key) for p in compiled)


def work_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else is computed in float32 (half-precision sums lose the task vector)."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


@dataclass
class Plan:
    """What every merge needs once its inputs are checked: the models by name, the base (or None), the keys to
    merge and the state dict the other keys are copied from."""

    names: list[str]
    states: list[StateDict]
    base: StateDict | None
    keys: list[str]
    reference: StateDict

    def stack(self, key: str) -> torch.Tensor:
        """The models' tensors for `key` as one [T, ...] tensor in the working dtype."""
        t = self.reference[key]
        return torch.stack([s[key] for s in self.states]).to(work_dtype(t))

    def tau(self, key: str) -> torch.Tensor:
        """Task vectors τ_t = θ_t − θ_0 for `key`, stacked [T, ...]."""
        return self.stack(key) - self.base[key].to(work_dtype(self.base[key]))

    def per_model(self, value: PerModel, what: str) -> torch.Tensor:
        """A per-model parameter as a float64 tensor [T]: one number for all, a list in model order, or a dict by
        model name (every model named)."""
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(self.names))
            missing = [n for n in self.names if n not in value]
            if unknown or missing:
                raise MergeError(f"{what} by model name: unknown {unknown}, missing {missing}; name each of "
                                 f"{self.names} once")
            value = [value[n] for n in self.names]
        elif isinstance(value, (int, float)):
            value = [value] * len(self.names)
        if len(value) != len(self.names):
            raise MergeError(f"{what} has {len(value)} values for {len(self.names)} models {self.names}: give one "
                             "per model")
        return torch.tensor([float(v) for v in value], dtype=torch.float64)

    def finish(self, merged: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """The output state dict: merged keys cast to `dtype` (default: their input dtype), every other key copied
        from the reference, in the reference's key order."""
        out = {}
        for key, t in self.reference.items():
            target = dtype if dtype is not None and t.is_floating_point() else t.dtype
            out[key] = merged[key].to(target) if key in merged else t.to(target, copy=True)  # never alias an input
        return out


def prepare(models: Models, base: StateDict | None = None, *, include: Patterns = None,
            exclude: Patterns = None) -> Plan:
    """Checks the models (and the base, when given) against each other and selects the floating-point keys to
    merge. Copied keys come from the base, or from the first model when there is none."""
    states = named(models)
    pairs = ([("base model", base)] if base is not None else []) + list(states.items())
    if base is not None and not isinstance(base, Mapping):
        raise MergeError(f"base model is a {type(base).__name__}, not a state dict: pass module.state_dict()")
    keys = _check(pairs)
    reference = base if base is not None else next(iter(states.values()))
    chosen = [k for k in select_keys(keys, include, exclude) if reference[k].is_floating_point()]
    return Plan(list(states), list(states.values()), base, chosen, reference)


def task_vectors(base: StateDict, models: Models, *, include: Patterns = None,
                 exclude: Patterns = None) -> dict[str, dict[str, torch.Tensor]]:
    """{model name: τ} with τ[key] = θ[key] − θ_0[key] for every merged key, in the working dtype."""
    plan = prepare(models, base, include=include, exclude=exclude)
    taus: dict[str, dict[str, torch.Tensor]] = {name: {} for name in plan.names}
    for key in plan.keys:
        for name, tau in zip(plan.names, plan.tau(key)):
            taus[name][key] = tau
    return taus


def apply(base: StateDict, tau: Mapping[str, torch.Tensor], lam: float = 1.0,
          dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """θ_0 + λ τ for the keys τ has; every other key of the base copied. Output keys keep the base's dtypes."""
    for key, t in tau.items():
        if key not in base:
            raise MergeError(f"task vector key {key!r} is not in the base model: build τ from this base")
        if t.shape != base[key].shape:
            raise MergeError(f"task vector {key!r} has shape {tuple(t.shape)}, the base {tuple(base[key].shape)}: "
                             "build τ from this base")
    check_finite("base model", base)
    check_finite("task vector", tau)
    merged = {k: base[k].to(work_dtype(base[k])) + lam * t.to(work_dtype(base[k])) for k, t in tau.items()}
    return Plan([], [], base, list(tau), base).finish(merged, dtype)
