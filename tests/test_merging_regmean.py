"""RegMean is the least-squares fit of every model's outputs on its own inputs, layer by layer."""
import pytest
import torch

from pic.merging import MergeError, gram_matrices, regmean


def linear_models(n=2, d_in=6, d_out=3, seed=0):
    torch.manual_seed(seed)
    return [torch.nn.Linear(d_in, d_out).double() for _ in range(n)]


def inputs(rows, d_in=6, seed=0):
    return torch.randn(rows, d_in, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_gram_matrices_sum_x_transpose_x_over_every_batch_and_every_linear_layer():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3)).double()
    x = inputs(12, 5)
    grams = gram_matrices(net, [x[:5], x[5:]])  # two batches
    torch.testing.assert_close(grams["0"], x.T @ x)
    hidden = torch.relu(net[0](x)).detach()
    torch.testing.assert_close(grams["2"], hidden.T @ hidden)
    assert not net[0]._forward_hooks  # the hooks are removed afterwards
    tokens = torch.randn(2, 7, 5, dtype=torch.float64)  # [batch, tokens, features]: every token is a row
    torch.testing.assert_close(gram_matrices(net, [tokens], include="^0$")["0"],
                               tokens.reshape(-1, 5).T @ tokens.reshape(-1, 5))


def test_regmean_with_a_one_equals_least_squares_on_the_concatenated_inputs():
    models = linear_models()
    data = [inputs(20, seed=1), inputs(30, seed=2)]
    grams = [gram_matrices(m, [x]) for m, x in zip(models, data)]
    merged = regmean([m.state_dict() for m in models], grams, alpha=1.0)
    # argmin_W Σ_m ‖X_m W − X_m W_m‖²: stack the inputs, and each model's own outputs (without bias) as targets
    targets = torch.cat([x @ m.weight.detach().T for m, x in zip(models, data)])
    fit = torch.linalg.lstsq(torch.cat(data), targets).solution
    torch.testing.assert_close(merged["weight"], fit.T)
    torch.testing.assert_close(merged["bias"], (models[0].bias + models[1].bias).detach() / 2)  # averaged


def test_regmean_with_a_below_one_is_least_squares_with_the_off_diagonals_shrunk():
    models = linear_models(n=3)
    data = [inputs(4, seed=s) for s in (1, 2, 3)]  # fewer rows than features: each Gram alone is singular
    grams = [gram_matrices(m, [x]) for m, x in zip(models, data)]
    alpha = 0.6
    merged = regmean([m.state_dict() for m in models], grams, alpha=alpha)
    # G̃ = a XᵀX + (1 − a) diag(XᵀX) is the Gram of sqrt(a) X stacked over sqrt((1 − a) diag(XᵀX)): fit those
    rows, targets = [], []
    for m, x in zip(models, data):
        z = torch.cat([alpha ** 0.5 * x, torch.diag(((1 - alpha) * (x * x).sum(0)) ** 0.5)])
        rows.append(z)
        targets.append(z @ m.weight.detach().T)
    fit = torch.linalg.lstsq(torch.cat(rows), torch.cat(targets)).solution
    torch.testing.assert_close(merged["weight"], fit.T)


def test_a_singular_gram_is_a_clear_error_and_alpha_below_one_fixes_it():
    models = linear_models()
    data = [inputs(2, seed=1), inputs(2, seed=2)]  # 4 rows for 6 features
    grams = [gram_matrices(m, [x]) for m, x in zip(models, data)]
    states = [m.state_dict() for m in models]
    with pytest.raises(MergeError, match="summed Gram of layer '' is singular .* pass alpha < 1"):
        regmean(states, grams, alpha=1.0)
    assert torch.isfinite(regmean(states, grams, alpha=0.9)["weight"]).all()


def test_regmean_merges_the_linear_layers_of_a_network_and_averages_the_rest():
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 2)).double() for _ in range(2)]
    data = [inputs(40, 4, seed=s) for s in (1, 2)]
    grams = {"a": gram_matrices(nets[0], [data[0]]), "b": gram_matrices(nets[1], [data[1]])}
    states = {"a": nets[0].state_dict(), "b": nets[1].state_dict()}
    merged = regmean(states, grams)
    for key in ("1.weight", "1.bias", "0.bias", "3.bias"):
        torch.testing.assert_close(merged[key], (states["a"][key] + states["b"][key]) / 2)
    for key in ("0.weight", "3.weight"):  # not the average: each layer fits both models' outputs
        assert not torch.allclose(merged[key], (states["a"][key] + states["b"][key]) / 2)
    copied = regmean(states, grams, exclude="^3")
    assert torch.equal(copied["3.weight"], states["a"]["3.weight"])


def test_grams_that_do_not_fit_the_weights_are_refused_by_name():
    models = linear_models()
    states = [m.state_dict() for m in models]
    good = gram_matrices(models[0], [inputs(10)])
    with pytest.raises(MergeError, match=r"layer '' for model 'model 1' has shape \(5, 5\), expected \(6, 6\)"):
        regmean(states, [good, {"": torch.eye(5, dtype=torch.float64)}])
    with pytest.raises(MergeError, match="other layers than 'model 0'"):
        regmean(states, [good, {"x": torch.eye(6)}])
    with pytest.raises(MergeError, match="2 sets of Grams for 1 models"):
        regmean(states[:1], [good, good])
