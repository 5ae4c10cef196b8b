"""The relation scorers train on the one fit loop (pic.train.fit) exactly as the loop 40 used before: the same
weights, bit for bit, as AdamW + one-cycle written out by hand, with the augmentation drawn from the generator that
orders the batches, in the same interleaving."""
import pytest
import torch

from pic.models.text_encoder import FrozenTextEncoder
from pic.tasks.robot.relation_clip import RelationClip, sigmoid_clip_loss
from pic.tasks.robot.training import CAPTIONS, RelationData, augment, train_relation_clip


@pytest.fixture(scope="module")
def text_encoder():
    return FrozenTextEncoder()


def tiny_data(n=20, views=3, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, views, 3, size, size), generator=g, dtype=torch.uint8)
    mask = torch.rand(n, len(CAPTIONS), generator=g) < 0.5
    truth = (torch.rand(n, len(CAPTIONS), generator=g) < 0.3) & mask
    return RelationData(images, truth, mask)


def model_at(text_encoder, seed=3):
    torch.manual_seed(seed)
    model = RelationClip(text_encoder, width=8, feature_dim=32)
    model.text.whiten(CAPTIONS)
    return model


def written_out(model, data, v, epochs, batch_size, lr, seed):
    """The pre-layout loop of pic/tasks/robot/training.py, as it was."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(data) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    positives = (data.truth & data.mask).sum(0).float()
    pos_weight = ((data.mask.sum(0) - positives) / positives.clamp_min(1)).clamp(1.0, 20.0)
    history = []
    model.train()
    for _ in range(epochs):
        order, total = torch.randperm(len(data), generator=gen), 0.0
        for start in range(0, len(data), batch_size):
            idx = order[start:start + batch_size]
            images = augment(data.view(v, idx), gen)
            loss = sigmoid_clip_loss(model.logits(images, CAPTIONS), data.truth[idx], data.mask[idx], pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        history.append(total / len(data))
    model.eval()
    return history


def test_training_on_the_one_fit_loop_gives_the_weights_of_the_loop_it_replaced(text_encoder):
    data = tiny_data()
    torch.set_num_threads(1)
    ours, theirs = model_at(text_encoder), model_at(text_encoder)
    losses = train_relation_clip(ours, data, 1, epochs=2, batch_size=8, seed=5)  # 20 scenes: a short last batch
    expected = written_out(theirs, data, 1, epochs=2, batch_size=8, lr=2e-3, seed=5)
    assert losses == expected and len(losses) == 2
    a, b = ours.trainable_state(), theirs.trainable_state()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not ours.training
    init = model_at(text_encoder).trainable_state()
    assert any(not torch.equal(a[k], init[k]) for k in a)  # it trained


def test_only_a_retrain_at_a_saving_profile_writes_the_committed_checkpoints(text_encoder, monkeypatch):
    import pic.tasks.robot as robot
    from pic.tasks.robot import checkpoints
    from pic.tasks.robot.training import CameraModels, write_checkpoints

    written = []
    monkeypatch.setattr(checkpoints, "save", lambda model, view, *args: written.append(view) or view)
    rows = [{"camera": "front", "all": 0.9}]
    trained = CameraModels({"front": model_at(text_encoder)}, {"front": [1.0, 0.5]}, {"front": 1.0}, trained=True)
    loaded = CameraModels(trained.models, {}, {}, trained=False)
    assert write_checkpoints(trained, rows, robot.load("smoke", training=True)) == []
    assert write_checkpoints(loaded, rows, robot.load("local", training=True)) == []
    assert write_checkpoints(trained, rows, robot.load("local", training=True)) == ["front"] == written


def test_profile_sizes_live_in_the_package_and_given_values_override_them():
    import pic.tasks.robot as robot

    assert robot.load("local", training=True).n_train == 6000
    assert robot.load("smoke", training=True, epochs=3, n_train=None).epochs == 3
    local = robot.load("local", n_episodes=5)
    assert local.n_episodes == 5 and local.pairs and local.planner.rounds == 2
    assert local.episode_seeds(1) == [100_000 + i for i in range(5)]
