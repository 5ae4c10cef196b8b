"""RegMean (Jin et al., ICLR 2023), as vl-merging uses it: per linear layer, the weights whose outputs are closest
to every model's outputs on that model's own inputs.

For a linear layer y = x W with inputs X_m of model m (its data): W* = argmin Σ_m ‖X_m W − X_m W_m‖², i.e.
    W* = (Σ_m G̃_m)⁻¹ Σ_m G̃_m W_m,   G_m = X_mᵀ X_m,   G̃_m = a·G_m + (1 − a)·diag(G_m)
(a < 1 shrinks the off-diagonal terms, which regularises ill-conditioned Grams). torch.nn.Linear stores
weight = Wᵀ with shape [out, in], so the solve runs on weightᵀ. Solved in float64. Every other merged key (biases,
LayerNorms, embeddings, layers without a Gram) is the plain average, as in vl-merging.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from pic.merging.state import MergeError, Models, Patterns, StateDict, prepare, select_keys, work_dtype

Grams = Mapping[str, torch.Tensor]  # linear layer (module) name -> X^T X of its inputs, [in, in]


def gram_matrices(model: torch.nn.Module, batches: Iterable[Any], *,
                  forward: Callable[[torch.nn.Module, Any], Any] | None = None, include: Patterns = None,
                  exclude: Patterns = None) -> dict[str, torch.Tensor]:
    """X^T X of the inputs of every torch.nn.Linear in `model` (module name -> [in, in], float64, on the CPU),
    summed over every row (token, sample) of every batch, so a model seen on more data weighs more.

    forward(model, batch) runs one batch (default: model(batch), model(**batch) for a dict, model(*batch) for a
    tuple/list). Runs under torch.no_grad() and leaves the train/eval mode as it is: call model.eval() first so
    dropout does not perturb the inputs. include/exclude select the layers by module name.
    """
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    chosen = select_keys(names, include, exclude) if names else []
    if not chosen:
        raise MergeError(f"{type(model).__name__} has no torch.nn.Linear layer to collect Gram matrices from "
                         f"(include={include!r}, exclude={exclude!r})")
    grams: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def hook_for(name: str):
        def hook(module, inputs, output):
            x = inputs[0].detach().reshape(-1, module.in_features).double()  # summed where the model runs
            grams[name] = grams.get(name, 0) + x.T @ x
        return hook

    handles = [modules[n].register_forward_hook(hook_for(n)) for n in chosen]
    try:
        with torch.no_grad():
            for batch in batches:
                (forward or _default_forward)(model, batch)
    finally:
        for h in handles:
            h.remove()
    unseen = [n for n in chosen if n not in grams]
    if unseen:
        raise MergeError(f"no input reached the linear layers {unseen[:3]} (of {len(unseen)}): the batches were "
                         "empty or the forward skips them; exclude them or check `forward`")
    return {name: g.cpu() for name, g in grams.items()}


def _default_forward(model: torch.nn.Module, batch: Any) -> Any:
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def regularised(gram: torch.Tensor, alpha: float) -> torch.Tensor:
    """G̃ = a·G + (1 − a)·diag(G)."""
    return alpha * gram + (1 - alpha) * torch.diag_embed(torch.diagonal(gram))


def regmean(models: Models, grams: Sequence[Grams] | Mapping[str, Grams], alpha: float = 1.0, *,
            include: Patterns = None, exclude: Patterns = None,
            dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """RegMean of the models, given each model's Gram matrices (gram_matrices(model, its data)), in model order or
    by model name. A layer "name" with a Gram merges the key "name.weight" by the regression mean; every other
    merged key is averaged. alpha = a in G̃ = a·G + (1 − a)·diag(G). Keys not merged are copied from the first
    model."""
    if not 0.0 <= alpha <= 1.0:
        raise MergeError(f"alpha={alpha} must be in [0, 1] (the weight of the Grams' off-diagonal terms)")
    plan = prepare(models, include=include, exclude=exclude)
    by_model = _grams_by_model(grams, plan.names)
    layers = list(by_model[0])
    for name, g in zip(plan.names, by_model):
        if set(g) != set(layers):
            raise MergeError(f"model {name!r} has Grams for other layers than {plan.names[0]!r} (differ: "
                             f"{sorted(set(g) ^ set(layers))[:3]}): collect every model's Grams on the same layers")
    merged = {}
    for layer in layers:
        key = f"{layer}.weight" if layer else "weight"  # "" names the model itself when it is one nn.Linear
        if key not in plan.keys:
            if key not in plan.reference:
                raise MergeError(f"Gram for layer {layer!r} but the models have no key {key!r}: name Grams by the "
                                 "linear module's name, as gram_matrices does")
            continue  # a layer the include/exclude patterns leave out is copied
        merged[key] = _solve(layer, plan.stack(key), [g[layer] for g in by_model], alpha, plan.names)
    for key in plan.keys:
        if key not in merged:
            merged[key] = plan.stack(key).mean(0)
    return plan.finish(merged, dtype)


def _grams_by_model(grams, names: list[str]) -> list[Grams]:
    if isinstance(grams, Mapping) and set(grams) == set(names):
        return [grams[n] for n in names]
    if isinstance(grams, Mapping):
        raise MergeError(f"grams by model name must name exactly the models {names}, got {sorted(grams)}")
    if len(grams) != len(names):
        raise MergeError(f"{len(grams)} sets of Grams for {len(names)} models: pass gram_matrices(model, data) of "
                         "each model, in model order")
    return list(grams)


def _solve(layer: str, weights: torch.Tensor, grams: list[torch.Tensor], alpha: float,
           names: list[str]) -> torch.Tensor:
    """W*ᵀ = (Σ G̃_m)⁻¹ Σ G̃_m W_mᵀ for weights [T, out, in] (nn.Linear layout); returns [out, in]."""
    if weights.dim() != 3:
        raise MergeError(f"layer {layer!r} has a Gram but its weight has shape {tuple(weights.shape[1:])}, not "
                         "[out, in]: only linear layers merge by RegMean")
    size = weights.shape[-1]
    for name, g in zip(names, grams):
        if tuple(g.shape) != (size, size):
            raise MergeError(f"Gram of layer {layer!r} for model {name!r} has shape {tuple(g.shape)}, expected "
                             f"({size}, {size}) for a weight of shape {tuple(weights.shape[1:])} (in = {size})")
        if not bool(torch.isfinite(g).all()):
            raise MergeError(f"Gram of layer {layer!r} for model {name!r} has NaN/inf: its inputs overflowed")
    g_tilde = [regularised(g.to("cpu", torch.float64), alpha) for g in grams]
    lhs = sum(g_tilde)
    rhs = sum(g @ w.to("cpu", torch.float64).T for g, w in zip(g_tilde, weights))
    # Σ G̃ is symmetric positive semi-definite: Cholesky solves it, and a pivot at round-off level means singular
    factor, info = torch.linalg.cholesky_ex(lhs)
    pivots = torch.diagonal(factor) ** 2
    if int(info) != 0 or float(pivots.min()) <= size * torch.finfo(torch.float64).eps * float(lhs.diagonal().max()):
        raise MergeError(f"the summed Gram of layer {layer!r} is singular (fewer independent inputs than its "
                         f"{size} features): collect more data or pass alpha < 1")
    return torch.cholesky_solve(rhs, factor).T.to(weights.device, work_dtype(weights))
