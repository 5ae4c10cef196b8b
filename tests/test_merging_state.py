"""Merge inputs: incompatible or broken models are refused by name, keys are selected and copied as promised."""
import pytest
import torch

from pic.merging import (MergeError, apply, check_compatible, linear, select_keys, task_arithmetic, task_vectors,
                         ties)


def models(n=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    base = {"emb.weight": torch.randn(5, 4, generator=g), "block.0.weight": torch.randn(3, 4, generator=g),
            "block.0.bias": torch.randn(3, generator=g), "steps": torch.tensor(7)}
    tuned = [{k: v + 0.1 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
              for k, v in base.items()} for _ in range(n)]
    cast = lambda s: {k: v.to(dtype) if v.is_floating_point() else v for k, v in s.items()}  # noqa: E731
    return cast(base), [cast(s) for s in tuned]


def test_compatible_models_give_their_shared_keys_in_order():
    base, tuned = models()
    assert check_compatible(tuned) == ["emb.weight", "block.0.weight", "block.0.bias", "steps"]


def test_a_shape_mismatch_names_the_key_and_both_shapes():
    _, (a, b, _) = models()
    b["block.0.weight"] = torch.zeros(3, 5)
    with pytest.raises(MergeError, match=r"'block.0.weight' has shape \(3, 4\) in 'a' but \(3, 5\) in 'b'"):
        check_compatible({"a": a, "b": b})


def test_missing_keys_and_other_dtypes_are_refused_by_name():
    _, (a, b, c) = models()
    del b["block.0.bias"]
    with pytest.raises(MergeError, match=r"'model 1' and 'model 0' have different keys .*lacks \['block.0.bias'\]"):
        check_compatible([a, b])
    c["emb.weight"] = c["emb.weight"].double()
    with pytest.raises(MergeError, match="'emb.weight' is torch.float32 in 'model 0' but torch.float64 in 'model 1'"):
        check_compatible([a, c])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_model_and_key(bad):
    base, (a, b, _) = models()
    b["block.0.bias"][1] = bad
    with pytest.raises(MergeError, match=r"model 'math' has 1 non-finite \(NaN/inf\) values in 'block.0.bias'"):
        linear({"code": a, "math": b})
    base["emb.weight"][0, 0] = bad
    with pytest.raises(MergeError, match="model 'base model' has 1 non-finite .* in 'emb.weight'"):
        task_arithmetic(base, [a])


def test_one_state_dict_or_a_module_is_not_a_list_of_models():
    base, _ = models()
    with pytest.raises(MergeError, match="single state dict"):
        linear(base)
    with pytest.raises(MergeError, match="is a Linear, not a state dict: pass module.state_dict()"):
        linear([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)])


def test_include_and_exclude_choose_the_merged_keys_and_the_rest_is_copied_from_the_base():
    base, tuned = models()
    merged = task_arithmetic(base, tuned, include=r"^block\.", exclude="bias")
    assert torch.equal(merged["emb.weight"], base["emb.weight"])  # embeddings copied, as vl-merging does
    assert torch.equal(merged["block.0.bias"], base["block.0.bias"])
    assert not torch.equal(merged["block.0.weight"], base["block.0.weight"])
    assert select_keys(["a.x", "b.x", "a.y"], include=lambda k: k.startswith("a")) == ["a.x", "a.y"]
    with pytest.raises(MergeError, match=r"include='decoder' .* matches no key; keys look like \['emb.weight'"):
        linear(tuned, include="decoder")


def test_integer_buffers_are_never_averaged_and_outputs_keep_the_input_dtype():
    base, tuned = models(dtype=torch.float16)
    tuned[1]["steps"] = torch.tensor(9)
    merged = linear(tuned)
    assert merged["steps"].item() == 7 and merged["steps"].dtype == torch.int64  # copied from the first model
    assert all(merged[k].dtype == torch.float16 for k in ("emb.weight", "block.0.bias"))
    assert linear(tuned, dtype=torch.float32)["emb.weight"].dtype == torch.float32


def test_half_precision_task_vectors_are_summed_in_float32():
    base, tuned = models(n=2, dtype=torch.float16)
    expected = base["emb.weight"].float() + sum(t["emb.weight"].float() - base["emb.weight"].float() for t in tuned)
    torch.testing.assert_close(task_arithmetic(base, tuned)["emb.weight"], expected.half())


def test_task_vectors_applied_to_their_base_give_back_the_model():
    base, tuned = models()
    taus = task_vectors(base, {"a": tuned[0], "b": tuned[1]})
    assert set(taus) == {"a", "b"} and set(taus["a"]) == {"emb.weight", "block.0.weight", "block.0.bias"}
    back = apply(base, taus["a"])
    for key in tuned[0]:
        torch.testing.assert_close(back[key], tuned[0][key])
    with pytest.raises(MergeError, match="task vector 'emb.weight' has shape"):
        apply(base, {"emb.weight": torch.zeros(2)})


def test_per_model_parameters_must_name_every_model_once():
    base, tuned = models(n=2)
    named = {"a": tuned[0], "b": tuned[1]}
    torch.testing.assert_close(ties(base, named, {"a": 0.5, "b": 0.5})["emb.weight"],
                               ties(base, named, 0.5)["emb.weight"])
    with pytest.raises(MergeError, match=r"density by model name: unknown \['c'\], missing \['b'\]"):
        ties(base, named, {"a": 0.5, "c": 0.5})
    with pytest.raises(MergeError, match=r"weights has 3 values for 2 models \['a', 'b'\]"):
        task_arithmetic(base, named, weights=[1, 1, 1])
