"""A mergekit-shaped config runs the same merge as the library call, and every broken config names its culprit."""
import pytest
import torch

from pic.merging import (EMRMerge, MergeConfigError, MergeError, breadcrumbs, dare, emr, gram_matrices,
                         greedy_soup, linear, load_config, merge, modality_arithmetic, regmean, task_arithmetic,
                         ties, uniform_soup, vl_interpolation)


def library():
    g = torch.Generator().manual_seed(0)
    base = {"layer.weight": torch.randn(3, 4, generator=g), "layer.bias": torch.randn(3, generator=g),
            "emb": torch.randn(6, 4, generator=g)}
    tuned = {n: {k: v + 0.2 * torch.randn(v.shape, generator=g) for k, v in base.items()} for n in ("a", "b", "c")}
    return {"base": base, **tuned}


def config(method, base="base", parameters=None, models=("a", "b", "c"), per_model=None, **extra):
    per_model = per_model or {}
    out = {"merge_method": method, "models": [{"model": m, "parameters": per_model.get(m, {})} for m in models],
           "parameters": parameters or {}, **extra}
    if base:
        out["base_model"] = base
    return out


def grams():
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(1))
    return {n: {"layer": x.T @ x + i * torch.eye(4)} for i, n in enumerate("abc")}


def score(state):
    return -float(state["layer.bias"].pow(2).sum())


