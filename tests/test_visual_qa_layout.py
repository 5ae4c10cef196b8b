"""Table 2's package: the scorers and the reference train on the one fit loop exactly as a hand-written AdamW
one-cycle loop does, and the experiment's seed is not the seed of the models it loads: any experiment seed runs
with the committed models, and a model seed without a checkpoint is refused before any work, naming those that
exist."""
import pytest
import torch

from pic.assets import AssetError
from pic.runtime import seed_everything
from pic.stats import mean_sd
from pic.tasks.vqa import checkpoints, experiment, reference, settings, table


def test_the_reference_trains_on_the_fit_loop_exactly_as_adamw_with_a_one_cycle_schedule_over_shuffled_epochs():
    n, epochs, batch, lr = 70, 3, 32, 3e-3
    g = torch.Generator().manual_seed(0)
    feats, qs = torch.randn(20, 12, generator=g), torch.randn(n, 8, generator=g)
    img, ans = torch.randint(0, 20, (n,), generator=g), torch.randint(0, 5, (n,), generator=g)

    def model():
        torch.manual_seed(1)
        return reference.QAClassifier(5, feature_dim=12, text_dim=8, hidden=16)

    trained = model()
    log = reference.train_reference(trained, feats, qs, img, ans, epochs=epochs, seed=4, lr=lr, batch_size=batch)

    by_hand = model()  # the loop the package had before pic.train.fit, written out
    gen = seed_everything(4)
    opt = torch.optim.AdamW(by_hand.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * 3)
    losses = []
    by_hand.train()
    for _ in range(epochs):
        order, total = torch.randperm(n, generator=gen), 0.0
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            loss = torch.nn.functional.cross_entropy(by_hand(feats[img[idx]], qs[idx]), ans[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
    assert log.losses == losses and log.steps == epochs * 3
    for key, value in by_hand.state_dict().items():
        assert torch.equal(trained.state_dict()[key], value), key


def test_any_experiment_seed_loads_the_committed_model_seeds():
    for seed in (0, 5, 123):
        assert settings.load("local", seed=seed).model_seeds == (0, 1, 2)
        assert settings.load("smoke", seed=seed).model_seeds == (0,)
    chosen = settings.load("local", seed=7, model_seeds=[2, 0])
    assert chosen.model_seeds == (2, 0) and chosen.n_seeds == 2 and chosen.seed == 7


def test_a_model_seed_without_a_checkpoint_is_refused_before_any_work_naming_those_that_exist(monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the model seeds were checked")

    monkeypatch.setattr(experiment, "load_causal_lm", no_work)
    with pytest.raises(AssetError, match=r"model seed\(s\) \[7\]; seeds with one: \[0, 1, 2\]"):
        experiment.load(settings.load("smoke", seed=3, model_seeds=[0, 7]))
    with pytest.raises(AssetError, match=r"\[0, 1, 2\]"):
        checkpoints.check_seeds([4])
    checkpoints.check_seeds([0, 1, 2])


def test_the_training_notebook_refuses_to_load_a_model_seed_that_was_never_trained():
    from pic.tasks.vqa import training

    with pytest.raises(AssetError, match=r"seeds with one: \[0, 1, 2\]"):
        training.load_data(settings.training("smoke", seed=5))
    assert settings.training("local", seed=5, retrain=True).model_seeds == (5, 6, 7)  # training any seed is fine


def test_table_2_rows_take_mean_and_sample_sd_over_runs_and_claims_need_no_overlap():
    per_seed = [{"row": r, "seed": s, "overall": v, "color": v, "unanswerable": 0.0}
                for r, vals in {"LM alone": (0.2, 0.25, 0.3), "LM + a": (0.6, 0.62, 0.64),
                                "LM + b": (0.5, 0.7, 0.6), "LM + a + b": (0.66, 0.68, 0.7),
                                "answer-level rerank, all scorers": (0.7, 0.71, 0.72)}.items()
                for s, v in enumerate(vals)]
    rows = table.accuracy_table(per_seed, ["color"])
    by = table.by_row(rows)
    expected = mean_sd([20.0, 25.0, 30.0])
    assert by["LM alone"]["overall"] == pytest.approx(expected.mean) and by["LM alone"]["overall sd"] == pytest.approx(5.0)
    assert list(rows[0]) == ["row", "overall", "overall sd", "color", "color sd", "unanswerable"]
    claims = {c["claim"]: c for c in table.claims(rows, per_seed, ["a", "b"])}
    assert claims["LM + a + b beats LM alone beyond the seed std"]["holds"]
    assert not claims["LM + a + b beats LM + b beyond the seed std"]["holds"]  # b's spread overlaps
    assert claims["LM + a + b beats LM + a beyond the seed std"]["seeds won"] == 3
    assert not claims["LM + a + b beats answer-level rerank, all scorers beyond the seed std"]["holds"]
