"""Table 1's pieces keep their promises: the data, the generator's two predictions, the three scorers, the metrics,
and the refusals of bad input."""
import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from pic import ComposedEnergy, assets
from pic.assets import AssetError
from pic.metrics.image_quality import fid, inception_score, kid
from pic.tasks.image.unet import ClassConditionalUNet, ClassifierFreeScorer, Denoiser, make_unet
from pic.tasks.image.feature_net import FeatureNet
from pic.tasks.image.noise_aware import ClassifierScorer, NoiseAwareClassifier
from pic.optim import DiffusionPrior, GuidanceDivergedError, guided_denoise
from pic.tasks.image import data as fashion_mnist
from pic.tasks.image import checkpoints, table
from pic.tasks.image import generation as ig


@pytest.fixture(scope="module")
def tiny_generator():
    torch.manual_seed(0)
    return ClassConditionalUNet(make_unet(block_out_channels=(8, 16), attention=False)).eval()


def test_fashion_mnist_splits_are_balanced_disjoint_and_scaled():
    train_x, train_y = fashion_mnist.load_split("train")
    val_x, val_y = fashion_mnist.load_split("validation")
    test_x, _ = fashion_mnist.load_split("test")
    assert (len(train_x), len(val_x), len(test_x)) == (55000, 5000, 10000)
    assert val_y.bincount().tolist() == [500] * 10 and train_y.bincount().tolist() == [5500] * 10
    assert train_x.shape[1:] == (1, 28, 28) and float(train_x.min()) == -1.0 and float(train_x.max()) == 1.0
    # the validation images are not among the training images
    train_keys = {hash(x.numpy().tobytes()) for x in train_x[:20000]}
    assert sum(hash(x.numpy().tobytes()) in train_keys for x in val_x) < 20  # Fashion-MNIST has a few duplicates


def test_without_the_debian_package_and_offline_the_error_names_apt_and_the_url(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "nothing")
    monkeypatch.setenv("PIC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fashion_mnist, "OFFICIAL_URL", "http://127.0.0.1:9/")  # a closed port: offline
    with pytest.raises(AssetError, match=r"apt-get install dataset-fashion-mnist.*http://127.0.0.1:9/train-images"):
        fashion_mnist.load_split("train")


def test_an_unknown_class_name_is_an_error_listing_the_classes():
    assert ig.labels_for(["Sneaker", "ankle boot"], 2).tolist() == [7, 7, 9, 9]
    with pytest.raises(ValueError, match=r"unknown Fashion-MNIST class 'umbrella'.*'T-shirt/top', 'Trouser'"):
        ig.labels_for(["sneaker", "umbrella"], 1)


def test_cls_free_guidance_is_eps_u_plus_s_times_the_difference_and_reuses_the_generator_pass(tiny_generator):
    scheduler = DDIMScheduler.from_config(ig.sampling_scheduler().config)
    denoiser = Denoiser(tiny_generator, tiny_generator.null_class)
    prior = DiffusionPrior(denoiser.eps_uncond, scheduler)
    cfg = ClassifierFreeScorer(denoiser, scheduler.alphas_cumprod)
    x, labels, s = torch.randn(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5]), 3.0
    out = guided_denoise(prior, scheduler, x, ComposedEnergy([(cfg, s)]), num_steps=1, labels=labels).samples
    t = scheduler.timesteps[0]
    with torch.no_grad():
        eps_u = tiny_generator(x, t, torch.full((6,), tiny_generator.null_class))
        eps_c = tiny_generator(x, t, labels)
    scheduler.set_timesteps(1)
    expected = scheduler.step(eps_u + s * (eps_c - eps_u), t, x).prev_sample
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    assert denoiser.unet_calls == 2  # one unconditional pass shared by the generator and CLS-FREE, one conditional


def test_the_unconditional_pass_is_reused_for_detached_views_and_redone_when_x_or_t_changes(tiny_generator):
    """Scorers see detached copies of the generator's x_t (the paper profile's pixel-space scorers): they must reuse
    its unconditional pass, and an in-place change of x or another t must not."""
    denoiser = Denoiser(tiny_generator, tiny_generator.null_class)
    x = torch.randn(2, 1, 28, 28)
    eps = denoiser.eps_uncond(x, 5)
    assert denoiser.eps_uncond(x.detach(), 5) is eps and denoiser.unet_calls == 1
    denoiser.eps_uncond(x, 6)
    x.add_(1.0)
    denoiser.eps_uncond(x, 6)
    denoiser.eps_uncond(x.clone(), 6)
    assert denoiser.unet_calls == 4