M = library()
TUNED = {n: M[n] for n in "abc"}
CASES = {  # config -> the library call it must equal
    "linear": (config("linear", None, per_model={"a": {"weight": 2.0}}),
               lambda: linear(TUNED, [2.0, 1.0, 1.0])),
    "task_arithmetic": (config("task_arithmetic", parameters={"lambda": 0.5}),
                        lambda: task_arithmetic(M["base"], TUNED, 0.5)),
    "ties": (config("ties", parameters={"density": 0.5}, per_model={"b": {"density": 0.25}}),
             lambda: ties(M["base"], TUNED, [0.5, 0.25, 0.5], trim="tensor")),  # mergekit trims per tensor
    "ties_model_trim": (config("ties", parameters={"density": 0.5, "trim": "model"}),
                        lambda: ties(M["base"], TUNED, 0.5, trim="model")),
    "dare_linear": (config("dare_linear", parameters={"density": 0.7}, seed=3),
                    lambda: dare(M["base"], TUNED, 0.3, seed=3)),
    "dare_ties": (config("dare_ties", parameters={"density": 0.7, "int8_mask": True}),
                  lambda: dare(M["base"], TUNED, 0.3, combine="ties")),
    "breadcrumbs": (config("breadcrumbs", parameters={"density": 0.8, "gamma": 0.1}),
                    lambda: breadcrumbs(M["base"], TUNED, 0.8, 0.1)),
    "breadcrumbs_ties": (config("breadcrumbs_ties", parameters={"density": 0.8, "gamma": 0.1}),
                         lambda: breadcrumbs(M["base"], TUNED, 0.8, 0.1, combine="ties")),
    "regmean": (config("regmean", None, parameters={"alpha": 0.9}),
                lambda: regmean(TUNED, grams(), 0.9)),
    "interpolation": (config("interpolation", None, parameters={"alpha": 0.3}, models=("a", "b")),
                      lambda: vl_interpolation(M["a"], M["b"], 0.3)),
    "modality_arithmetic": (config("modality_arithmetic", parameters={"lambda": 0.75}),
                            lambda: modality_arithmetic(M["base"], TUNED, 0.75)),
    "soup_uniform": (config("soup_uniform", None), lambda: uniform_soup(TUNED)),
    "soup_greedy": (config("soup_greedy", None), lambda: greedy_soup(TUNED, score).state),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_config_runs_the_same_merge_as_the_library_call(case):
    cfg, direct = CASES[case]
    merged, expected = merge(cfg, M, grams=grams(), evaluate=score), direct()
    assert list(merged) == list(expected)
    for key in expected:
        torch.testing.assert_close(merged[key], expected[key], rtol=0, atol=0)


def test_emr_from_a_config_gives_one_model_per_task():
    merged = merge(config("emr"), M)
    assert isinstance(merged, EMRMerge) and merged.tasks == ["a", "b", "c"]
    torch.testing.assert_close(merged.weights("b")["emb"], emr(M["base"], TUNED).weights("b")["emb"])


def test_yaml_text_and_files_are_read_with_safe_load(tmp_path):
    text = """
merge_method: task_arithmetic
base_model: base
models:
  - model: a
    parameters: {weight: 0.5}
  - model: b
parameters: {lambda: 0.8, normalize: true}
dtype: float16
include: ['^layer\\.']
"""
    expected = task_arithmetic(M["base"], {"a": M["a"], "b": M["b"]}, 0.8, [0.5, 1.0], normalize=True,
                               include=r"^layer\.", dtype=torch.float16)
    path = tmp_path / "merge.yml"
    path.write_text(text)
    for source in (text, path):
        merged = merge(source, M)
        assert merged["layer.bias"].dtype == torch.float16 and torch.equal(merged["emb"], M["base"]["emb"].half())
        torch.testing.assert_close(merged["layer.weight"], expected["layer.weight"])
    with pytest.raises(MergeConfigError, match="safe_load"):
        load_config("merge_method: !!python/object/apply:os.system ['echo unsafe']\nmodels: []")


def test_a_base_model_listed_among_the_models_is_left_out_of_the_task_vectors():
    merged = merge(config("task_arithmetic", models=("base", "a")), M)
    torch.testing.assert_close(merged["emb"], M["a"]["emb"])


BROKEN = {  # config change -> what the error must name
    "typo at the top": ({"merge_mehtod": "ties"}, r"unknown key 'merge_mehtod' .*did you mean 'merge_method'"),
    "mergekit slices": ({"slices": []}, "slices .* not supported; .* include/exclude"),
    "unknown method": ({"merge_method": "tie"}, r"merge_method 'tie' is not one of .*did you mean 'ties'"),
    "no base model": ({"base_model": None}, "merge_method 'ties' needs base_model"),
    "unknown global": ({"parameters": {"lamda": 1.0}}, r"parameters: unknown parameter 'lamda'.*'lambda'"),
    "parameter of another method": ({"parameters": {"gamma": 0.1}},
                                    r"unknown parameter 'gamma' \(merge_method 'ties' takes"),
    "della's epsilon": ({"parameters": {"epsilon": 0.1}}, "epsilon is della's parameter"),
    "a gradient": ({"parameters": {"density": [0.1, 0.5]}}, "density must be int or float, got .*gradients"),
    "a string density": ({"parameters": {"density": "high"}}, "density must be int or float, got 'high'"),
    "a bool weight": ({"parameters": {"weight": True}}, "weight must be int or float, got True"),
    "unknown dtype": ({"dtype": "fp8"}, r"dtype 'fp8' is not one of"),
    "a float seed": ({"seed": 1.5}, "seed must be an integer"),
    "a model key typo": ({"models": [{"model": "a", "paramters": {}}]},
                         r"unknown key 'paramters' in models\[0\].*did you mean 'parameters'"),
    "a nameless model": ({"models": [{"parameters": {}}]}, r"models\[0\] needs `model: <name>`"),
    "no models": ({"models": []}, "'models' must be a non-empty list"),
    "a model twice": ({"models": [{"model": "a"}, {"model": "a"}]}, r"models \['a'\] are listed twice"),
    "a per-model parameter it cannot take": ({"models": [{"model": "a", "parameters": {"gamma": 1}}]},
                                            r"models\[0\] \('a'\) parameters: unknown parameter 'gamma'"),
    "a bad pattern": ({"include": 3}, "include must be a regular expression"),
    "an unknown trim": ({"parameters": {"trim": "layer"}}, r"trim 'layer' is not one of \('model', 'tensor'\)"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_config_is_refused_naming_the_culprit(case):
    change, message = BROKEN[case]
    with pytest.raises(MergeConfigError, match=message):
        merge({**config("ties", parameters={"density": 0.5}), **change}, M)


def test_a_base_model_for_a_method_without_one_is_refused():
    with pytest.raises(MergeConfigError, match="merge_method 'linear' takes no base_model"):
        merge(config("linear"), M)


def test_models_the_config_names_must_be_passed():
    with pytest.raises(MergeConfigError, match=r"names models \['c'\] that are not among the state dicts passed"):
        merge(config("ties"), {n: M[n] for n in ("base", "a", "b")})


def test_regmean_and_the_greedy_soup_say_what_they_need():
    with pytest.raises(MergeConfigError, match="'regmean' needs Gram matrices"):
        merge(config("regmean", None), M)
    with pytest.raises(MergeConfigError, match="'soup_greedy' needs merge.*evaluate="):
        merge(config("soup_greedy", None), M)


def test_mismatched_shapes_and_nan_weights_are_refused_by_model_and_key():
    bad = {**M, "b": {**M["b"], "layer.bias": torch.zeros(4)}}
    with pytest.raises(MergeError, match=r"'layer.bias' has shape \(3,\) in 'base model' but \(4,\) in 'b'"):
        merge(config("ties"), bad)
    nan = {**M, "c": {**M["c"], "emb": torch.full((6, 4), float("nan"))}}
    with pytest.raises(MergeError, match="model 'c' has 24 non-finite .* in 'emb'"):
        merge(config("ties"), nan)


def test_an_out_of_range_density_names_the_model():
    with pytest.raises(MergeError, match=r"density must be in \[0, 1\] .*\('b', 1.5\)"):
        merge(config("ties", per_model={"b": {"density": 1.5}}), M)
    with pytest.raises(MergeError, match=r"in a config, density = 1 − p must be in \(0, 1\]"):
        merge(config("dare_ties", parameters={"density": 0.0}), M)


def test_gram_collection_feeds_a_regmean_config():
    torch.manual_seed(0)
    nets = {n: torch.nn.Linear(4, 3) for n in "ab"}
    data = torch.randn(16, 4)
    collected = {n: gram_matrices(net, [data]) for n, net in nets.items()}
    merged = merge(config("regmean", None, models=("a", "b")), {n: net.state_dict() for n, net in nets.items()},
                   grams=collected)
    torch.testing.assert_close(merged["weight"], regmean({n: net.state_dict() for n, net in nets.items()},
                                                         collected)["weight"])
