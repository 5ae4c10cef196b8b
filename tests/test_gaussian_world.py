"""The quickstart's analytic world is right: exact scores, and a closed-form product that sampling confirms."""
import torch

from pic.tasks.quickstart.world import GaussianMixture, MixtureDiffusion, QuadraticScorer, mode_weights

F64 = torch.float64


def test_the_mixture_score_is_the_gradient_of_its_log_density():
    mix = GaussianMixture.ring(5, 2.0, 0.4)
    x = torch.randn(50, 2, dtype=F64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    (auto,) = torch.autograd.grad(mix.log_prob(x).sum(), x)
    torch.testing.assert_close(mix.score(x.detach()), auto)


def test_the_exact_epsilon_is_the_scaled_negative_score_of_the_diffused_mixture():
    from diffusers import DDPMScheduler

    mix = GaussianMixture.ring(4, 1.5, 0.3)
    sched = DDPMScheduler(clip_sample=False)
    world = MixtureDiffusion(mix, sched.alphas_cumprod)
    x = torch.randn(10, 2, dtype=F64)
    abar = sched.alphas_cumprod[600].double()
    expected = -(1 - abar).sqrt() * mix.diffused(abar).score(x)
    torch.testing.assert_close(world.eps(x, 600), expected)


def test_the_closed_form_product_matches_importance_weighted_sampling():
    mix = GaussianMixture.ring(8, 2.0, 0.3)
    experts = [QuadraticScorer([1.5, 1.0], 1.0, "a"), QuadraticScorer([0.0, 2.5], 1.5, "b")]
    product = mix.times([(e.centre, e.precision(w)) for e, w in zip(experts, [1.0, 0.7])])
    x = mix.sample(400_000, torch.Generator().manual_seed(0))
    logw = -(experts[0].energy(x) + 0.7 * experts[1].energy(x))
    w = torch.softmax(logw, 0)
    torch.testing.assert_close((w[:, None] * x).sum(0), product.mean(), atol=0.01, rtol=0)
    weights_is = torch.zeros(8, dtype=F64).index_add_(0, mix._component_log_probs(x).argmax(1), w)
    torch.testing.assert_close(weights_is, product.weights, atol=0.01, rtol=0)
    assert abs(float(product.weights.sum()) - 1) < 1e-12


def test_mode_weights_of_exact_samples_match_the_mixture_weights():
    mix = GaussianMixture.ring(6, 3.0, 0.2)
    mix.weights = torch.tensor([0.5, 0.1, 0.1, 0.1, 0.1, 0.1], dtype=F64)
    w = mode_weights(mix.sample(50_000, torch.Generator().manual_seed(1)), mix)
    torch.testing.assert_close(w, mix.weights, atol=0.01, rtol=0)