def test_a_classifier_scorer_lowers_its_energy_along_minus_its_gradient():
    torch.manual_seed(0)
    scorer = ClassifierScorer(NoiseAwareClassifier(10, widths=(8, 8)).eval(), 10, name="cls")
    x, labels = torch.randn(4, 1, 28, 28), torch.tensor([1, 3, 5, 7])
    e, g = scorer.energy_and_grad(x, labels=labels, t=torch.tensor(500))
    e2 = scorer.energy(x - 1e-2 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1), labels=labels, t=torch.tensor(500))
    assert e.shape == (4,) and (e2 < e).all()
    with torch.no_grad():
        log_p = torch.log_softmax(scorer.classifier(x, t=torch.tensor(500)), -1)
    torch.testing.assert_close(e, -log_p[torch.arange(4), labels])  # E = -log p(y | x_t, t)
    with pytest.raises(ValueError, match=r"scorer 'cls' got class ids outside \[0, 10\): \[12\]"):
        scorer.energy(x, labels=torch.tensor([1, 3, 5, 12]))
    with pytest.raises(ValueError, match="scorer 'cls' needs `labels`"):
        scorer.energy(x)


def test_a_guidance_weight_that_makes_samples_nan_raises_guidance_diverged(tiny_generator):
    scheduler = ig.sampling_scheduler()
    denoiser = Denoiser(tiny_generator, tiny_generator.null_class)
    torch.manual_seed(0)
    cls = ClassifierScorer(NoiseAwareClassifier(10, widths=(8, 8)).eval(), 10, name="cls")
    with pytest.raises(GuidanceDivergedError, match=r"became NaN/inf .*lower the guidance weights \{'cls': 1e\+39\}"):
        guided_denoise(DiffusionPrior(denoiser.eps_uncond, scheduler), scheduler, torch.randn(3, 1, 28, 28),
                       ComposedEnergy([(cls, 1e39)]), num_steps=2, labels=torch.tensor([0, 1, 2]))


def test_fid_and_kid_are_zero_for_one_distribution_and_grow_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2000, 8)), rng.standard_normal((2000, 8))
    shifted = b + np.array([1.0] + [0.0] * 7)
    assert fid(a, b) < 0.05 and abs(fid(a, shifted) - 1.0) < 0.15  # FID of N(0,I) vs N(e1,I) is |e1|^2 = 1
    same, same_sd = kid(a, b)
    far, _ = kid(a, shifted)
    assert abs(same) < 3 * same_sd and far > 10 * same_sd


def test_inception_score_spans_one_to_the_number_of_classes():
    assert math.isclose(inception_score(np.eye(10)), 10.0, rel_tol=1e-6)
    assert math.isclose(inception_score(np.full((5, 10), 0.1)), 1.0, rel_tol=1e-6)


def test_checkpoints_round_trip_through_safetensors_and_refuse_alteration(tmp_path, monkeypatch):
    from pic.models.text_encoder import FrozenTextEncoder

    monkeypatch.setattr(assets, "DATA_DIR", tmp_path)
    models = ig.new_models(FrozenTextEncoder(), "smoke", seed=0)
    checkpoints.save(models, {"generator": {"guidance": "{}"}})
    loaded = checkpoints.load(models.text_encoder)
    x, t, y = torch.randn(2, 1, 28, 28), torch.tensor(10), torch.tensor([1, 2])
    torch.testing.assert_close(loaded.generator(x, t, y), models.generator(x, t, y))
    torch.testing.assert_close(loaded.eval_net(x), models.eval_net.eval()(x))
    torch.testing.assert_close(loaded.clip.embed_images(x, t=t), models.clip.embed_images(x, t=t))
    (tmp_path / checkpoints.NAMES["eval_net"]).write_bytes(b"tampered")
    with pytest.raises(AssetError, match="refusing an altered or partial file.*10_train_image_models.ipynb"):
        checkpoints.load(models.text_encoder)
    (tmp_path / checkpoints.NAMES["eval_net"]).unlink()
    with pytest.raises(AssetError, match="missing.*notebooks/10_train_image_models.ipynb"):
        checkpoints.load(models.text_encoder)


