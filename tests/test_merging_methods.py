"""Each merging method against its paper's definition, on small tensors worked out by hand."""
import pytest
import torch

from pic.merging import (MergeError, breadcrumbs, dare, drop_and_rescale, emr, interpolate, linear,
                         modality_arithmetic, task_arithmetic, ties, vl_expert_weights, vl_interpolation)
from pic.merging.ties import disjoint_merge


def as_models(*vectors, key="w"):
    """Models {key: base + τ_t} over a zero base, from task vectors given as lists."""
    base = {key: torch.zeros(len(vectors[0]))}
    return base, {f"t{i + 1}": {key: torch.tensor(v, dtype=torch.float32)} for i, v in enumerate(vectors)}


def random_models(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = {"a": torch.randn(4, 6, generator=g), "b": torch.randn(6, generator=g)}
    return base, [{k: v + 0.3 * torch.randn(v.shape, generator=g) for k, v in base.items()} for _ in range(n)]


# interpolation and arithmetic

def test_interpolation_at_alpha_one_and_zero_returns_the_endpoints_exactly():
    _, (a, b, _) = random_models()
    for key in a:
        assert torch.equal(interpolate(a, b, 1.0)[key], a[key])
        assert torch.equal(interpolate(a, b, 0.0)[key], b[key])
    torch.testing.assert_close(interpolate(a, b, 0.25)["b"], 0.25 * a["b"] + 0.75 * b["b"])


def test_linear_merge_is_the_weighted_average_and_normalize_divides_by_the_weights():
    _, models = random_models()
    w = [1.0, 2.0, 5.0]
    expected = sum(wi * m["a"] for wi, m in zip(w, models))
    torch.testing.assert_close(linear(models, w)["a"], expected / 8)
    torch.testing.assert_close(linear(models, w, normalize=False)["a"], expected)
    with pytest.raises(MergeError, match="sum to 0"):
        linear(models, [1.0, -1.0, 0.0])


def test_vl_merging_interpolation_gives_layers_with_a_vl_expert_two_thirds_alpha_and_one_third():
    _, (v, l, vl) = random_models()
    alpha = 0.3
    assert vl_expert_weights(alpha) == pytest.approx((0.2, 1.4 / 3, 1 / 3))
    merged = vl_interpolation(v, l, alpha, {"a": vl["a"]})  # only "a" belongs to a layer with a VL expert
    torch.testing.assert_close(merged["a"], 2 * alpha / 3 * v["a"] + 2 * (1 - alpha) / 3 * l["a"] + vl["a"] / 3)
    torch.testing.assert_close(merged["b"], alpha * v["b"] + (1 - alpha) * l["b"])
    with pytest.raises(MergeError, match="vision_language has keys the V/L models lack"):
        vl_interpolation(v, l, alpha, {"c": vl["a"]})


def test_task_arithmetic_with_one_task_and_lambda_one_returns_that_model():
    base, (tuned, *_) = random_models()
    for key, value in task_arithmetic(base, [tuned], lam=1.0).items():
        torch.testing.assert_close(value, tuned[key])
    for key, value in task_arithmetic(base, [tuned], lam=0.0).items():
        assert torch.equal(value, base[key])


def test_modality_arithmetic_adds_lambda_times_every_modality_vector_to_the_seed():
    seed, models = random_models()
    merged = modality_arithmetic(seed, {"v": models[0], "l": models[1], "vl": models[2]}, lam=0.75)
    expected = seed["a"] + 0.75 * sum(m["a"] - seed["a"] for m in models)
    torch.testing.assert_close(merged["a"], expected)


# TIES

# three task vectors; density 1/2 keeps each one's 3 largest magnitudes:
#   τ1 = [ 3, -1,  2, 0.5, -4, 1  ] -> [ 3,  0,  2,  0, -4, 0]
#   τ2 = [-2,  2,  1, -3,  -1, 0.2] -> [-2,  2,  0, -3,  0, 0]
#   τ3 = [ 4, -3, -5, 0.1,  2, 0.3] -> [ 4, -3, -5,  0,  0, 0]
# summed trimmed values [5, -1, -3, -3, -4, 0] elect signs [+, -, -, -, -, 0]; the agreeing entries' means are
# [(3+4)/2, -3, -5, -3, -4, 0]
TIES_TASKS = ([3, -1, 2, 0.5, -4, 1], [-2, 2, 1, -3, -1, 0.2], [4, -3, -5, 0.1, 2, 0.3])


def test_ties_trims_elects_the_sign_of_the_sum_and_takes_the_disjoint_mean_on_a_hand_example():
    base, models = as_models(*TIES_TASKS)
    merged = ties(base, models, density=0.5)["w"]
    torch.testing.assert_close(merged, torch.tensor([3.5, -3.0, -5.0, -3.0, -4.0, 0.0]))
    summed = ties(base, models, density=0.5, normalize=False, lam=0.5)["w"]  # disjoint sum, scaled by λ
    torch.testing.assert_close(summed, 0.5 * torch.tensor([7.0, -3.0, -5.0, -3.0, -4.0, 0.0]))


def test_the_elected_sign_follows_the_summed_mass_not_the_majority():
    tau = torch.tensor([[1.0], [1.0], [-3.0]])  # two small positives, one large negative
    torch.testing.assert_close(disjoint_merge(tau, torch.ones(3)), torch.tensor([-3.0]))


def test_ties_trims_over_the_whole_model_by_default_and_per_tensor_when_asked():
    big, small = torch.tensor([10.0, 20.0, 30.0, 40.0]), torch.tensor([1.0, 2.0, 3.0, 4.0])
    base = {"big": torch.zeros(4), "small": torch.zeros(4)}
    tuned = [{"big": big, "small": small}]
    whole = ties(base, tuned, density=0.5)  # the 4 largest of 8 entries are all in "big"
    assert whole["big"].tolist() == [10, 20, 30, 40] and whole["small"].tolist() == [0, 0, 0, 0]
    per_tensor = ties(base, tuned, density=0.5, trim="tensor")  # half of each tensor
    assert per_tensor["big"].tolist() == [0, 0, 30, 40] and per_tensor["small"].tolist() == [0, 0, 3, 4]
    with pytest.raises(MergeError, match="trim='layer' is not one of"):
        ties(base, tuned, trim="layer")


# DARE

def test_dare_is_unbiased_mean_over_seeds_within_five_standard_errors():
    tau = torch.randn(1, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p, seeds = 0.7, 4000
    draws = torch.stack([drop_and_rescale(tau, torch.tensor([p]), torch.Generator().manual_seed(s))
                         for s in range(seeds)])
    # one draw is τ·B/(1 − p), B ~ Bernoulli(1 − p): variance τ² p/(1 − p), so the mean's standard error is
    # |τ| sqrt(p / ((1 − p) S))
    stderr = tau.abs() * (p / ((1 - p) * seeds)) ** 0.5
    assert ((draws.mean(0) - tau).abs() <= 5 * stderr + 1e-12).all()


def test_dare_drops_a_p_fraction_and_rescales_every_survivor_by_exactly_one_over_one_minus_p():
    tau = torch.randn(2, 100_000, generator=torch.Generator().manual_seed(2))
    p = torch.tensor([0.3, 0.9])
    out = drop_and_rescale(tau, p, torch.Generator().manual_seed(0))
    for t in range(2):
        dropped = float((out[t] == 0).float().mean())
        assert abs(dropped - p[t]) <= 5 * (p[t] * (1 - p[t]) / tau.shape[1]) ** 0.5  # binomial noise
        kept = out[t] != 0
        torch.testing.assert_close(out[t][kept], tau[t][kept] / (1 - p[t]), rtol=0, atol=0)


def test_dare_is_reproducible_by_seed_and_with_p_zero_is_task_arithmetic():
    base, models = random_models()
    first, again = dare(base, models, 0.5, seed=3), dare(base, models, 0.5, seed=3)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["a"], dare(base, models, 0.5, seed=4)["a"])
    for key, value in dare(base, models, 0.0, lam=0.8).items():
        torch.testing.assert_close(value, task_arithmetic(base, models, lam=0.8)[key])
    with pytest.raises(MergeError, match=r"p must be in \[0, 1\)"):
        dare(base, models, 1.0)


def test_dare_ties_sign_elects_the_dropped_and_rescaled_task_vectors():
    base, models = random_models()
    merged = dare(base, models, 0.5, combine="ties", seed=5)
    generator = torch.Generator().manual_seed(5)  # the merge draws key by key, in the state dict's order
    for key in base:
        tau = torch.stack([m[key] - base[key] for m in models])
        dropped = drop_and_rescale(tau, torch.full((3,), 0.5, dtype=torch.float64), generator)
        torch.testing.assert_close(merged[key], base[key] + disjoint_merge(dropped, torch.ones(3)))


# Model Breadcrumbs

def test_breadcrumbs_keeps_exactly_the_middle_band_of_each_tensor():
    magnitudes = torch.randperm(20, generator=torch.Generator().manual_seed(0)).float() + 1  # 1..20, shuffled
    signs = torch.where(torch.arange(20) % 3 == 0, -1.0, 1.0)
    base = {"w": torch.zeros(20), "v": torch.zeros(20)}
    tuned = [{"w": signs * magnitudes, "v": 100 * signs * magnitudes}]
    merged = breadcrumbs(base, tuned, density=0.5, gamma=0.1)
    # γ = 0.1 drops the 2 largest (19, 20), density 0.5 keeps the next 10 (9..18), the 8 smallest go
    for key, scale in (("w", 1), ("v", 100)):  # per tensor: each keeps its own band
        band = (magnitudes >= 9) & (magnitudes <= 18)
        assert torch.equal(merged[key], torch.where(band, tuned[0][key], torch.zeros(20)))
        assert int((merged[key] != 0).sum()) == 10
    with pytest.raises(MergeError, match="density \\+ gamma must be at most 1"):
        breadcrumbs(base, tuned, density=0.95, gamma=0.1)


def test_breadcrumbs_adds_the_masked_task_vectors_times_lambda():
    base, models = random_models()
    full = breadcrumbs(base, models, density=1.0, gamma=0.0, lam=0.4)  # nothing masked: task arithmetic
    for key in base:
        torch.testing.assert_close(full[key], task_arithmetic(base, models, lam=0.4)[key])


# EMR-merging

# τ1 = [2, -1, 3, 0], τ2 = [1, 2, -1, 0], τ3 = [-1, -3, -1, 0]: Σ = [2, -2, 1, 0], σ = [+, -, +, 0];
# τ_u = σ ⊙ max agreeing |τ| = [2, -3, 3, 0]; M1 = [1, 1, 1, 0], M2 = [1, 0, 0, 0], M3 = [0, 1, 0, 0];
# λ1 = 6/8, λ2 = 4/2, λ3 = 5/3
EMR_TASKS = ([2, -1, 3, 0], [1, 2, -1, 0], [-1, -3, -1, 0])


def test_emr_elects_one_unified_vector_with_a_mask_and_a_scale_per_task_on_a_hand_example():
    base, models = as_models(*EMR_TASKS)
    merged = emr(base, models)
    assert merged.unified["w"].tolist() == [2, -3, 3, 0]
    assert merged.masks["w"].int().tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]]
    torch.testing.assert_close(merged.scales, torch.tensor([6 / 8, 2.0, 5 / 3], dtype=torch.float64))
    torch.testing.assert_close(merged.weights("t1")["w"], torch.tensor([1.5, -2.25, 2.25, 0.0]))
    torch.testing.assert_close(merged.weights(1)["w"], torch.tensor([4.0, 0.0, 0.0, 0.0]))
    assert merged.storage() == {"unified_values": 4, "mask_bits": 12, "scales": 3}
    with pytest.raises(MergeError, match=r"no task 't9' in this EMR merge: pass one of \['t1', 't2', 't3'\]"):
        merged.weights("t9")


def test_emr_scale_is_the_ratio_of_the_task_vectors_mass_to_its_masked_unified_mass():
    base, models = random_models(n=4)
    merged = emr(base, models)
    for t, m in enumerate(models):
        own = sum(float((m[k] - base[k]).abs().sum()) for k in base)
        masked = sum(float((merged.masks[k][t] * merged.unified[k]).abs().sum()) for k in base)
        assert merged.scales[t].item() == pytest.approx(own / masked, rel=1e-6)
        for k in base:  # under its mask, each task's weights move along τ_u, scaled by λ_t
            mask = merged.masks[k][t]
            torch.testing.assert_close((merged.weights(t)[k] - base[k])[mask],
                                       (merged.scales[t] * merged.unified[k][mask]).float())


def test_emr_of_one_task_reconstructs_it_exactly():
    base, (tuned, *_) = random_models()
    merged = emr(base, [tuned])
    for key in base:
        torch.testing.assert_close(merged.weights(0)[key], tuned[key])