def test_the_training_notebook_writes_checkpoints_only_when_it_retrained_at_a_profile_that_saves(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from pic.models.text_encoder import FrozenTextEncoder

    monkeypatch.setattr(assets, "DATA_DIR", tmp_path)
    models = ig.new_models(FrozenTextEncoder(), "smoke", seed=0)
    meta = checkpoints.training_metadata({"generator": 2, "cls": 1, "clip": 1, "eval_net": 1}, 0.1,
                                         {"eval_net": 0.5, "cls": {0: 0.5}, "clip": {0: 0.5}}, {"clip": 3.0})
    assert checkpoints.save_trained(SimpleNamespace(retrain=True, models=models, settings={"save": False}), meta) == {}
    assert not list(tmp_path.rglob("*.safetensors"))  # smoke: nothing written
    written = checkpoints.save_trained(SimpleNamespace(retrain=True, models=models, settings={"save": True}), meta)
    assert set(written) == set(checkpoints.NAMES) and checkpoints.stored_guidance() == {"clip": 3.0}
    pins = {name: assets.read_pin(path) for name, path in checkpoints.NAMES.items()}
    loaded = SimpleNamespace(retrain=False, models=models, settings={"save": True})
    assert checkpoints.save_trained(loaded, meta) == written  # load mode: the committed files' sizes, untouched
    assert {name: assets.read_pin(path) for name, path in checkpoints.NAMES.items()} == pins


def test_feature_net_features_feed_its_head():
    net = FeatureNet(widths=(8, 8, 16), feature_dim=16).eval()
    x = torch.randn(5, 1, 28, 28)
    feats, probs = net.embed(x, batch_size=2)
    assert feats.shape == (5, 16) and torch.allclose(probs.sum(1), torch.ones(5))
    torch.testing.assert_close(torch.softmax(net(x), -1), probs)


def test_seed_summaries_and_the_beyond_the_std_rule():
    rows = [{"fid": f, "kid": k, "kid_std": 0.001, "class_kid": k, "is": 5.0, "accuracy": a}
            for f, k, a in [(10, 0.010, 0.8), (11, 0.012, 0.9), (12, 0.014, 0.85)]]
    s = table.summarize(rows)
    assert math.isclose(s["kid_x1000"], 12.0) and math.isclose(s["kid_x1000_sd"], 2.0) and s["kid_subset_sd"] == 1.0
    better = dict(s, kid_x1000=7.0, kid_x1000_sd=1.0)
    assert table.beats(better, s, "kid_x1000", lower_is_better=True)
    assert not table.beats(dict(better, kid_x1000=10.0), s, "kid_x1000", lower_is_better=True)  # within the sds


@pytest.mark.parametrize("step", [0, 10, 19])
def test_guidance_moves_samples_towards_lower_energy_at_high_and_low_noise(tiny_generator, step):
    """Regression: DDIM with x0 clipping keeps the unclipped eps, which turns guidance around at high noise."""
    scheduler = ig.sampling_scheduler()
    scheduler.set_timesteps(20)
    t = scheduler.timesteps[step]
    denoiser = Denoiser(tiny_generator, tiny_generator.null_class)
    torch.manual_seed(1)
    cls = ClassifierScorer(NoiseAwareClassifier(10, widths=(8, 8)).eval(), 10, name="cls")
    x, labels = torch.randn(8, 1, 28, 28) * 3, torch.arange(8)
    _, grad = cls.energy_and_grad(x, labels=labels, t=t)
    eps = denoiser.eps_uncond(x, t)
    sigma = float((1 - scheduler.alphas_cumprod[int(t)]).sqrt())
    plain = scheduler.step(eps, t, x).prev_sample
    guided = scheduler.step(eps + sigma * 0.5 * grad, t, x).prev_sample
    assert ((guided - plain) * grad).flatten(1).sum(1).lt(0).all()  # the guided sample moved down the gradient


def test_the_evaluation_net_trains_on_the_one_fit_loop_as_its_recipe_says_step_by_step():
    """train_feature_net on pic.train.fit equals the recipe written out by hand: one generator orders the batches
    (successive permutations) and draws the flips, AdamW with warm-up then cosine to 10 %, gradients clipped at 1."""
    import torch.nn.functional as F

    from pic.tasks.image import training

    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(40, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (40,), generator=g)
    steps, batch, seed = 7, 16, 3
    torch.manual_seed(0)
    net = FeatureNet(10, widths=(4, 8), feature_dim=16)
    by_hand = FeatureNet(10, widths=(4, 8), feature_dim=16)
    by_hand.load_state_dict(net.state_dict())
    log = training.train_feature_net(net, x, y, steps=steps, batch_size=batch, seed=seed, progress=False)

    g, warmup = torch.Generator().manual_seed(seed), steps // 10 + 1
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(by_hand.parameters(), lr=2e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: (i + 1) / warmup if i < warmup else
                                              0.1 + 0.45 * (1 + math.cos(math.pi * (i - warmup) / (steps - warmup))))
    by_hand.train()
    perm, pos, losses = torch.randperm(40, generator=g), 0, []
    for _ in range(steps):
        if pos + batch > 40:  # a permutation's short tail is dropped
            perm, pos = torch.randperm(40, generator=g), 0
        idx, pos = perm[pos:pos + batch], pos + batch
        flip = torch.rand(batch, generator=g) < 0.5
        xb = torch.where(flip[:, None, None, None], x[idx].flip(-1), x[idx])
        loss = F.cross_entropy(by_hand(xb), y[idx], label_smoothing=0.05)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(by_hand.parameters(), 1.0)
        opt.step(), sched.step()
        losses.append(float(loss))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), by_hand.state_dict().values()))
    assert log.steps == steps and log.losses == pytest.approx([sum(losses) / steps], rel=1e-6)
